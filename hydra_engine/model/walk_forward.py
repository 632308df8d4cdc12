"""Walk-forward evaluation with purged and embargoed splits.

Layout of one fold, in row (trading-day) order::

    [ train (train_window rows) ][ embargo ][ purge ][ test (test_window rows) ]

* ``purge`` rows before the test window are dropped from training because their labels look
  ahead into the test window (so purge must be >= the label horizon). A label of decision date i
  is the tradable return open[i+1] -> open[i+1+h], known at bar i+1+h's open: with purge h the
  last training label is known before the first test decision (after bar t's close), exactly.
* ``embargo`` rows before the purge are dropped as well, because trailing features (20-day
  volatility, z-scores) make rows just before the test window strongly correlated with it.
* Training always precedes testing (no future data in training). Test windows are consecutive
  and end at the last row, so the out-of-sample days form one continuous series.

The result carries per-window metrics and the per-day out-of-sample predictions, losses and
returns (the inputs of the agent's Diebold-Mariano comparison).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import structlog

from hydra_engine.model import metrics as m
from hydra_engine.model.baseline import (
    BaselineModel,
    ModelError,
    ModelSpec,
    select_features,
)
from hydra_engine.model.features import InsufficientHistoryError

log = structlog.get_logger(__name__)

CostFn = Callable[[pd.Timestamp], float]
"""One-way trading cost in basis points of notional for a trade on the given date."""

PositionRule = Literal["long_short", "long_flat"]


@dataclass(frozen=True, slots=True)
class Fold:
    """Half-open row ranges ``[start, stop)`` of one split."""

    index: int
    train: tuple[int, int]
    embargo: tuple[int, int]
    purge: tuple[int, int]
    test: tuple[int, int]

    @property
    def train_idx(self) -> np.ndarray:
        return np.arange(*self.train)

    @property
    def test_idx(self) -> np.ndarray:
        return np.arange(*self.test)


class PurgedWalkForward:
    """Rolling (or expanding, ``train_window=None``) walk-forward splitter over row positions.

    ``min_train``: the smallest training set accepted for the first folds when the history is
    shorter than ``train_window`` (default: ``train_window``, i.e. every fold gets a full window).
    """

    def __init__(
        self,
        n_splits: int,
        train_window: int | None,
        test_window: int | None,
        purge: int,
        embargo: int = 0,
        min_train: int | None = None,
    ) -> None:
        def check(name: str, value: Any, low: int, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ModelError(f"PurgedWalkForward.{name}: must be an integer >= {low}, got {value!r}")

        check("n_splits", n_splits, 1)
        check("train_window", train_window, 1, allow_none=True)
        check("test_window", test_window, 1, allow_none=True)
        check("purge", purge, 0)
        check("embargo", embargo, 0)
        check("min_train", min_train, 1, allow_none=True)
        self.n_splits = int(n_splits)
        self.train_window = None if train_window is None else int(train_window)
        self.test_window = None if test_window is None else int(test_window)
        self.purge = int(purge)
        self.embargo = int(embargo)
        if min_train is None:
            min_train = self.train_window if self.train_window is not None else 1
        self.min_train = int(min_train)
        if self.train_window is not None and self.min_train > self.train_window:
            raise ModelError(
                f"PurgedWalkForward.min_train: {self.min_train} exceeds train_window {self.train_window}"
            )

    def folds(self, n_rows: int) -> list[Fold]:
        """The folds for ``n_rows`` rows; raises ``InsufficientHistoryError`` if they do not fit."""
        gap = self.purge + self.embargo
        test_window = self.test_window
        if test_window is None:
            test_window = (n_rows - self.min_train - gap) // self.n_splits
            if test_window < 1:
                raise InsufficientHistoryError(self._too_short(n_rows, 1))
        first_test = n_rows - self.n_splits * test_window
        if first_test - gap < self.min_train:
            raise InsufficientHistoryError(self._too_short(n_rows, test_window))
        out = []
        for k in range(self.n_splits):
            test_start = first_test + k * test_window
            purge_start = test_start - self.purge
            train_stop = purge_start - self.embargo
            train_start = 0 if self.train_window is None else max(0, train_stop - self.train_window)
            out.append(
                Fold(
                    index=k,
                    train=(train_start, train_stop),
                    embargo=(train_stop, purge_start),
                    purge=(purge_start, test_start),
                    test=(test_start, test_start + test_window),
                )
            )
        return out

    def _too_short(self, n_rows: int, test_window: int) -> str:
        need = self.min_train + self.purge + self.embargo + self.n_splits * test_window
        return (
            f"walk-forward: {n_rows} rows, need at least {need} (min_train {self.min_train} + purge "
            f"{self.purge} + embargo {self.embargo} + {self.n_splits} splits x test_window {test_window})"
        )

    def split(self, data: int | pd.DataFrame | pd.Series | np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` integer positions, like scikit-learn splitters."""
        n = data if isinstance(data, (int, np.integer)) else len(data)
        for fold in self.folds(int(n)):
            yield fold.train_idx, fold.test_idx

    def get_n_splits(self, *_: Any) -> int:
        return self.n_splits


