"""Observation: feed new feature rows and realized outcomes to the detectors every cycle.

Also shadows a freshly promoted champion against its predecessor, which is what arms the
automatic rollback. Runs whatever the autonomy or pause, so the detectors never skip a day.
``Observer`` owns the detectors; the persisted record and the rollback watch it updates are
passed to ``observe`` by the caller, which holds the state lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import structlog

from hydra_engine.agent.core import AgentConfig
from hydra_engine.agent.drift import (
    CALENDAR_PREFIXES,
    LONG_RUN_LAGS,
    DetectorReading,
    DriftFinding,
    DriftMonitor,
    PerformanceMonitor,
    RealizedOutcome,
)
from hydra_engine.agent.rollback import RollbackMonitor, RollbackVerdict
from hydra_engine.agent.state import AgentState
from hydra_engine.agent.thresholds import FalseAlarmBudget, thresholds_for_budget
from hydra_engine.model.baseline import BaselineModel
from hydra_engine.model.features import (
    FeatureError,
    build_features,
    make_labels,
    tradable_returns,
)
from hydra_engine.model.registry import ModelRegistry, RegistryError
from hydra_engine.model.walk_forward import realized_signal_pnl

log = structlog.get_logger(__name__)

__all__ = ["CycleInputs", "Observation", "Observer"]


@dataclass(slots=True)
class CycleInputs:
    features: pd.DataFrame
    labels: pd.Series
    returns: pd.Series


def _prepare(bars: pd.DataFrame, horizon: int) -> CycleInputs:
    return CycleInputs(build_features(bars), make_labels(bars, horizon), tradable_returns(bars, horizon))


def _log_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-day binary log loss; clipped so one confident miss cannot make it infinite."""
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(pc) + (1 - y) * np.log(1 - pc))


@dataclass(frozen=True, slots=True)
class Observation:
    """What one observation step saw: alarms, rows and outcomes fed, and a rollback verdict."""

    findings: tuple[DriftFinding, ...]
    rows: int
    outcomes: int
    verdict: RollbackVerdict | None


def reference_end(model: BaselineModel, metrics: dict[str, Any]) -> str | None:
    """Last date the champion's reference covers: its held-out segment's end, else its training end."""
    end = metrics.get("reference_end")
    return str(end)[:10] if end else model.train_end


