"""The operations parts of one engine, built from its settings and run beside it.

``Operations`` holds the alerter and its event router, the broker and agent-journal watches, the
heartbeat, the daily maintenance and the memory guard. The engine creates it once its parts exist,
``start``s it before the runner starts (so no cycle event is missed) and ``stop``s it first when
stopping (so a clean stop raises no alert). Every part is reachable for tests and the TUI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from hydra_engine.events import AgentPhaseChanged, CycleFinished, EngineEvent, StaleLockFound
from hydra_engine.operations.agent_watch import AgentJournalWatch
from hydra_engine.operations.alert_rules import AlertRouter
from hydra_engine.operations.alert_sinks import AlertSink, CommandSink, WebhookSink
from hydra_engine.operations.alerts import Alerter, alert_context
from hydra_engine.operations.broker_watch import BrokerWatch
from hydra_engine.operations.heartbeat import HEARTBEAT_FILE, Heartbeat
from hydra_engine.operations.maintenance import Maintenance
from hydra_engine.operations.memory_guard import MemoryGuard, rss_bytes
from hydra_engine.operations.restart_window import RestartWindow
from hydra_engine.operations.settings import AlertSettings, HeartbeatSettings, RetentionSettings
from hydra_engine.operations.stale_lock import StaleLock

log = structlog.get_logger(__name__)


def gateway_window(settings: Any) -> RestartWindow | None:
    """The broker's daily restart window: IB Gateway's (``[broker] restart_window``) for broker
    "ib"; None for the embedded exchange, which never restarts on its own."""
    b = settings.broker
    if b.kind != "ib":
        return None
    return RestartWindow.parse(b.restart_window, b.restart_time_zone)


def sinks_from(cfg: AlertSettings) -> list[AlertSink]:
    sinks: list[AlertSink] = []
    if cfg.command:
        sinks.append(CommandSink(cfg.command, cfg.command_timeout_s))
    if cfg.webhook:
        sinks.append(WebhookSink(cfg.webhook, cfg.webhook_timeout_s))
    return sinks


class Operations:
    """Alerts, watches, heartbeat, maintenance and memory guard for one started engine."""

    def __init__(self, engine: Any) -> None:
        s = engine.settings
        self.engine = engine
        self.alert_settings = s.section("alerts", AlertSettings)
        self.heartbeat_settings = s.section("heartbeat", HeartbeatSettings)
        self.retention_settings = s.section("retention", RetentionSettings)
        store, runner = engine.store, engine.runner
        markets = runner.markets
        self.window = gateway_window(s)
        a = self.alert_settings
        self.alerter = Alerter(
            sinks_from(a), store.ops, min_interval_s=a.min_interval_s, kinds=a.kinds, bus=engine.bus,
            context=alert_context(account=engine.account, mode=engine.mode, store=str(store.directory)),
        )
        self.broker_watch = BrokerWatch(
            engine.broker, engine.clock, engine.bus, markets, window=self.window,
            disconnect_after_s=a.disconnect_after_min * 60.0, down_before_decision_s=a.down_before_decision_min * 60.0,
        )
        self.agent_watch = AgentJournalWatch(store.conn, store.kv, engine.bus, engine.clock)
        log_file = Path(s.logging.file) if s.logging.file is not None else store.directory / "hydra.log"
        self.maintenance = Maintenance(store, engine.registry, self.retention_settings, markets, log_file=log_file,
                                       idle=lambda: runner.cycle_running is None, clock=engine.clock)
        self.memory = MemoryGuard(engine.broker)
        hb = self.heartbeat_settings
        self.heartbeat: Heartbeat | None = None
        if hb.enabled:
            path = Path(hb.file) if hb.file is not None else store.directory / HEARTBEAT_FILE
            self.heartbeat = Heartbeat(path, hb.interval_s, self.snapshot)
        self.router = AlertRouter(engine.bus, self.alerter, on_event=self._on_event)
        self._started = False

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, (CycleFinished, AgentPhaseChanged)):
            self.agent_watch.poke()
        self.maintenance.on_event(event)

    async def start(self) -> None:
        await self.agent_watch.start()
        self.router.start()
        self.broker_watch.start()
        self.memory.start()
        if self.heartbeat is not None:
            try:
                await self.heartbeat.beat()  # the file exists as soon as the engine runs
            except OSError as exc:  # monitoring will see no heartbeat; the engine itself can trade
                log.warning("heartbeat.write_failed", path=str(self.heartbeat.path), error=str(exc))
            self.heartbeat.start()
        self._started = True
        log.info("operations.started", channels=[x.name for x in self.alerter.sinks], window=str(self.window or ""),
                 heartbeat=str(self.heartbeat.path) if self.heartbeat else None)

    def stale_lock_found(self, stale: StaleLock) -> None:
        """Report a stale store lock found before the store was opened (raises the STALE_LOCK alert)."""
        self.engine.bus.publish(StaleLockFound(at=self.engine.clock.now(), path=str(stale.path), pid=stale.pid))

    async def stop(self) -> None:
        """Stop watching and alerting (deliveries under way get a few seconds), write the last heartbeat."""
        if not self._started:
            return
        self._started = False
        await self.broker_watch.stop()
        await self.agent_watch.stop()
        await self.memory.stop()
        await self.maintenance.stop()
        await self.router.stop()
        await self.alerter.stop()
        if self.heartbeat is not None:
            await self.heartbeat.stop()

    def snapshot(self) -> dict[str, Any]:
        """What the heartbeat file says besides pid, state and time."""
        eng = self.engine
        st = eng.status()
        runner = eng.runner
        last = runner.last_summary if runner is not None else None
        last_alert = self.alerter.history[-1] if self.alerter.history else None
        return {
            "engine_time": st.now.isoformat(), "mode": st.mode, "account": st.account, "store_dir": st.store_dir,
            "connection": st.connection, "connected": st.connected, "trading_state": st.trading_state,
            "paused": st.paused, "agent_phase": st.agent_phase, "cycles_run": st.cycles_run,
            "next_decision": ({"market": st.next_decision_market, "at": st.next_decision_at.isoformat()}
                              if st.next_decision_at is not None else None),
            "last_cycle": ({k: last.get(k) for k in ("market", "trading_date", "status", "trigger", "error", "skipped")}
                           if last else None),
            "last_alert": ({"kind": last_alert.kind, "outcome": last_alert.outcome.value,
                            "at": last_alert.at.isoformat(), "message": last_alert.message} if last_alert else None),
            "rss_bytes": rss_bytes(),
            "restart_window": str(self.window) if self.window is not None else None,
        }
