"""Observation: feed new feature rows and realized outcomes to the detectors every cycle.

Also shadows a freshly promoted champion against its predecessor, which is what arms the
automatic rollback. Runs whatever the autonomy or pause, so the detectors never skip a day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import structlog

from hydra_engine.agent.core import AgentCore
from hydra_engine.agent.drift import CALENDAR_PREFIXES, DriftFinding, DriftMonitor, PerformanceMonitor, RealizedOutcome
from hydra_engine.agent.thresholds import FalseAlarmBudget, thresholds_for_budget
from hydra_engine.model.baseline import BaselineModel
from hydra_engine.model.features import FeatureError, build_features, make_forward_returns, make_labels
from hydra_engine.model.registry import RegistryError
from hydra_engine.model.walk_forward import positions_from_proba

log = structlog.get_logger(__name__)

__all__ = ["CycleInputs", "ObservationMixin"]


@dataclass(slots=True)
class CycleInputs:
    features: pd.DataFrame
    labels: pd.Series
    returns: pd.Series


def _prepare(bars: pd.DataFrame, horizon: int) -> CycleInputs:
    return CycleInputs(build_features(bars), make_labels(bars, horizon), make_forward_returns(bars, horizon))


def _log_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-day binary log loss; clipped so one confident miss cannot make it infinite."""
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(pc) + (1 - y) * np.log(1 - pc))


class ObservationMixin(AgentCore):
    """Detector feeding for ``AgentLoop``."""

    async def prepare_inputs(self, bars: pd.DataFrame) -> CycleInputs:
        return await asyncio.to_thread(_prepare, bars, self.config.label_horizon)

    def reset_monitors(self, inputs: CycleInputs, model: BaselineModel, version: str, record_metrics: dict[str, Any]) -> None:
        """New champion: detectors re-reference on its training rows and start clean."""
        feats = inputs.features
        train = feats.loc[(feats.index >= pd.Timestamp(model.train_start)) & (feats.index <= pd.Timestamp(model.train_end))] if model.train_start else feats
        cols = [c for c in model.spec.features if not c.startswith(CALENDAR_PREFIXES)]
        ref = train[cols].iloc[-self.config.reference_days :]
        n_streams = len(cols) + len(PerformanceMonitor.METRICS)
        budget = FalseAlarmBudget.per_feature(self.config.alarms_per_1000_days_per_stream, n_streams)
        thresholds = thresholds_for_budget(budget, n_reference=len(ref))
        self.drift = DriftMonitor.from_reference({c: ref[c].to_numpy() for c in ref.columns}, thresholds)
        self.performance = PerformanceMonitor(budget.per_stream)
        daily = record_metrics.get("agent_oos_daily") or {}
        if len(daily.get("log_loss", [])) >= 20:
            self.performance.set_reference(daily["log_loss"], daily["hit"], daily["return"])
        self.state.champion_version = version
        self.state.last_observed = model.train_end
        self.state.last_outcome = model.train_end
        self.state.recent_findings = []

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
        pos = positions_from_proba(p)
        return pd.DataFrame({"p_up": p, "label": y, "ret": r, "signal_return": pos * r, "log_loss": _log_loss(p, y)}, index=idx)

    async def _observe(self, day: dt.date, inputs: CycleInputs, feats: pd.DataFrame, version: str, model: BaselineModel) -> tuple[list[DriftFinding], int, int, Any]:
        """Feed new feature rows and realized outcomes to the detectors (caller holds the state lock)."""
        if self.state.champion_version != version or self.drift is None or self.performance is None:
            rec = await self.registry.get(version)
            await asyncio.to_thread(self.reset_monitors, inputs, model, version, rec.metrics)
            if self.rollback_monitor.watching and self.rollback_monitor.new_version != version:
                self.rollback_monitor.stop_watch()
        assert self.drift is not None and self.performance is not None
        rows = feats if self.state.last_observed is None else feats[feats.index > pd.Timestamp(self.state.last_observed)]
        rows = rows.iloc[-self.config.max_catchup_days :]
        drift = self.drift

        def feed() -> list[DriftFinding]:
            out: list[DriftFinding] = []
            for ts, row in zip(rows.index, rows.to_dict("records")):
                out.extend(drift.update(row, pd.Timestamp(ts).date().isoformat()))
            return out

        findings = await asyncio.to_thread(feed)
        if len(rows):
            self.state.last_observed = pd.Timestamp(rows.index[-1]).date().isoformat()
        outcomes = await asyncio.to_thread(self.realized_outcomes, inputs, model, self.state.last_outcome, day)
        for ts, o in outcomes.iterrows():
            d = pd.Timestamp(ts).date().isoformat()
            findings.extend(self.performance.update(RealizedOutcome(d, float(o["p_up"]), int(o["label"]), float(o["signal_return"]))))
        verdict = None
        if len(outcomes):
            self.state.last_outcome = pd.Timestamp(outcomes.index[-1]).date().isoformat()
            mon = self.rollback_monitor
            if mon.watching and mon.new_version == version and mon.predecessor:
                try:
                    pred = await self._model(mon.predecessor)
                    p_old = await asyncio.to_thread(pred.predict_proba, inputs.features.loc[outcomes.index])
                    old_ll = _log_loss(p_old, outcomes["label"].to_numpy())
                    for ts, new_l, old_l in zip(outcomes.index, outcomes["log_loss"], old_ll):
                        verdict = mon.update(pd.Timestamp(ts).date().isoformat(), float(new_l), float(old_l)) or verdict
                        if verdict:
                            break
                except (RegistryError, FeatureError) as exc:
                    log.warning("agent.shadow_failed", predecessor=mon.predecessor, error=str(exc))
        cutoff = self._findings_cutoff(day)
        self.state.recent_findings = [f for f in self.state.recent_findings if f["date"] >= cutoff] + [f.to_dict() for f in findings if f.date >= cutoff]
        self.state.last_cycle = day.isoformat()
        return findings, len(rows), len(outcomes), verdict

    async def _model(self, version: str) -> BaselineModel:
        if version not in self._models:
            self._models[version] = await self.registry.load(version)
        return self._models[version]
