"""PaperTradingRunner end to end: the real Engine composition (embedded exchange in lock-step, the
real ib_async client, a real store in tmp_path, real risk gate, order manager and fill journal).

The self-healing agent is switched off in most tests (it starts experiment subprocesses that only
cost time here); ``test_agent_failure_does_not_block_signal`` hands the runner a tiny agent of its
own through the ``agent_loop`` seam, and the last test runs the real agent.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hydra_engine.config import RunnerConfig, load_settings
from hydra_engine.engine import Engine
from hydra_engine.execution.runner import LiveTradingRefused, PaperTradingRunner
from hydra_engine.store.cycles import CycleStatus
from hydra_engine.store.kv import PAUSED


def make_engine(tmp_path: Path, universe: Any, *, agent: bool = False, **overrides: Any) -> Engine:
    return Engine(load_settings(None, overrides or None), data_dir=tmp_path, universe=universe, agent=agent)


async def cycle_rows(engine: Engine) -> list[Any]:
    return await engine.store.cycles.recent(limit=1000)


async def test_lockstep_days_place_orders_and_journal_fills_once_per_market_and_date(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        report = await eng.run_days(3)
        assert report.days == 3
        rows = await cycle_rows(eng)
        keys = [(r.market, r.trading_date) for r in rows]
        assert len(keys) == len(set(keys)) == 6  # CL and ZO, three dates, once each
        assert all(r.status == CycleStatus.FINISHED for r in rows)
        assert {r.summary["p_up"] is not None for r in rows} == {True}
        orders = await eng.store.orders.recent(100)
        assert orders, "the champion's targets produced no order"
        fills = await eng.fill_journal.fills()
        assert fills
        for f in fills:
            assert f.predicted_slippage is not None and f.actual_slippage is not None
            assert f.arrival_mid is not None and f.latency_ms is not None and f.latency_ms >= 0
            assert f.actual_slippage == pytest.approx(
                (f.fill_price - f.arrival_mid) if f.direction == "BUY" else (f.arrival_mid - f.fill_price))
        assert len({f.exec_id for f in fills}) == len(fills)
        # positions match the last targets that were reached (orders only the difference)
        positions = {p.symbol: p.quantity for p in await eng.broker.get_positions()}
        last = {r.market: r.summary for r in rows if r.trading_date == max(x.trading_date for x in rows)}
        for market, summary in last.items():
            if summary["orders"].startswith("none: already at target"):
                assert positions.get(market, 0.0) == summary["target"]
        # P&L is measured from the previous date's closing mark
        marks = await eng.store.equity.marks()
        assert [m.trading_date for m in marks] == sorted({r.trading_date for r in rows})
        assert rows[0].summary["daily_pnl"] == pytest.approx(
            rows[0].summary["net_liquidation"] - marks[-2].net_liquidation, abs=0.01)
    finally:
        await eng.stop()


async def test_second_trigger_for_the_same_date_is_a_no_op(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        await eng.run_days(1)
        day = (await cycle_rows(eng))[0].trading_date
        n_orders = len(await eng.store.orders.recent(100))
        again = await eng.runner.run_daily_cycle("CL", trading_date=day, trigger="schedule")
        assert again["status"] == "DUPLICATE"
        forced = await eng.force_cycle("ZO")  # today's date: already run by the lock-step day
        assert forced["status"] == "DUPLICATE"
        assert len(await eng.store.orders.recent(100)) == n_orders
        assert len(await cycle_rows(eng)) == 2
    finally:
        await eng.stop()


async def test_pause_stops_orders_but_not_observation_and_survives_restart(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        await eng.pause("test pause")
        await eng.run_days(1)
        rows = await cycle_rows(eng)
        assert len(rows) == 2 and all(r.status == CycleStatus.FINISHED for r in rows)
        for r in rows:
            assert r.summary["orders"].startswith("none: paused")
            assert r.summary["p_up"] is not None  # the signal was still computed
            assert r.summary["bars"] > 0 and r.summary["net_liquidation"] > 0  # observation went on
        assert await eng.store.orders.recent(10) == []
        assert await eng.store.kv.get(PAUSED) is True
        journal = await eng.store.ops.recent(20, kind="COMMAND")
        assert any(e.command == "pause" for e in journal)
    finally:
        await eng.stop()
    eng2 = make_engine(tmp_path, sim_universe)
    await eng2.start()
    try:
        assert eng2.status().paused
        await eng2.resume()
        await eng2.run_days(2)  # decided after the close, worked in the next session
        assert await eng2.store.orders.recent(10), "resumed engine placed no order"
    finally:
        await eng2.stop()


class ExplodingAgent:
    """A stand-in agent (the ``agent_loop`` seam) whose cycle always fails."""

    calls = 0

    async def run_cycle(self, market: str, trading_date: dt.date, bars: Any) -> Any:
        ExplodingAgent.calls += 1
        raise RuntimeError("experiment store on fire")

    def size_fraction(self, market: str) -> float:
        return 1.0

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


async def test_agent_failure_does_not_block_the_signal(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        eng.runner.agent_loop = ExplodingAgent()
        await eng.run_days(1)
        rows = {r.market: r for r in await cycle_rows(eng)}
        assert ExplodingAgent.calls == len(rows) == 2  # every market's agent step ran, and failed
        for row in rows.values():
            assert "experiment store on fire" in row.summary["agent"]["error"]
            assert row.status == CycleStatus.FINISHED
            assert row.summary["p_up"] is not None
            assert "target" in row.summary
    finally:
        await eng.stop()


async def test_restart_resumes_the_simulated_account_and_never_repeats_a_cycle(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        await eng.run_days(2)
        before_positions = {p.local_symbol: p.quantity for p in await eng.broker.get_positions()}
        before_clock = eng.clock.now()
        dates = sorted({r.trading_date for r in await cycle_rows(eng)})
        fills_before = len(await eng.fill_journal.fills())
    finally:
        await eng.stop()
    eng2 = make_engine(tmp_path, sim_universe)
    await eng2.start()
    try:
        assert eng2.clock.now() >= before_clock
        assert {p.local_symbol: p.quantity for p in await eng2.broker.get_positions()} == before_positions
        again = await eng2.runner.run_daily_cycle("CL", trading_date=dates[-1], trigger="catch-up")
        assert again["status"] == "DUPLICATE"
        await eng2.run_days(1)
        rows = await cycle_rows(eng2)
        assert len(rows) == 6
        assert max(r.trading_date for r in rows) > dates[-1]
        assert len(await eng2.fill_journal.fills()) >= fills_before
        for market in ("CL", "ZO"):  # each market's bootstrap champion was kept, none fitted again
            reg = eng2.registry.for_market(market)
            assert await reg.champion_version() is not None
            assert len(await reg.history()) == 1
    finally:
        await eng2.stop()


def test_live_mode_needs_env_and_confirmation(monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_LIVE_CONFIRMED", raising=False)
    live = RunnerConfig(trading_mode="live")
    kw = dict(store=None, markets=load_settings(None).markets, clock=None)
    with pytest.raises(LiveTradingRefused, match="HYDRA_LIVE_CONFIRMED"):
        PaperTradingRunner(None, None, None, None, None, None, None, live, live_confirmed=True, **kw)
    monkeypatch.setenv("HYDRA_LIVE_CONFIRMED", "true")
    with pytest.raises(LiveTradingRefused, match="confirmation"):
        PaperTradingRunner(None, None, None, None, None, None, None, {"trading_mode": "live"}, **kw)
    runner = PaperTradingRunner(None, None, None, None, None, None, None, live, live_confirmed=True, **kw)
    assert runner.config.trading_mode == "live"


async def test_engine_refuses_live_before_connecting(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_LIVE_CONFIRMED", raising=False)
    settings = load_settings(None, {"broker.kind": "ib", "broker.port": 1, "broker.trading_mode": "live"})
    eng = Engine(settings, data_dir=tmp_path, live_confirmed=True)
    with pytest.raises(ValueError, match="live"):
        await eng.start()
    assert not any(tmp_path.iterdir())  # no store, no connection attempt


async def test_scheduler_job_at_each_market_decision_time(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        r = eng.runner
        runner = PaperTradingRunner(
            eng.broker, eng.risk_gate, eng.order_manager, eng.fill_journal, None, eng.champion, eng.reconciler,
            {"misfire_grace_s": 7200}, store=eng.store, markets=eng.settings.markets, clock=eng.clock, bus=eng.bus,
        )
        await runner.start(schedule=True, catch_up=False)
        try:
            for m in r.markets:
                job = runner.scheduler.get_job(f"cycle-{m.symbol}")
                assert job is not None and job.misfire_grace_time == 7200 and job.coalesce is True
                fields = {f.name: str(f) for f in job.trigger.fields}
                assert fields["hour"] == str(m.decision_time.hour) and fields["minute"] == str(m.decision_time.minute)
                assert fields["day_of_week"] == "mon-fri"
                assert str(job.trigger.timezone) == m.time_zone
                nxt = job.trigger.get_next_fire_time(None, dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc))
                local = nxt.astimezone(m.zone)
                assert (local.hour, local.minute) == (m.decision_time.hour, m.decision_time.minute)
                assert local.weekday() < 5
        finally:
            await runner.stop()
        assert runner.scheduler is None
    finally:
        await eng.stop()


async def test_startup_catches_up_a_missed_decision_once(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        def runner() -> PaperTradingRunner:
            return PaperTradingRunner(
                eng.broker, eng.risk_gate, eng.order_manager, eng.fill_journal, None, eng.champion, eng.reconciler,
                None, store=eng.store, markets=eng.settings.markets, clock=eng.clock, bus=eng.bus,
            )

        first = runner()
        await first.start(schedule=True, catch_up=True)  # the clock sits on Tuesday 2018-01-02 06:00 CT
        assert await first.wait_cycles(30)
        rows = await cycle_rows(eng)
        assert {(r.market, r.trading_date, r.trigger) for r in rows} == {
            ("CL", dt.date(2017, 12, 29), "catch-up"), ("ZO", dt.date(2017, 12, 29), "catch-up")}
        await first.stop()
        second = runner()
        await second.start(schedule=True, catch_up=True)
        assert await second.wait_cycles(30)
        await second.stop()
        assert len(await cycle_rows(eng)) == 2  # a restart does not catch up the same decision again
    finally:
        await eng.stop()


async def test_real_agent_observes_every_cycle(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe, agent=True)
    await eng.start()
    try:
        await eng.run_days(2)
        rows = {(r.market, r.trading_date): r for r in await cycle_rows(eng)}
        assert len(rows) == 4 and all("phase" in r.summary["agent"] for r in rows.values())
        observed = await eng.agent.journal.query(entry_type="observation")
        assert {e.market for e in observed} == {"CL", "ZO"}  # each market's own agent observed it
    finally:
        await eng.stop()


# ---------------------------------------------------------------------------- pure cycle decisions


def test_target_from_signal_thresholds_kelly_and_caps() -> None:
    from hydra_engine.execution.cycle import CycleConfig
    from hydra_engine.execution.decisions import target_from_signal
    from hydra_engine.markets import CATALOG

    cfg, zo = CycleConfig(), CATALOG["ZO"]
    kw = dict(config=cfg, market=zo, equity=1_000_000.0, daily_sigma=4.0, multiplier=50.0, adv=400.0)
    assert target_from_signal(0.50, **kw).target == 0  # between the thresholds: flat
    long, short = target_from_signal(0.60, **kw), target_from_signal(0.40, **kw)
    assert long.target == zo.max_contracts and short.target == -zo.max_contracts
    assert long.sizing.binding == "max_contracts"
    thin = target_from_signal(0.60, **{**kw, "adv": 150.0})  # 1% of 150 contracts: one lot
    assert thin.target == 1 and thin.sizing.binding == "adv"
    risky = target_from_signal(0.60, **{**kw, "daily_sigma": 40.0})  # 3 sigma = 6000 per lot; cap 8000
    assert risky.target == 1 and risky.cap_trade_loss == 1
    assert target_from_signal(0.30, **kw, max_trade_loss_pct=0.05).target == 0  # 400 per trade < 600 per lot
    with pytest.raises(ValueError, match="p_up"):
        target_from_signal(1.5, **kw)


def test_clamp_move_limits_exposure_adding_orders_only() -> None:
    from hydra_engine.execution.decisions import clamp_move

    assert clamp_move(2, 0, 1) == 1 and clamp_move(-2, 0, 5) == -2
    assert clamp_move(1, -1, 1) == 0  # a reversal of two lots goes flat first
    assert clamp_move(0, 2, 0) == 0 and clamp_move(1, 2, 0) == 1  # reducing is never clamped


def test_session_start_reads_the_contract_hours() -> None:
    from ib_async import ContractDetails

    from hydra_engine.execution.sessions import next_session_open, session_start

    d = ContractDetails(timeZoneId="US/Central",
                        liquidHours="20180102:0830-20180102:1320;20180103:0830-20180103:1320",
                        tradingHours="20180101:1900-20180102:1320;20180102:1900-20180103:1320")
    after_close = dt.datetime(2018, 1, 2, 20, 0, tzinfo=dt.timezone.utc)  # 14:00 CT
    start = session_start(d, after_close, liquid=True)
    assert start == dt.datetime(2018, 1, 3, 14, 30, tzinfo=dt.timezone.utc)  # 08:30 CT next day
    assert session_start(d, after_close) == dt.datetime(2018, 1, 3, 1, 0, tzinfo=dt.timezone.utc)
    assert next_session_open(d, after_close) == dt.datetime(2018, 1, 3, 1, 0, tzinfo=dt.timezone.utc)
    inside = dt.datetime(2018, 1, 2, 16, 0, tzinfo=dt.timezone.utc)
    assert session_start(d, inside, liquid=True) == inside
    assert next_session_open(d, inside, liquid=True) is None
    assert session_start(None, inside) is None


async def test_position_value_is_the_futures_exposure_while_holding(tmp_path, sim_universe) -> None:
    """IB (and the embedded exchange) report GrossPositionValue 0 for futures: the cycle's exposure
    is positions x multiplier x mark, nonzero while a position is held."""
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        await eng.run_days(3)
        rows = await cycle_rows(eng)
        snap = await eng.broker.get_account_summary()
        assert snap.gross_position_value == 0.0  # what the broker says for futures
        fills = await eng.fill_journal.fills()
        held_rows = [r for r in rows if any(q for q in r.summary["positions"].values())]
        assert held_rows, "no cycle ran while holding a position: nothing was tested"
        for r in rows:
            held = {k: q for k, q in r.summary["positions"].items() if q}
            if not held:
                assert r.summary["position_value"] == 0.0
                continue
            assert r.summary["position_value"] > 0.0
            if len(held) == 1:  # one market: the implied mark is a price near where it traded
                (local, qty), = held.items()
                market = next(m for m in eng.runner.markets if local.startswith(m.symbol))
                symbol = market.symbol
                mult = (await eng.broker.resolve_contract(market)).active.multiplier
                implied = r.summary["position_value"] / (abs(qty) * mult)
                prices = [f.fill_price for f in fills if f.symbol == symbol]
                assert 0.8 * min(prices) <= implied <= 1.2 * max(prices)
    finally:
        await eng.stop()
