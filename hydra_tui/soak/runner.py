"""Run a soak: an external ``hydra-tui sim`` with faults and a state file, the headless engine against
it in broker time, SIGKILLs of the engine at chosen moments and restarts on the same store, and
restarts of the exchange from its state file. What happened is returned as a ``SoakRun`` for the
checks and the report; every process's output is kept in the work folder."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hydra_engine.sim.audit_log import audit_path
from hydra_tui.soak.plan import UNIVERSE_START, KillMoment, SoakPlan
from hydra_tui.soak.procs import Child

ENGINE_STARTED = r"event='engine\.started'"
SIM_LISTENING = r"sim_standalone_listening.*port=(\d+)"
ENGINE_START_TIMEOUT_S = 90.0
TRADE_LOG_DAYS = 3
"""At thousands of times real speed a restart of a few real seconds spans hours of market time,
often a New York midnight; the gateway's trade log keeps three days of executions for the engine to
recover (IB Gateway's own setting allows up to seven)."""
KILL_SPAN = 0.85
"""Kills are spread over this first share of the run, so the last days show clean recovery."""


@dataclass(slots=True)
class KillRecord:
    kind: str
    at_wall_s: float
    sim_clock: str | None
    pattern_seen: bool
    exit_code: int | None


@dataclass(slots=True)
class SoakRun:
    """What the orchestrator did and saw (the checks read the store and the exchange's files)."""

    plan: SoakPlan
    work: Path
    port: int = 0
    kills: list[KillRecord] = field(default_factory=list)
    engine_starts: int = 0
    engine_start_failures: list[str] = field(default_factory=list)
    """Starts that exited before ``engine.started`` (e.g. the gateway was down); each was retried."""
    exchange_restarts: list[str] = field(default_factory=list)
    clean_restarts: list[str] = field(default_factory=list)
    """Engine stops by SIGTERM mid-order (exit code and time), each followed by a start."""
    final_engine_exit: int | None = None
    final_exchange_exit: int | None = None
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    """(wall seconds since the soak started, engine RSS in MB), sampled every couple of seconds."""
    wall_s: float = 0.0
    sim_clock_end: str | None = None
    warmup_days: int = 0
    """Trading days played lock-step before the window (their fills are in the record and the journal too)."""

    @property
    def state_path(self) -> Path:
        return self.work / "exchange.json"

    @property
    def data_dir(self) -> Path:
        return self.work / "data"


def read_sim_clock(state_path: Path) -> dt.datetime | None:
    """The exchange's clock as last saved in its state file (None before the first save)."""
    try:
        return dt.datetime.fromisoformat(json.loads(state_path.read_text())["clock"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SoakRunner:
    """Drives one soak. ``progress`` is called with one-line updates (the caller prints them)."""

    def __init__(self, plan: SoakPlan, work: Path, progress: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.run = SoakRun(plan, work)
        self._progress = progress or (lambda _line: None)
        self._t0 = 0.0
        self.sim: Child | None = None
        self.engine: Child | None = None

    # ----------------------------------------------------------------- processes
    def _sim_args(self, port: int) -> list[str]:
        p = self.plan
        return ["sim", "--port", str(port), "--seed", str(p.seed), "--speed", f"{p.speed:g}",
                "--start", p.clock_start.isoformat(), "--faults", p.fault_spec(), "--state", str(self.run.state_path),
                "--trade-log-days", str(TRADE_LOG_DAYS)]

    def _engine_args(self) -> list[str]:
        config = self._config()
        args = ["--no-ui", "--config", str(config), "--broker", "ib", "--port", str(self.run.port),
                "--data-dir", str(self.run.data_dir)]
        for s in self.plan.settings:
            args += ["--set", s]
        return args

    async def warm_up(self) -> None:
        """Play the days before the window lock-step on the embedded exchange (``hydra-tui replay``
        with the soak's settings), then hand its account (the exchange's state file and record) and
        its store to the window's external exchange and engine."""
        import shutil

        p, run = self.plan, self.run
        days = p.warmup_days()
        config = self._config()
        warm = run.work / "warmup"
        self._say(f"warm-up: {days} trading days lock-step from {UNIVERSE_START} to the window")
        child = Child("warm-up", ["replay", "--days", str(days), "--config", str(config), "--data-dir", str(warm),
                                  "--seed", str(p.seed)], run.work / "warmup.log")
        await child.start()
        rc = await child.wait(timeout=1800)
        if rc != 0:
            raise RuntimeError(f"the warm-up replay exited {rc}: {child.output()[-2000:]}")
        [store] = [d for d in warm.iterdir() if d.is_dir() and d.name.startswith("sim-")]
        state = json.loads((store / "exchange.json").read_text())
        state["faults"] = {}  # the window's fault plan counts its own events (the warm-up had none)
        run.state_path.write_text(json.dumps(state))
        if audit_path(store / "exchange.json").exists():
            shutil.copy2(audit_path(store / "exchange.json"), audit_path(run.state_path))
        target = run.data_dir / store.name.replace("sim-", "ib-", 1)
        shutil.copytree(store, target, ignore=shutil.ignore_patterns("exchange.json*", "*.lock", "heartbeat.json"))
        import sqlite3

        con = sqlite3.connect(target / "hydra.db")  # the same account, from now on reached as an IB account
        try:
            con.execute("UPDATE store_meta SET value = 'ib' WHERE key = 'broker'")
            con.commit()
        finally:
            con.close()
        run.warmup_days = days
        self._say(f"warm-up done: account and store handed to the window ({target.name})")

    def _config(self) -> Path:
        config = self.run.work / "hydra.toml"
        if not config.exists():
            self.run.work.mkdir(parents=True, exist_ok=True)
            config.write_text(self.plan.settings_toml(str(self.run.work)))
        return config

    async def start_exchange(self) -> None:
        self.sim = Child("exchange", self._sim_args(self.run.port), self.run.work / "exchange.log")
        await self.sim.start()
        m = await self.sim.wait_for(SIM_LISTENING, 60)
        if m is None:
            raise RuntimeError(f"the exchange did not start: {self.sim.output()[-2000:]}")
        self.run.port = int(m.group(1))

    async def start_engine(self) -> None:
        """Start the engine; a start that ends before ``engine.started`` is retried (systemd would)."""
        for _attempt in range(10):
            self.engine = Child("engine", self._engine_args(), self.run.work / "engine.log")
            await self.engine.start()
            self.run.engine_starts += 1
            m = await self.engine.wait_for(ENGINE_STARTED, ENGINE_START_TIMEOUT_S)
            if m is not None:
                return
            rc = await self.engine.terminate(30) if self.engine.running else await self.engine.wait()
            tail = "".join(self.engine.lines[-5:]).strip().splitlines()
            self.run.engine_start_failures.append(f"exit {rc}: {tail[-1][:200] if tail else ''}")
            self._say(f"engine start failed (exit {rc}); retrying")
            await asyncio.sleep(1.0)
        raise RuntimeError("the engine did not start in 10 attempts")

    # ----------------------------------------------------------------- the soak
    def _say(self, text: str) -> None:
        clock = read_sim_clock(self.run.state_path)
        self._progress(f"[{time.monotonic() - self._t0:6.0f}s sim {clock:%Y-%m-%d %H:%M}] {text}" if clock else text)

    def _fraction(self) -> float:
        clock = read_sim_clock(self.run.state_path)
        if clock is None:
            return 0.0
        p = self.plan
        return (clock - p.clock_start) / (p.clock_end - p.clock_start)

    async def _sample_rss(self) -> None:
        import psutil

        while True:
            eng = self.engine
            if eng is not None and eng.running and eng.pid is not None:
                try:
                    rss = psutil.Process(eng.pid).memory_info().rss / 1e6
                    self.run.rss_samples.append((time.monotonic() - self._t0, rss))
                except psutil.Error:
                    pass
            await asyncio.sleep(2.0)

    async def execute(self) -> SoakRun:
        p, run = self.plan, self.run
        run.work.mkdir(parents=True, exist_ok=True)
        self._t0 = time.monotonic()
        kills = p.kill_schedule()
        restarts_at = [(i + 1) / (p.exchange_restarts + 1) for i in range(p.exchange_restarts)]
        sampler: asyncio.Task[None] | None = None
        try:
            if p.warmup_days():
                await self.warm_up()
            await self.start_exchange()
            self._say(f"exchange on 127.0.0.1:{run.port}, {p.days} trading days from {p.start}, speed {p.speed:g}x")
            await self.start_engine()
            sampler = asyncio.create_task(self._sample_rss())
            k = 0
            clean_at = [(i + 1) / (p.clean_restarts + 1) * KILL_SPAN for i in range(p.clean_restarts)]
            while self._fraction() < 1.0:
                frac = self._fraction()
                if restarts_at and frac >= restarts_at[0]:
                    restarts_at.pop(0)
                    await self._restart_exchange(hard=len(run.exchange_restarts) % 2 == 0)
                elif clean_at and frac >= clean_at[0]:
                    clean_at.pop(0)
                    await self._clean_restart()
                elif k < len(kills) and frac >= KILL_SPAN * (k + 0.5) / len(kills):
                    await self._kill_engine(kills[k])
                    k += 1
                else:
                    await asyncio.sleep(0.5)
                    if self.engine is not None and not self.engine.running:  # died on its own: note it, restart
                        rc = await self.engine.wait()
                        run.engine_start_failures.append(f"engine exited {rc} during the soak")
                        self._say(f"engine exited {rc} on its own; restarting")
                        await self.start_engine()
            self._say("last day played; stopping the engine (SIGTERM) and the exchange")
            run.sim_clock_end = str(read_sim_clock(run.state_path))
            assert self.engine is not None and self.sim is not None
            run.final_engine_exit = await self.engine.terminate(120)
            run.final_exchange_exit = await self.sim.terminate(60)
        finally:
            if sampler is not None:
                sampler.cancel()
            for child in (self.engine, self.sim):
                if child is not None and child.running:
                    await child.kill_group()
            run.wall_s = time.monotonic() - self._t0
        return run

    def _pattern_wait_s(self) -> float:
        """A fifth of the wall time the run has left (2 to 30 s): a kill waiting for its moment must
        leave the rest of the plan (other kills, exchange restarts) room to happen."""
        clock = read_sim_clock(self.run.state_path)
        if clock is None:
            return 10.0
        left_s = max(0.0, (self.plan.clock_end - clock).total_seconds()) / self.plan.speed
        return max(2.0, min(30.0, 0.2 * left_s))

    async def _kill_engine(self, moment: KillMoment) -> None:
        eng = self.engine
        assert eng is not None
        seen = True
        if moment.pattern:  # wait for the moment, but never so long that the run ends meanwhile
            m = await eng.wait_for(moment.pattern, timeout=self._pattern_wait_s(), start=max(0, len(eng.lines) - 1))
            seen = m is not None
        await asyncio.sleep(moment.delay_s)
        clock = read_sim_clock(self.run.state_path)
        rc = await eng.kill9()
        self.run.kills.append(KillRecord(moment.kind, time.monotonic() - self._t0, str(clock) if clock else None, seen, rc))
        self._say(f"SIGKILL {len(self.run.kills)}/{self.plan.kills} ({moment.kind}{'' if seen else ', pattern not seen: at random'})")
        await self.start_engine()

    async def _clean_restart(self) -> None:
        """SIGTERM the engine right after it sends an order (an operator's restart mid-order: the
        stop cancels what is working), then start it again. The plan's ``cancel_race@order=N``
        holds one order unfilled until its cancel arrives, so some cancel (this stop's, or the
        engine's own at the end of its patience) races a fill in every run."""
        eng = self.engine
        assert eng is not None
        await eng.wait_for(r"event='broker\.order_sent'", timeout=self._pattern_wait_s(), start=max(0, len(eng.lines) - 1))
        rc = await eng.terminate(120)
        self.run.clean_restarts.append(f"exit {rc} at {read_sim_clock(self.run.state_path)}")
        self._say(f"engine stopped with SIGTERM mid-order (exit {rc}); starting it again")
        await self.start_engine()

    async def _restart_exchange(self, *, hard: bool) -> None:
        """Stop the exchange (SIGKILL when ``hard``, else SIGTERM) and start it again from its state file."""
        sim = self.sim
        assert sim is not None
        rc = await sim.kill9() if hard else await sim.terminate(60)
        self.run.exchange_restarts.append(f"{'SIGKILL' if hard else 'SIGTERM'} (exit {rc}) at {read_sim_clock(self.run.state_path)}")
        self._say(f"exchange {'killed' if hard else 'stopped'}; restarting it from its state file")
        await asyncio.sleep(random.Random(len(self.run.exchange_restarts)).uniform(0.2, 1.0))
        await self.start_exchange()


async def run_soak(plan: SoakPlan, work: Path, progress: Callable[[str], None] | None = None) -> SoakRun:
    """Run ``plan`` with its files under ``work``; returns what happened (see ``checks``)."""
    return await SoakRunner(plan, work, progress).execute()


__all__ = ["KillRecord", "SoakRun", "SoakRunner", "read_sim_clock", "run_soak"]
