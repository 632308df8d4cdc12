"""Reference data through the real ib_async client at server versions 157 and 178."""

from __future__ import annotations

import datetime as dt

import pytest
from ib_async import ContFuture, Future

pytestmark = pytest.mark.timeout(60)


async def front(ib):
    return (await ib.reqContractDetailsAsync(Future("CL", exchange="NYMEX")))[0]


@pytest.mark.parametrize("version", [157, 178])
async def test_market_rule_named_by_contract_details(make_exchange, ib_client, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    for sym, tick in (("CL", 0.01), ("ZO", 0.25), ("ZR", 0.005)):
        cd = (await ib.reqContractDetailsAsync(Future(sym)))[0]
        [rule_id] = [int(x) for x in cd.marketRuleIds.split(",")]
        rule = await ib.reqMarketRuleAsync(rule_id)
        assert rule is not None and [(r.lowEdge, r.increment) for r in rule] == [(0.0, tick)]
        assert cd.minTick == tick
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    assert await ib.reqMarketRuleAsync(7) is None  # no product uses that rule: IB's validation error
    assert errors == [321]


@pytest.mark.parametrize("version", [157, 178])
async def test_head_timestamp_is_the_first_bar_of_the_loaded_history(make_exchange, ib_client, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = (await front(ib)).contract
    head = await ib.reqHeadTimeStampAsync(c, "TRADES", False, 1)
    first = ex.universe.daily_bars(c.conId, ex.clock.now().date(), 10**6)[0]
    opened = ex.feed.bounds("CL", first.date)[0]
    assert head == opened.replace(tzinfo=None)  # formatDate 1: UTC, as 'YYYYMMDD-HH:MM:SS'
    epoch = await ib.reqHeadTimeStampAsync(c, "TRADES", False, 2)
    assert epoch == opened
    [cf] = await ib.qualifyContractsAsync(ContFuture("CL", "NYMEX"))
    cont = await ib.reqHeadTimeStampAsync(cf, "TRADES", False, 2)
    assert cont <= epoch  # the continuous history starts with the universe


@pytest.mark.parametrize("version", [157, 178])
async def test_matching_symbols(make_exchange, ib_client, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    got = await ib.reqMatchingSymbolsAsync("Z")
    assert [d.contract.symbol for d in got] == ["ZO", "ZR"]
    assert all(d.derivativeSecTypes == ["FUT"] and d.contract.primaryExchange == "CBOT" for d in got)
    by_name = await ib.reqMatchingSymbolsAsync("crude")
    assert [d.contract.symbol for d in by_name] == ["CL"]
    if version >= 176:
        assert by_name[0].contract.description == "Light Sweet Crude Oil"
    assert await ib.reqMatchingSymbolsAsync("QQQQ") == []


@pytest.mark.parametrize("version", [157, 178])
async def test_sec_def_opt_params_empty_but_terminated(make_exchange, ib_client, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = (await front(ib)).contract
    assert await ib.reqSecDefOptParamsAsync("CL", "NYMEX", "FUT", c.conId) == []


@pytest.mark.parametrize("version", [157, 178])
async def test_historical_schedule(make_exchange, ib_client, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = (await front(ib)).contract
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    sched = await ib.reqHistoricalScheduleAsync(c, 5, useRTH=False)
    if version < 166:  # IB serves SCHEDULE from 166 on: before, an error ends the request
        assert errors == [162] and sched == []
        return
    assert sched.timeZone == "US/Central" and len(sched.sessions) == 5
    now = ex.clock.now()
    days = [dt.datetime.strptime(s.refDate, "%Y%m%d").date() for s in sched.sessions]
    assert days == sorted(days) and days[-1] == ex.feed.trade_date("CL", now)
    for s, d in zip(sched.sessions, days):
        assert s.startDateTime == f"{d - dt.timedelta(days=1):%Y%m%d}-17:00:00"  # Globex opens the evening before
        assert s.endDateTime == f"{d:%Y%m%d}-16:00:00"
    rth = await ib.reqHistoricalScheduleAsync(c, 2, useRTH=True)
    assert [s.startDateTime[-8:] for s in rth.sessions] == ["08:00:00", "08:00:00"]


@pytest.mark.parametrize("version", [157, 178])
async def test_user_info_family_codes_and_depth_exchanges(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    assert await ib.reqUserInfoAsync() == []  # ib_async ends it on USER_INFO and returns nothing
    codes: list = []
    ib.wrapper.familyCodes = lambda rows: codes.extend(rows)  # ib_async's own handler ignores them
    ib.client.reqFamilyCodes()
    await until(lambda: codes, what="family codes")
    assert [c.accountID for c in codes] == ["DU1234567"]
    depth = await ib.reqMktDepthExchangesAsync()
    assert {(d.exchange, d.secType) for d in depth} == {("NYMEX", "FUT"), ("CBOT", "FUT"), ("CME", "FUT")}


def test_contract_details_cache_holds_one_day(sim_universe) -> None:
    """Lock-step play covers thousands of days: the details cache keeps only the current day's,
    and a later day gets that day's trading hours, not a cached earlier day's."""
    import datetime as dt

    from hydra_engine.sim.datafeed import DataFeed
    from hydra_engine.sim.request_fields import ContractReq

    feed = DataFeed(sim_universe)
    req = ContractReq(0, "CL", "FUT", "", None, "", "", "NYMEX", "", "USD", "", "")
    day = dt.datetime(2018, 3, 1, 15, 0, tzinfo=dt.timezone.utc)
    seen = []
    for i in range(40):
        now = day + dt.timedelta(days=i)
        views = [feed.details(r, now) for r in feed.resolve(req, now, False)]
        assert views and len(feed._details) == len(views) and len(feed._hours_cache) == 1
        seen.append(views[0].trading_hours)
    assert len(set(seen)) > 20  # the hours name each day's own sessions