@dataclass(frozen=True, slots=True)
class Metrics:
    """Out-of-sample quality over a span of days. Returns are per day, net of costs."""

    n_days: int
    hit_rate: float
    log_loss: float
    brier: float
    sharpe: float
    sortino: float
    max_drawdown: float
    turnover: float
    """Mean absolute position change per day (position units, +1 long / -1 short)."""
    mean_daily_return: float
    total_return: float
    """Compounded net return over the span (0.05 = +5 %)."""
    cost_total: float
    """Sum of daily costs in return units."""

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """One fold: where it trained and tested, and how the test window went."""

    fold: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    n_train: int
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Per-window metrics, overall metrics and the per-day out-of-sample record.

    ``oos`` is indexed by decision date with columns: fold, p_up, label, pred, position, ret
    (the instrument's tradable return, ``tradable_returns``), gross_return, cost, net_return,
    log_loss, brier, hit.
    """

    spec: ModelSpec
    windows: tuple[WindowMetrics, ...]
    overall: Metrics
    oos: pd.DataFrame
    purge: int
    embargo: int
    label_horizon: int

    def losses(self, kind: Literal["log_loss", "brier"] = "log_loss") -> pd.Series:
        """Per-day forecast loss series, for a Diebold-Mariano test against another model."""
        return self.oos[kind]

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict for the registry's metrics column and the agent's journal."""
        return {
            "overall": self.overall.to_dict(),
            "windows": [
                {k: v for k, v in asdict(w).items() if k != "metrics"} | {"metrics": w.metrics.to_dict()}
                for w in self.windows
            ],
            "purge": self.purge,
            "embargo": self.embargo,
            "label_horizon": self.label_horizon,
            "oos_start": str(self.oos.index[0]) if len(self.oos) else None,
            "oos_end": str(self.oos.index[-1]) if len(self.oos) else None,
        }


def positions_from_proba(p_up: np.ndarray, rule: PositionRule = "long_short", band: float = 0.0) -> np.ndarray:
    """Target position per day: +1 above 0.5 + band, -1 (or 0 for long_flat) below 0.5 - band, else 0."""
    if not 0.0 <= band < 0.5:
        raise ModelError(f"band: must lie in [0, 0.5), got {band!r}")
    if rule not in ("long_short", "long_flat"):
        raise ModelError(f"position rule: {rule!r} is not 'long_short' or 'long_flat'")
    p = np.asarray(p_up, dtype=float)
    short = -1.0 if rule == "long_short" else 0.0
    return np.where(p > 0.5 + band, 1.0, np.where(p < 0.5 - band, short, 0.0))


def summarize(
    labels: np.ndarray,
    p_up: np.ndarray,
    positions: np.ndarray,
    net_returns: np.ndarray,
    costs: np.ndarray,
    initial_position: float = 0.0,
    periods_per_year: int = m.TRADING_DAYS_PER_YEAR,
) -> Metrics:
    """All metrics for one span of out-of-sample days."""
    preds = (np.asarray(p_up) > 0.5).astype(float)
    r = np.asarray(net_returns, dtype=float)
    return Metrics(
        n_days=int(len(r)),
        hit_rate=m.hit_rate(labels, preds),
        log_loss=m.log_loss(labels, p_up),
        brier=m.brier(labels, p_up),
        sharpe=m.sharpe(r, periods_per_year),
        sortino=m.sortino(r, periods_per_year),
        max_drawdown=m.max_drawdown(r),
        turnover=m.turnover(positions, initial_position),
        mean_daily_return=float(r.mean()) if len(r) else math.nan,
        total_return=float(np.prod(1.0 + r) - 1.0) if len(r) else math.nan,
        cost_total=float(np.sum(costs)),
    )


def _costs_bps(cost: float | pd.Series | CostFn, dates: pd.DatetimeIndex) -> np.ndarray:
    if isinstance(cost, pd.Series):
        series = cost.copy()
        series.index = pd.DatetimeIndex(pd.to_datetime(series.index)).normalize()
        series = series.sort_index()
        aligned = series.reindex(dates, method="ffill")
        if aligned.isna().any():
            first = dates[int(np.flatnonzero(aligned.isna().to_numpy())[0])]
            raise ModelError(f"cost_bps: the cost series has no value on or before {first}")
        values = aligned.to_numpy(dtype=float)
    elif callable(cost):
        values = np.array([float(cost(d)) for d in dates], dtype=float)
    else:
        values = np.full(len(dates), float(cost))
    if not np.all(np.isfinite(values)) or (values < 0).any():
        i = int(np.flatnonzero(~np.isfinite(values) | (values < 0))[0])
        raise ModelError(f"cost_bps: must be finite and >= 0, got {values[i]!r} for {dates[i]}")
    return values


CostBps: TypeAlias = float | pd.Series | CostFn
"""One-way cost in basis points per unit of position change: a number, a Series by date (used as
of each date, e.g. daily slippage estimates) or a callable of the date."""


@dataclass(frozen=True, slots=True)
class SignalPnl:
    """Per-day P&L of a position series on tradable returns, in return units."""

    gross: np.ndarray
    cost: np.ndarray
    net: np.ndarray


def signal_pnl(
    positions: np.ndarray,
    returns: np.ndarray,
    dates: pd.DatetimeIndex,
    cost_bps: CostBps = 0.0,
    initial_position: float = 0.0,
) -> SignalPnl:
    """The one P&L rule for a signal: position times tradable return, minus cost on changes.

    Walk-forward, the experiment's champion replay and the performance monitor all call this, so
    champion and candidate are always scored net of the same cost; a constant position pays only
    on its first day (relative to ``initial_position``).
    """
    pos = np.asarray(positions, dtype=float)
    ret = np.asarray(returns, dtype=float)
    if pos.shape != ret.shape or len(dates) != pos.size:
        raise ModelError(f"signal_pnl: positions {pos.shape}, returns {ret.shape} and {len(dates)} dates differ")
    changes = np.abs(np.diff(np.concatenate(([float(initial_position)], pos))))
    cost = changes * _costs_bps(cost_bps, pd.DatetimeIndex(dates)) / 1e4 if pos.size else np.zeros(0)
    gross = pos * ret
    return SignalPnl(gross, cost, gross - cost)


def realized_signal_pnl(
    model: BaselineModel,
    features: pd.DataFrame,
    returns: pd.Series,
    dates: pd.DatetimeIndex,
    cost_bps: CostBps = 0.0,
    position_rule: PositionRule = "long_short",
    band: float = 0.0,
) -> SignalPnl:
    """Net P&L of ``model``'s own signal on consecutive ``dates`` (the performance monitor's input).

    The position held into the first date is the model's signal on the feature row before it, so a
    monitor fed day by day pays cost only where the live signal changes.
    """
    dates = pd.DatetimeIndex(dates)
    if len(dates) == 0:
        return SignalPnl(np.zeros(0), np.zeros(0), np.zeros(0))
    before = features.index[features.index < dates[0]]
    rows = features.loc[before[-1:].append(dates)]
    pos_all = positions_from_proba(model.predict_proba(rows), position_rule, band)
    prev = float(pos_all[0]) if len(before) else 0.0
    pos = pos_all[1:] if len(before) else pos_all
    return signal_pnl(pos, returns.loc[dates].to_numpy(dtype=float), dates, cost_bps, prev)


def walk_forward_evaluate(
    spec: ModelSpec,
    features: pd.DataFrame,
    labels: pd.Series,
    returns: pd.Series,
    cost_bps: CostBps = 0.0,
    *,
    n_splits: int = 5,
    test_window: int | None = None,
    purge: int | None = None,
    embargo: int = 0,
    label_horizon: int = 1,
    min_train: int | None = None,
    position_rule: PositionRule = "long_short",
    band: float = 0.0,
    periods_per_year: int = m.TRADING_DAYS_PER_YEAR,
) -> WalkForwardResult:
    """Fit ``spec`` on each fold's training rows and trade its test rows out of sample.

    ``labels``: 0/1 targets by decision date (``make_labels``); ``returns``: the tradable return a
    position decided that date earns (``tradable_returns``: next open to the following open);
    ``cost_bps``: one-way cost in basis points per unit of position change (``CostBps``); the
    P&L is ``signal_pnl``, net of that cost.
    ``purge`` defaults to ``label_horizon`` and may not be smaller. Training uses
    ``spec.train_window_days`` rows per fold; ``min_train`` lets early folds use fewer. Synchronous
    and CPU-bound: run it in a subprocess or thread.
    """
    if purge is None:
        purge = label_horizon
    if purge < label_horizon:
        raise ModelError(
            f"purge: {purge} is shorter than the label horizon {label_horizon}; training labels would "
            "overlap the test window"
        )
    x = select_features(features, spec.features, "walk_forward_evaluate")
    for name, s in (("labels", labels), ("returns", returns)):
        if not isinstance(s, pd.Series):
            raise ModelError(f"walk_forward_evaluate: {name} must be a pandas Series, got {type(s).__name__}")
    common = x.index.intersection(labels.dropna().index).intersection(returns.dropna().index).sort_values()
    if len(common) == 0:
        raise InsufficientHistoryError(
            "walk_forward_evaluate: features, labels and returns share no dates "
            f"(features {x.index.min()}..{x.index.max()}, labels {len(labels)} rows, returns {len(returns)} rows)"
        )
    x, y, r = x.loc[common], labels.loc[common].astype(int), returns.loc[common].astype(float)
    splitter = PurgedWalkForward(n_splits, spec.train_window_days, test_window, purge, embargo, min_train)
    folds = splitter.folds(len(common))

    p_parts, fold_ids, n_trains = [], [], []
    for fold in folds:
        model = BaselineModel(spec).fit(x.iloc[fold.train_idx], y.iloc[fold.train_idx])
        p_parts.append(model.predict_proba(x.iloc[fold.test_idx]))
        fold_ids.append(np.full(len(fold.test_idx), fold.index))
        n_trains.append(model.n_train)
    first, last = folds[0].test[0], folds[-1].test[1]
    dates = pd.DatetimeIndex(common[first:last])
    p_up = np.concatenate(p_parts)
    y_oos = y.iloc[first:last].to_numpy()
    r_oos = r.iloc[first:last].to_numpy()
    pos = positions_from_proba(p_up, position_rule, band)
    pnl = signal_pnl(pos, r_oos, dates, cost_bps)
    gross, costs, net = pnl.gross, pnl.cost, pnl.net
    oos = pd.DataFrame(
        {
            "fold": np.concatenate(fold_ids),
            "p_up": p_up,
            "label": y_oos,
            "pred": (p_up > 0.5).astype(int),
            "position": pos,
            "ret": r_oos,
            "gross_return": gross,
            "cost": costs,
            "net_return": net,
            "log_loss": m.log_losses(y_oos, p_up),
            "brier": m.brier_scores(y_oos, p_up),
            "hit": ((p_up > 0.5).astype(int) == y_oos).astype(int),
        },
        index=dates,
    )
    windows = []
    for fold, n_train in zip(folds, n_trains, strict=True):
        sl = slice(fold.test[0] - first, fold.test[1] - first)
        prev = 0.0 if sl.start == 0 else float(pos[sl.start - 1])
        windows.append(
            WindowMetrics(
                fold=fold.index,
                train_start=str(common[fold.train[0]]),
                train_end=str(common[fold.train[1] - 1]),
                test_start=str(common[fold.test[0]]),
                test_end=str(common[fold.test[1] - 1]),
                n_train=n_train,
                metrics=summarize(y_oos[sl], p_up[sl], pos[sl], net[sl], costs[sl], prev, periods_per_year),
            )
        )
    overall = summarize(y_oos, p_up, pos, net, costs, 0.0, periods_per_year)
    log.info(
        "walk_forward.done",
        family=spec.family,
        folds=len(folds),
        oos_days=len(oos),
        hit_rate=round(overall.hit_rate, 4),
        sharpe=round(overall.sharpe, 3),
    )
    return WalkForwardResult(spec, tuple(windows), overall, oos, purge, embargo, label_horizon)
