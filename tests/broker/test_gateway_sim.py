"""BrokerGateway against the embedded exchange with the real ib_async client."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from hydra_engine.broker.errors import (
    ClientIdInUse,
    ContractNotFound,
    LiveAccountRefused,
    NotConnected,
    StateUnknown,
)
from hydra_engine.broker.gateway import BrokerGateway, probe_accounts
from hydra_engine.markets import CATALOG, MarketConfig


async def test_connect_account_positions_quote_and_bars(make_exchange, make_gateway) -> None:
    ex = await make_exchange()
    gw = make_gateway(ex)
    await gw.connect()
    assert gw.is_connected and gw.state_known
    assert gw.account == "DU1234567"
    assert gw.last_sync is not None and gw.last_sync.complete
    summary = await gw.get_account_summary()
    assert summary.net_liquidation == pytest.approx(1_000_000.0)
    assert summary.daily_pnl is None  # no marks given: unknown, not zero
    assert await gw.get_positions() == []

    resolved = await gw.resolve_contract(CATALOG["CL"])
    assert resolved.active.symbol == "CL" and resolved.active.multiplier == 1000.0
    assert resolved.active.last_trade_date > ex.clock.now().date()
    quote = await gw.get_quote(resolved.active)
    assert 0 < quote.bid <= quote.ask and quote.spread >= 0
    assert quote.data_type == "live"
    assert quote.mid == pytest.approx((quote.bid + quote.ask) / 2)

    bars = await gw.get_daily_bars(resolved.active, lookback_days=30)
    assert len(bars) >= 10
    assert all(b.date < ex.clock.now().date() for b in bars)  # completed sessions only
    assert [b.date for b in bars] == sorted(b.date for b in bars)
    newer = await gw.get_daily_bars(resolved.active, since=bars[-3].date)
    assert [b.date for b in newer] == [b.date for b in bars[-2:]]  # incremental
    history = await gw.get_daily_bars(CATALOG["CL"], lookback_days=30)  # CONTFUT history
    assert len(history) >= 10


async def test_delayed_market_data_is_flagged(make_exchange, make_gateway) -> None:
    ex = await make_exchange()
    gw = make_gateway(ex, market_data_type=3)
    await gw.connect()
    resolved = await gw.resolve_contract(CATALOG["CL"])
    quote = await gw.get_quote(resolved.active)
    assert quote.data_type == "delayed"


async def test_unknown_market_is_a_clear_error(make_exchange, make_gateway) -> None:
    ex = await make_exchange()
    gw = make_gateway(ex)
    await gw.connect()
    bogus = MarketConfig(symbol="XQZ", exchange="NYMEX")
    with pytest.raises(ContractNotFound, match="XQZ on NYMEX"):
        await gw.resolve_contract(bogus)
    assert ex.open_orders() == []


async def test_paper_mode_refuses_a_non_du_account(make_exchange, make_gateway) -> None:
    ex = await make_exchange(accounts=("U7654321",))
    gw = make_gateway(ex)
    with pytest.raises(LiveAccountRefused, match="U7654321"):
        await gw.connect(timeout_s=10)
    assert not gw.is_connected
    assert not gw.supervisor.running  # refusal is final: no reconnect loop


def test_live_ports_and_accounts_need_confirmation() -> None:
    for port in (4001, 7496):
        with pytest.raises(LiveAccountRefused, match=str(port)):
            BrokerGateway(port=port, client_id=3)
    with pytest.raises(LiveAccountRefused, match="DU"):
        BrokerGateway(port=4002, client_id=3, account="U1111111")
    with pytest.raises(ValueError, match="client_id"):
        BrokerGateway(port=4002, client_id=0)
    with pytest.raises(ValueError, match="market_data_type"):
        BrokerGateway(port=4002, client_id=3, market_data_type=2)
    gw = BrokerGateway(port=4001, client_id=3, trading_mode="live", live_confirmed=True)
    assert gw.port == 4001


async def test_client_id_in_use_is_reported_clearly(make_exchange, make_gateway) -> None:
    ex = await make_exchange()
    first = make_gateway(ex, client_id=21)
    await first.connect()
    second = make_gateway(ex, client_id=21)
    with pytest.raises(ClientIdInUse, match="client id 21 is already in use"):
        await second.connect(timeout_s=6)
    await second.disconnect()
    assert first.is_connected


async def test_reconnects_after_gateway_restart_and_not_after_deliberate_disconnect(
    make_exchange, make_gateway
) -> None:
    ex = await make_exchange()
    gw = make_gateway(ex)
    await gw.connect()
    assert gw.supervisor.connects == 1
    await ex.restart(0.3)
    await gw.wait_until(lambda: gw.supervisor.connects >= 2 and gw.is_connected and gw.state_known)
    assert gw.last_sync is not None and gw.last_sync.complete
    await gw.disconnect()
    assert not gw.is_connected and not gw.supervisor.running
    with pytest.raises(NotConnected):
        await gw.get_positions()


async def test_pacing_violation_backs_off_and_retries(make_exchange, make_gateway) -> None:
    ex = await make_exchange(faults="pacing@hist=1")
    gw = make_gateway(ex, pacing_backoff_s=0.05)
    await gw.connect()
    resolved = await gw.resolve_contract(CATALOG["CL"])
    bars = await gw.get_daily_bars(resolved.active, lookback_days=20)
    assert bars
    assert any(n.code == 162 and n.kind == "pacing" for n in gw.notices)


async def test_connectivity_notices(make_exchange, make_gateway) -> None:
    ex = await make_exchange()
    gw = make_gateway(ex)
    await gw.connect()
    syncs_before = gw.last_sync
    ex.notice(1100)
    await gw.wait_until(lambda: gw.state == "degraded")
    assert not gw.state_known  # lost connectivity: broker state unknown
    month = (await gw.resolve_contract(CATALOG["CL"])).active
    with pytest.raises(StateUnknown, match="trading waits"):  # nothing is sent while unknown
        gw.place_order(object(), month, action="BUY", quantity=1, limit_price=1.0, order_ref="HY-t")
    assert ex.open_orders() == []
    ex.notice(1101)  # restored, data lost: resubscribe and reconcile again
    await gw.wait_until(lambda: gw.state_known and gw.last_sync is not syncs_before)
    ex.notice(2104)
    await gw.wait_until(lambda: any(n.code == 2104 for n in gw.notices))
    assert gw.farms.get("usfarm") == "ok"


async def test_probe_accounts_reads_the_account_without_trading(make_exchange) -> None:
    ex = await make_exchange(accounts=("DU7777777",))
    assert await probe_accounts("127.0.0.1", ex.port, client_id=41) == ["DU7777777"]
    assert ex.open_orders() == []
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(NotConnected):
        await probe_accounts("127.0.0.1", closed_port, client_id=41, timeout_s=1)


async def test_quotes_follow_the_book_and_are_resubscribed_after_1101(make_exchange, make_gateway) -> None:
    import datetime as dt

    ex = await make_exchange()
    await ex.advance_to(dt.datetime(2018, 1, 9, 15, 0, tzinfo=dt.UTC))
    gw = make_gateway(ex)
    await gw.connect()
    month = (await gw.resolve_contract(CATALOG["CL"])).active

    def book() -> tuple[float, float]:
        q = ex.universe.quote(month.con_id, ex.clock.now())
        return q.bid, q.ask

    first = await gw.get_quote(month)
    assert (first.bid, first.ask) == book()
    await ex.advance_to(ex.clock.now() + dt.timedelta(hours=1))
    moved = await gw.get_quote(month)  # the subscription's ticks, read after a round-trip barrier
    assert (moved.bid, moved.ask) == book()
    before = gw.last_sync
    ex.notice(1101)  # data lost: the exchange drops our subscription; the gateway must renew it
    await gw.wait_until(lambda: gw.state_known and gw.last_sync is not before)
    await ex.advance_to(ex.clock.now() + dt.timedelta(hours=1))
    again = await gw.get_quote(month)
    assert (again.bid, again.ask) == book()
    assert (again.bid, again.ask) != (moved.bid, moved.ask)  # the book did move meanwhile


async def test_a_quote_after_a_roll_drops_the_expired_months_subscription(make_exchange, make_gateway) -> None:
    """One subscription per month quoted; once a month has expired its subscription is cancelled
    when the next new month is quoted, so years of rolls do not keep streaming every old month."""
    import datetime as dt

    ex = await make_exchange()
    gw = make_gateway(ex)
    await gw.connect()
    front = (await gw.resolve_contract(CATALOG["CL"])).active
    await gw.get_quote(front)
    assert set(gw._quotes._tickers) == {front.con_id}
    after = dt.datetime.combine(front.last_trade_date + dt.timedelta(days=3), dt.time(15, 0), tzinfo=dt.UTC)
    while after.weekday() >= 5:
        after += dt.timedelta(days=1)
    await ex.advance_to(after)
    nxt = (await gw.resolve_contract(CATALOG["CL"])).active
    assert nxt.con_id != front.con_id
    await gw.get_quote(nxt)
    assert set(gw._quotes._tickers) == {nxt.con_id}
    await gw.get_quote(nxt)  # a round trip: the cancel has reached the exchange
    assert {sub.con_id for s in ex.registry.started() for sub in s.mkt.values()} == {nxt.con_id}


async def test_contfut_history_includes_the_session_that_closed_before_the_decision(make_exchange, make_gateway) -> None:
    """CL closes 16:00 CT (22:00 UTC in January); its decision is 16:15 CT, the same date. The
    continuous history has no contract details of its own: the front month's hours decide."""
    ex = await make_exchange()
    gw = make_gateway(ex)
    await gw.connect()
    cl = CATALOG["CL"]
    day = dt.date(2018, 1, 9)  # a Tuesday
    await ex.advance_to(dt.datetime(2018, 1, 9, 21, 45, tzinfo=dt.UTC))  # 15:45 CT: still open
    before = await gw.get_daily_bars(cl, lookback_days=20)
    assert before and before[-1].date == dt.date(2018, 1, 8)
    await ex.advance_to(dt.datetime(2018, 1, 9, 22, 15, tzinfo=dt.UTC))  # 16:15 CT: the decision
    after = await gw.get_daily_bars(cl, lookback_days=20)
    assert after[-1].date == day  # today's bar is the session that just closed
    newer = await gw.get_daily_bars(cl, since=dt.date(2018, 1, 8))
    assert [b.date for b in newer] == [day]


async def test_concurrent_position_and_account_requests_all_answer(make_exchange, make_gateway) -> None:
    """ib_async keeps one positions request: the gateway serialises callers, none waits for a timeout."""
    ex = await make_exchange()
    gw = make_gateway(ex, request_timeout_s=5.0)
    await gw.connect()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await asyncio.wait_for(asyncio.gather(*(gw.get_positions() for _ in range(5))), 3.0)
    assert len(results) == 5 and all(r == results[0] for r in results)
    summaries = await asyncio.wait_for(asyncio.gather(*(gw.get_account_summary() for _ in range(5))), 3.0)
    assert {s.net_liquidation for s in summaries} == {1_000_000.0}
    assert loop.time() - t0 < 3.0
