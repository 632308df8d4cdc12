"""The experiment child: ``python -m hydra_engine.agent.experiment_worker <job.json>``.

Reads the job, loads the inputs pickle the parent wrote, calls the entry function and writes
``result.json`` (``{"ok": true, "result": ...}`` or ``{"ok": false, "error": traceback}``)
atomically. Its stdout/stderr are the experiment's log file. The default entry trains the
candidate and walk-forward evaluates it against the champion's spec on identical test windows.
"""

from __future__ import annotations

import os as _os



def _die_with_parent() -> None:
    """Exit (whole process group) as soon as the engine that started us is gone: the kernel's
    parent-death signal where there is one (Linux), and a watchdog thread everywhere."""
    import signal
    import threading

    want = int(_os.environ.get("HYDRA_WORKER_PARENT_PID", "0") or 0)
    if want <= 0:
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def orphaned() -> bool:
        return _os.getppid() != want

    def bye() -> None:
        try:
            _os.killpg(_os.getpgrp(), signal.SIGKILL)
        finally:
            _os._exit(137)

    if orphaned():  # the engine died before the signal was armed
        bye()

    def watch() -> None:
        import time as _t

        while not orphaned():
            _t.sleep(0.2)
        bye()

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


if __name__ == "__main__":  # tie our life to the engine's, yield it the CPU, then the heavy imports
    _die_with_parent()
    try:
        _os.sched_setscheduler(0, _os.SCHED_IDLE, _os.sched_param(0))
    except (OSError, AttributeError):
        pass

import contextlib
import importlib
import json
import math
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

log = structlog.get_logger(__name__)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _resolve(entry: str) -> Callable[..., dict[str, Any]]:
    module, _, name = entry.partition(":")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"entry {entry!r}: {name!r} is not a callable in {module}")
    return fn


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this process and return the result document (also written to result.json)."""
    work = Path(job["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    for p in job.get("extra_sys_path") or ():
        if p not in sys.path:
            sys.path.insert(0, p)
    started = time.monotonic()
    try:
        inputs = None
        if job.get("inputs_path"):
            with open(job["inputs_path"], "rb") as fh:
                inputs = pickle.load(fh)  # noqa: S301 - written by our own parent process
        result = _resolve(job["entry"])(job.get("params") or {}, inputs, work)
        doc = {"ok": True, "result": _json_safe(result), "duration_s": time.monotonic() - started}
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the journal
        if isinstance(exc, KeyboardInterrupt):
            raise
        doc = {"ok": False, "error": "".join(traceback.format_exception(exc)).strip(), "duration_s": time.monotonic() - started}
    tmp = work / "result.json.tmp"
    tmp.write_text(json.dumps(doc, default=str))
    os.replace(tmp, work / "result.json")
    return doc


RETURN_BASIS = "tradable_open_to_open_lag1"
"""The return both models are scored on (``hydra_engine.model.features.tradable_returns``)."""


def return_basis(cost_bps: float) -> dict[str, Any]:
    """How a model's daily returns were computed; the gate refuses to compare unequal bases."""
    return {"returns": RETURN_BASIS, "net_of_cost_bps": float(cost_bps)}


