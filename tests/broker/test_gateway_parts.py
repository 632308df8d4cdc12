"""BrokerGateway is composed of parts, each built with only what it needs (issue 12).

The parts run on their own over a bare ib_async ``IB`` session against the embedded exchange,
and the gateway's public methods delegate to them with unchanged results. The daily P&L is not the
broker's: the engine's one computation (``execution.account_view``) is checked against a real
SQLite store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect

import pytest

from hydra_engine.broker.account import AccountReader
from hydra_engine.execution.account_view import account_view
from hydra_engine.markets import weekdays
from hydra_engine.broker.channel import RequestChannel
from hydra_engine.broker.contract_book import ContractBook
from hydra_engine.broker.errors import NotConnected
from hydra_engine.broker.gateway import BrokerGateway
from hydra_engine.broker.market_data import BarFetcher, QuoteFetcher
from hydra_engine.markets import CATALOG
from hydra_engine.store.database import Store

ACCOUNT = "DU1234567"


def test_the_gateway_is_no_mixin_and_holds_its_parts() -> None:
    assert BrokerGateway.__mro__ == (BrokerGateway, object)
    gw = BrokerGateway(port=45_999, client_id=7)
    assert isinstance(gw._account_reader, AccountReader)
    assert isinstance(gw._contract_book, ContractBook)
    assert isinstance(gw._quotes, QuoteFetcher)
    assert isinstance(gw._bars, BarFetcher)


def test_the_public_seams_keep_their_keywords() -> None:
    # the broker computes no daily P&L any more: the summary takes no store, date or calendar
    assert list(inspect.signature(BrokerGateway.get_account_summary).parameters) == ["self"]
    assert "as_of" in inspect.signature(BrokerGateway.resolve_contract).parameters
    for name in ("get_positions", "portfolio_mark", "contract_months", "known_month", "get_quote",
                 "get_daily_bars", "place_order", "cancel_order", "open_trades", "subscribe_executions",
                 "subscribe_late_commissions", "subscribe_connection", "subscribe_order_errors",
                 "add_rebind_hook", "set_position_book", "ensure_connected", "resync", "barrier"):
        assert callable(getattr(BrokerGateway, name)), name


async def test_account_reader_and_contract_book_work_without_a_gateway(make_exchange, ib_client) -> None:
    ex = await make_exchange()
    ib = await ib_client(client_id=21, ex=ex)
    channel = RequestChannel(ib, host="127.0.0.1", port=ex.port, timeout_s=5.0)
    reader = AccountReader(channel, account=lambda: ACCOUNT, now=ex.clock.now, positions_lock=asyncio.Lock())
    snap = await reader.summary()
    assert snap.account == ACCOUNT and snap.net_liquidation == pytest.approx(1_000_000.0)
    assert snap.daily_pnl is None  # the reader reports; it computes no P&L
    assert await reader.positions() == []

    book = ContractBook(channel, now=ex.clock.now)
    cl = CATALOG["CL"]
    resolved = await book.resolve(cl)
    assert resolved.active.symbol == "CL" and resolved.active.last_trade_date > ex.clock.now().date()
    assert book.known(resolved.active.con_id) == resolved.active
    assert book.known(-1) is None
    hours = await book.front_hours(cl)
    assert hours is not None and hours.tradingHours

    ib.disconnect()
    with pytest.raises(NotConnected):
        await reader.summary()
    with pytest.raises(NotConnected):
        await book.months(cl)


async def test_daily_pnl_is_the_engines_own_against_a_real_store(make_exchange, make_gateway, tmp_path) -> None:
    """The broker reports no daily P&L; the one computation (``execution.account_view``) measures
    the gateway's net liquidation against the store's close mark before the session."""
    ex = await make_exchange()
    store = await Store.open_path(tmp_path / "hydra.db", ACCOUNT, lock=False, clock=ex.clock)
    try:
        gw = make_gateway(ex)
        await gw.connect()
        assert (await gw.get_account_summary()).daily_pnl is None
        first = await account_view(gw, store.equity, dt.date(2018, 1, 8), weekdays)
        assert first.daily_pnl is None and not first.stale and first.base_date is None  # no mark yet: unknown
        await store.equity.record_mark(dt.date(2018, 1, 5), 990_000.0)  # a Friday
        view = await account_view(gw, store.equity, dt.date(2018, 1, 8), weekdays)
        assert view.daily_pnl == pytest.approx(10_000.0) and view.gate_pnl == pytest.approx(10_000.0)
        assert not view.stale and view.base_date == dt.date(2018, 1, 5)  # Friday's close, one session back
        assert view.peak_equity == pytest.approx(1_000_000.0)
        later = await account_view(gw, store.equity, dt.date(2018, 1, 9), weekdays)
        assert later.stale and later.gate_pnl == 0.0  # two sessions of P&L: flagged, not judged
    finally:
        await store.close()