class Observer:
    """Owns the drift and performance detectors and feeds them; persisted through ``AgentMemory``."""

    def __init__(self, config: AgentConfig, registry: ModelRegistry) -> None:
        self.config = config
        self._registry = registry
        self.drift: DriftMonitor | None = None
        self.performance: PerformanceMonitor | None = None
        self._models: dict[str, BaselineModel] = {}

    def restore(self, state: AgentState) -> None:
        self.drift = DriftMonitor.from_dict(state.drift) if state.drift else None
        self.performance = PerformanceMonitor.from_dict(state.performance) if state.performance else None

    def snapshot_into(self, state: AgentState) -> None:
        state.drift = self.drift.to_dict() if self.drift else None
        state.performance = self.performance.to_dict() if self.performance else None

    def findings_cutoff(self, day: dt.date) -> str:
        """Oldest ISO date whose drift findings still count as evidence on ``day``."""
        return (day - dt.timedelta(days=self.config.findings_lookback_days)).isoformat()

    def recent_findings(self, state: AgentState, day: dt.date) -> list[DriftFinding]:
        """Findings recorded recently enough to count as evidence for a diagnosis on ``day``."""
        cutoff = self.findings_cutoff(day)
        return [DriftFinding(**f) for f in state.recent_findings if f["date"] >= cutoff]

    def readings(self) -> list[DetectorReading]:
        """Every detector's statistic against its threshold (the TUI's agent pane)."""
        return (self.drift.readings() if self.drift else []) + (self.performance.readings() if self.performance else [])

    def performance_summary(self) -> dict[str, Any]:
        return self.performance.recent_summary() if self.performance else {}

    async def prepare_inputs(self, bars: pd.DataFrame) -> CycleInputs:
        return await asyncio.to_thread(_prepare, bars, self.config.label_horizon)

    def reset_monitors(self, inputs: CycleInputs, model: BaselineModel, version: str, record_metrics: dict[str, Any]) -> None:
        """New champion: detectors re-reference and start clean.

        The feature reference is the last ``reference_days`` rows the champion's registration saw
        (its training rows, and its held-out segment when it was fitted with one), so live rows are
        compared with the most recent history known before observation starts; the performance
        reference is its out-of-sample days (``agent_oos_daily``), never its in-sample fit.
        """
        feats = inputs.features
        end = reference_end(model, record_metrics)
        ref_rows = feats.loc[(feats.index >= pd.Timestamp(model.train_start)) & (feats.index <= pd.Timestamp(end))] if model.train_start else feats
        cols = [c for c in model.spec.features if not c.startswith(CALENDAR_PREFIXES)]
        ref = ref_rows[cols].iloc[-self.config.reference_days :]
        n_streams = len(cols) + len(PerformanceMonitor.METRICS)
        budget = FalseAlarmBudget.per_feature(self.config.alarms_per_1000_days_per_stream, n_streams)
        thresholds = thresholds_for_budget(budget, n_reference=len(ref), lrv_bandwidth=LONG_RUN_LAGS)
        self.drift = DriftMonitor.from_reference({c: ref[c].to_numpy() for c in ref.columns}, thresholds)
        self.performance = PerformanceMonitor(budget.per_stream)
        daily = record_metrics.get("agent_oos_daily") or {}
        if len(daily.get("log_loss", [])) >= 20:
            self.performance.set_reference(daily["log_loss"], daily["hit"], daily["return"])
        log.info("agent.detectors_reset", champion=version, reference_rows=len(ref), streams=n_streams)

    def realized_outcomes(self, inputs: CycleInputs, model: BaselineModel, after: str | None, until: dt.date) -> pd.DataFrame:
        """The model's predictions on labelled days after ``after`` with label, return and loss."""
        labels, rets, feats = inputs.labels, inputs.returns, inputs.features
        idx = feats.index.intersection(labels.index).intersection(rets.index)
        idx = idx[idx <= pd.Timestamp(until)]
        if after is not None:
            idx = idx[idx > pd.Timestamp(after)]
        idx = idx[-self.config.max_catchup_days :]
        if len(idx) == 0:
            return pd.DataFrame(columns=["p_up", "label", "ret", "signal_return", "log_loss"])
        p = model.predict_proba(feats.loc[idx])
        y = labels.loc[idx].to_numpy()
        r = rets.loc[idx].to_numpy()
        net = realized_signal_pnl(model, feats, rets, idx, self.config.cost_bps).net  # tradable, net of cost: as the reference
        return pd.DataFrame({"p_up": p, "label": y, "ret": r, "signal_return": net, "log_loss": _log_loss(p, y)}, index=idx)

    async def observe(self, state: AgentState, watch: RollbackMonitor, day: dt.date, inputs: CycleInputs, feats: pd.DataFrame,
                      version: str, model: BaselineModel) -> Observation:
        """Feed new feature rows and realized outcomes to the detectors; updates ``state`` and ``watch``
        in place (caller holds the state lock and saves)."""
        if state.champion_version != version or self.drift is None or self.performance is None:
            rec = await self._registry.get(version)
            await asyncio.to_thread(self.reset_monitors, inputs, model, version, rec.metrics)
            state.champion_version = version
            start = reference_end(model, rec.metrics)  # the reference's rows are not observed again
            state.last_observed = start
            state.last_outcome = start
            state.recent_findings = []
            if watch.watching and watch.new_version != version:
                watch.stop_watch()
        assert self.drift is not None and self.performance is not None
        rows = feats if state.last_observed is None else feats[feats.index > pd.Timestamp(state.last_observed)]
        rows = rows.iloc[-self.config.max_catchup_days :]
        drift = self.drift

        def feed() -> list[DriftFinding]:
            out: list[DriftFinding] = []
            for ts, row in zip(rows.index, rows.to_dict("records"), strict=True):
                out.extend(drift.update(row, pd.Timestamp(ts).date().isoformat()))
            return out

        findings = await asyncio.to_thread(feed)
        if len(rows):
            state.last_observed = pd.Timestamp(rows.index[-1]).date().isoformat()
        outcomes = await asyncio.to_thread(self.realized_outcomes, inputs, model, state.last_outcome, day)
        performance = self.performance

        def score() -> list[DriftFinding]:  # off the loop: the warm-up's end derives a CUSUM threshold
            out: list[DriftFinding] = []
            for ts, o in outcomes.iterrows():
                d = pd.Timestamp(ts).date().isoformat()
                out.extend(performance.update(RealizedOutcome(d, float(o["p_up"]), int(o["label"]), float(o["signal_return"]))))
            return out

        findings.extend(await asyncio.to_thread(score))
        verdict = None
        if len(outcomes):
            state.last_outcome = pd.Timestamp(outcomes.index[-1]).date().isoformat()
            mon = watch
            if mon.watching and mon.new_version == version and mon.predecessor:
                try:
                    pred = await self._model(mon.predecessor)
                    p_old = await asyncio.to_thread(pred.predict_proba, inputs.features.loc[outcomes.index])
                    old_ll = _log_loss(p_old, outcomes["label"].to_numpy())
                    for ts, new_l, old_l in zip(outcomes.index, outcomes["log_loss"], old_ll, strict=True):
                        verdict = mon.update(pd.Timestamp(ts).date().isoformat(), float(new_l), float(old_l)) or verdict
                        if verdict:
                            break
                except (RegistryError, FeatureError) as exc:
                    log.warning("agent.shadow_failed", predecessor=mon.predecessor, error=str(exc))
        cutoff = self.findings_cutoff(day)
        state.recent_findings = [f for f in state.recent_findings if f["date"] >= cutoff] + [f.to_dict() for f in findings if f.date >= cutoff]
        state.last_cycle = day.isoformat()
        return Observation(tuple(findings), len(rows), len(outcomes), verdict)

    async def _model(self, version: str) -> BaselineModel:
        if version not in self._models:
            self._models[version] = await self._registry.load(version)
        return self._models[version]