def evaluate_candidate(params: dict[str, Any], inputs: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Walk-forward the candidate (and the champion's spec) on the same windows; fit and save it.

    ``params``: candidate_spec, champion_spec (or None), n_splits, test_window, min_train,
    embargo, label_horizon, cost_bps. ``inputs``: features (DataFrame), labels and tradable
    returns (Series, ``tradable_returns``). Both models' daily returns are net of ``cost_bps`` per
    unit of position change, recorded as each part's ``basis``.
    """
    import pandas as pd

    from hydra_engine.model import metrics as m
    from hydra_engine.model.baseline import BaselineModel, ModelSpec
    from hydra_engine.model.walk_forward import (
        WalkForwardResult,
        positions_from_proba,
        signal_pnl,
        walk_forward_evaluate,
    )

    features, labels, returns = inputs["features"], inputs["labels"], inputs["returns"]
    cost = float(params.get("cost_bps", 0.0))
    basis = return_basis(cost)
    test_window = params.get("test_window")
    min_train = params.get("min_train")
    n_splits = int(params.get("n_splits", 5))
    if params.get("full_history", True) and test_window:
        # Everything a fair test allows: as many purged windows as the history holds after the
        # first training set, so the gate sees the relation before the change as well as after
        # (its recency weights decide how much each window counts).
        rows = len(features.index.intersection(labels.dropna().index).intersection(returns.dropna().index))
        gap = int(params.get("label_horizon", 1)) + int(params.get("embargo", 0))
        n_splits = max(n_splits, (rows - int(min_train or 1) - gap) // int(test_window))

    def walk_forward(spec: ModelSpec) -> WalkForwardResult:
        """Both models go through this one call: same windows, same returns, same cost."""
        return walk_forward_evaluate(
            spec, features, labels, returns, cost,
            n_splits=n_splits, test_window=test_window,
            min_train=min_train, embargo=int(params.get("embargo", 0)),
            label_horizon=int(params.get("label_horizon", 1)),
        )

    cand_spec = ModelSpec.from_dict(params["candidate_spec"])
    t0 = time.monotonic()
    cand = walk_forward(cand_spec)
    out: dict[str, Any] = {"candidate": _wf_part(cand) | {"basis": basis}, "wf_seconds": time.monotonic() - t0,
                           "n_splits": n_splits}
    daily = {"dates": [str(d) for d in cand.oos.index], "candidate_log_loss": cand.oos["log_loss"].tolist(),
             "candidate_return": cand.oos["net_return"].tolist(), "candidate_hit": cand.oos["hit"].tolist(),
             "window": cand.oos["fold"].tolist()}
    if params.get("champion_model_dir"):
        # The deployed champion where it is out of sample (days after its training end); on days
        # it was trained on, its own recipe walk-forwarded on the same windows (what the champion
        # would have said without seeing them). Scoring the deployed model in-sample would hand it
        # every window before its fit and hide a change behind them.
        champ_model = BaselineModel.load(params["champion_model_dir"])
        oos = cand.oos
        p_ch = champ_model.predict_proba(features.loc[oos.index])
        in_sample = np.zeros(len(oos), dtype=bool)
        if champ_model.train_end:
            in_sample = np.asarray(oos.index <= pd.Timestamp(champ_model.train_end))
        if in_sample.any():
            recipe = walk_forward(champ_model.spec)
            p_recipe = recipe.oos["p_up"].reindex(oos.index).to_numpy()
            ok = in_sample & np.isfinite(p_recipe)
            p_ch = np.where(ok, p_recipe, p_ch)
        y = oos["label"].to_numpy()
        ll_ch = m.log_losses(y, p_ch)
        # Same tradable returns, same cost, same starting position as the candidate's walk-forward.
        pnl_ch = signal_pnl(positions_from_proba(p_ch), oos["ret"].to_numpy(), pd.DatetimeIndex(oos.index), cost)
        ret_ch = pnl_ch.net
        folds = oos["fold"].to_numpy()
        out["champion"] = {
            "model_dir": params["champion_model_dir"],
            "basis": basis,
            "window_log_loss": [float(ll_ch[folds == f].mean()) for f in sorted(set(folds.tolist()))],
            "oos_log_loss": float(ll_ch.mean()),
            "deployed_oos_days": int((~in_sample).sum()),
            "summary": {"overall": {"log_loss": float(ll_ch.mean()), "hit_rate": float(((p_ch > 0.5) == (y == 1)).mean())}},
        }
        daily |= {"champion_log_loss": ll_ch.tolist(), "champion_return": ret_ch.tolist()}
    elif params.get("champion_spec"):
        champ = walk_forward(ModelSpec.from_dict(params["champion_spec"]))
        out["champion"] = _wf_part(champ) | {"basis": basis}
        common = cand.oos.index.intersection(champ.oos.index)
        daily = {
            "dates": [str(d) for d in common],
            "candidate_log_loss": cand.oos.loc[common, "log_loss"].tolist(),
            "champion_log_loss": champ.oos.loc[common, "log_loss"].tolist(),
            "candidate_return": cand.oos.loc[common, "net_return"].tolist(),
            "candidate_hit": cand.oos.loc[common, "hit"].tolist(),
            "champion_return": champ.oos.loc[common, "net_return"].tolist(),
            "window": cand.oos.loc[common, "fold"].tolist(),
        }
    if params.get("evidence_since") and "champion" in out:
        # The comparison uses the days since the alarm; whether the recipe makes money at all
        # (the deflated Sharpe) keeps the whole walk-forward.
        full_returns = daily["candidate_return"]
        daily, kept = _evidence_since(daily, str(params["evidence_since"]))
        daily["candidate_return_all"] = full_returns
        for side in ("candidate", "champion"):
            out[side]["window_log_loss"] = [out[side]["window_log_loss"][i] for i in kept]
        out["evidence_since"] = str(params["evidence_since"])
    out["daily"] = daily
    if params.get("save_model", True):
        model = BaselineModel(cand_spec).fit(features, labels)
        model_dir = Path(work_dir) / "model"
        model.save(model_dir)
        x_train = features.loc[features.index.intersection(labels.index)].iloc[-model.n_train :]
        y_train = labels.loc[x_train.index]
        out["model_dir"] = str(model_dir)
        out["content_hash"] = model.content_hash()
        out["in_sample_log_loss"] = m.log_loss(y_train.to_numpy(), model.predict_proba(x_train))
    return out


def _evidence_since(daily: dict[str, Any], since: str) -> tuple[dict[str, Any], list[int]]:
    """Keep the windows whose test days all fall on or after ``since`` (the episode's first alarm).

    The alarm is a stopping time: it was raised from the days before it, so the days after it are
    fresh evidence for both models and the gate's false-promotion rate is unchanged; windows
    before it mix the old relation with the new and would let the transition outweigh what a
    refit has learned since. If no window qualifies the newest one is kept (the gate then
    reports too few days).
    """
    windows = np.asarray(daily["window"], dtype=int)
    dates = np.asarray(daily["dates"], dtype="datetime64[D]")
    order = sorted(set(windows.tolist()))
    first = {w: dates[windows == w].min() for w in order}
    kept = [w for w in order if first[w] >= np.datetime64(since[:10])] or order[-1:]
    mask = np.isin(windows, kept)
    out = {k: [v for v, m in zip(vals, mask) if m] for k, vals in daily.items()}
    remap = {w: i for i, w in enumerate(kept)}
    out["window"] = [remap[w] for w in out["window"]]
    return out, [order.index(w) for w in kept]


def _wf_part(wf: Any) -> dict[str, Any]:
    return {
        "spec": wf.spec.to_dict(),
        "summary": wf.summary(),
        "window_log_loss": [w.metrics.log_loss for w in wf.windows],
        "window_test_end": [w.test_end for w in wf.windows],
        "oos_log_loss": wf.overall.log_loss,
        "oos_sharpe": wf.overall.sharpe,
        "oos_hit_rate": wf.overall.hit_rate,
    }


def _lower_priority(nice: int) -> None:
    """Training yields the CPU to the engine: SCHED_IDLE where available (Linux), else nice.

    With SCHED_IDLE a waking event loop preempts the child at once; nice alone still lets two
    CPU-bound children delay the loop by a scheduler slice on a 2-core machine.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    with contextlib.suppress(OSError, AttributeError, PermissionError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        log.error("worker.usage", expected="python -m hydra_engine.agent.experiment_worker <job.json>", got=argv)
        return 2
    try:
        job = json.loads(Path(argv[0]).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.error("worker.bad_job_file", path=argv[0], error=str(exc))
        return 2
    _lower_priority(int(job.get("nice", 10)))
    log.info("worker.started", experiment_id=job.get("experiment_id"), pid=os.getpid(), entry=job.get("entry"))
    doc = run_job(job)
    if not doc["ok"]:
        log.error("worker.failed", experiment_id=job.get("experiment_id"), error=doc["error"])
        return 1
    log.info("worker.finished", experiment_id=job.get("experiment_id"), duration_s=round(doc["duration_s"], 2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
