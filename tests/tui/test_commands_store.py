"""The read-only commands (journal, diagnose, fill-report, status) and replay's report, against a
store made once per module by a real ``hydra-tui replay --days 5 --data-dir D`` (agent on)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from commands_helpers import STORE, hydra, hydra_json


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(data dir, replay's --json report) of a 5-day replay kept in the data dir."""
    data = tmp_path_factory.mktemp("replayed")
    code, report = hydra_json("replay", "--days", "5", "--data-dir", str(data), timeout=240)
    assert code == 0
    return data, report


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------- replay


def test_replay_keeps_its_store_and_reports_per_market(replayed: tuple[Path, dict[str, Any]]) -> None:
    data, r = replayed
    db = data / STORE / "hydra.db"
    assert db.is_file() and r["store"] == str(data / STORE)
    assert r["days"] == 5 and r["cycles"] == 10 == rows(db, "SELECT COUNT(*) FROM cycles")[0][0]
    assert r["fills"] == rows(db, "SELECT COUNT(*) FROM fills")[0][0] > 0
    by_symbol = {m["symbol"]: m for m in r["per_market"]}
    assert set(by_symbol) == {"CL", "ZO"}
    zo = by_symbol["ZO"]
    assert zo["scenario"]["name"] == "reversion_to_momentum" and zo["change_dates"] == ["2018-03-15"]
    assert zo["change_in_run"] is None  # five days from 2018-01-02 end long before the change
    assert by_symbol["CL"]["scenario"]["synthetic"] is False
    # P&L per market, marked to each traded month's closes, adds up to the account's change in net liquidation
    total = sum((m["pnl_before"] or 0.0) + (m["pnl_after"] or 0.0) for m in r["per_market"])
    assert total == pytest.approx(r["pnl"], abs=0.01)
    hit = zo["hit_before"]
    assert 0 < hit["n"] <= 5 and 0 <= hit["hits"] <= hit["n"]
    journal_alarms = rows(db, "SELECT COUNT(*) FROM agent_journal WHERE entry_type = 'observation' AND outcome = 'alarm'")[0][0]
    assert r["alarms"] == journal_alarms == sum(m["alarms"] for m in r["per_market"])


def test_a_second_replay_on_the_kept_store_continues_the_account(replayed: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "again"
    shutil.copytree(replayed[0], data)
    code, r = hydra_json("replay", "--days", "1", "--data-dir", str(data), "--set", "agent.enabled=false", timeout=180)
    assert code == 0
    assert r["first_date"] > replayed[1]["last_date"] and r["cycles"] == 2  # only this run's cycles are counted
    assert rows(data / STORE / "hydra.db", "SELECT COUNT(*) FROM cycles")[0][0] == 12


def test_replay_rich_report_on_a_temporary_store(tmp_path: Path) -> None:
    out = hydra("replay", "--days", "2", "--markets", "ZO", "--set", "agent.enabled=false", "--set",
                f"store.data_dir={tmp_path}", timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("2 trading day(s)", "markets ZO", "Per market: drift and healing", "Per market: before and after the change",
                 "reversion_to_momentum", "2018-03-15", "no change in this run", "temporary"):
        assert text in out.stdout, text
    assert "CL" not in out.stdout.split("Per market")[1].split("Reconciliation")[0]  # --markets ZO: CL not traded
    assert "2/2 days" in out.stderr  # the progress bar, on stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "needle"), [
    (("--days", "0"), "--days 0"),
    (("--markets", "CL,XX"), "unknown market XX; the configured markets are CL, ZO"),
    (("--days", "x"), "invalid int value"),
])
def test_replay_bad_arguments_exit_2(args: tuple[str, ...], needle: str) -> None:
    out = hydra("replay", *args, timeout=60)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------- journal


def test_journal_merges_agent_and_operator_entries_newest_first(replayed: tuple[Path, dict[str, Any]]) -> None:
    data, _ = replayed
    code, body = hydra_json("journal", "--data-dir", str(data), "--limit", "500")
    assert code == 0
    entries = body["entries"]
    assert {e["source"] for e in entries} == {"agent", "operator"}
    days = [e["when"][:10] for e in entries]
    assert days == sorted(days, reverse=True)
    assert any(e["type"] == "note" and "engine stopped" in e["summary"] for e in entries)
    assert {e["market"] for e in entries if e["source"] == "agent"} == {"CL", "ZO"}

    code, only = hydra_json("journal", "--data-dir", str(data), "--type", "observation", "--market", "ZO")
    assert code == 0 and only["entries"] and {(e["type"], e["market"]) for e in only["entries"]} == {("observation", "ZO")}
    code, late = hydra_json("journal", "--data-dir", str(data), "--since", "2018-01-05")
    assert code == 0 and late["entries"] and all(e["when"][:10] >= "2018-01-05" for e in late["entries"])
    code, few = hydra_json("journal", "--data-dir", str(data), "--limit", "3")
    assert code == 0 and len(few["entries"]) == 3

    table = hydra("journal", "--data-dir", str(data), "--limit", "5")
    assert table.returncode == 0
    for header in ("When", "Source", "Type", "Outcome", "Market", "Actor", "Summary"):
        assert header in table.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (("--type", "gossip"), "not a journal entry type"),
    (("--since", "yesterday"), "--since 'yesterday': expected an ISO date"),
    (("--market", "XX"), "unknown market; this store knows CL, ZO"),
    (("--limit", "0"), "--limit 0: must be 1 or more"),
])
def test_journal_bad_arguments_exit_2(replayed: tuple[Path, dict[str, Any]], args: tuple[str, ...], needle: str) -> None:
    out = hydra("journal", "--data-dir", str(replayed[0]), *args, timeout=60)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert out.stderr.startswith("hydra-tui journal: ") and len(out.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- diagnose


def test_diagnose_shows_each_markets_detectors_and_champion(replayed: tuple[Path, dict[str, Any]]) -> None:
    data, _ = replayed
    code, body = hydra_json("diagnose", "--data-dir", str(data))
    assert code == 0
    markets = body["markets"]
    assert set(markets) == {"CL", "ZO"}
    champions = dict(rows(data / STORE / "hydra.db", "SELECT market, version FROM models WHERE status = 'champion'"))
    for m, d in markets.items():
        assert d["champion"]["version"] == champions[m]
        assert d["detectors"], m
        for r in d["detectors"]:
            below = r["detector"].endswith("_p")
            assert r["alarm"] == (r["statistic"] < r["threshold"] if below else r["statistic"] >= r["threshold"])
    code, one = hydra_json("diagnose", "--data-dir", str(data), "--market", "zo")
    assert code == 0 and list(one["markets"]) == ["ZO"]
    text = hydra("diagnose", "--data-dir", str(data))
    assert text.returncode == 0 and "Agent CL" in text.stdout and "Agent ZO" in text.stdout and "Alarm at" in text.stdout
    bad = hydra("diagnose", "--data-dir", str(data), "--market", "QQ")
    assert bad.returncode == 2 and "unknown market" in bad.stderr


# ---------------------------------------------------------------------------------------------- fill-report


def test_fill_report_table_and_per_market_panels(replayed: tuple[Path, dict[str, Any]]) -> None:
    data, report = replayed
    out = hydra("fill-report", "--data-dir", str(data), "--reconcile")
    assert out.returncode == 0, out.stderr
    for header in ("Time", "Symbol", "Dir", "Qty", "Order Price", "Fill Price", "Pred Slip", "Actual Slip", "Latency"):
        assert header in out.stdout
    for row in ("N Fills", "Mean Predicted", "Mean Actual", "Bias", "RMSE", "Correlation", "Pessimism Multiplier"):
        assert row in out.stdout
    traded = {m for (m,) in rows(data / STORE / "hydra.db", "SELECT DISTINCT symbol FROM fills")}
    for m in traded:
        assert f"Reconciliation {m}" in out.stdout
    assert "POOLED" in out.stdout
    code, body = hydra_json("fill-report", "--data-dir", str(data), "--reconcile", "--limit", "100")
    assert code == 0 and len(body["fills"]) == report["fills"]
    assert body["reconciliation"]["n_fills"] == report["fills"]
    code, none = hydra_json("fill-report", "--data-dir", str(data), "--since", "2030-01-01")
    assert code == 0 and none["fills"] == []


@pytest.mark.parametrize(("args", "needle"), [
    (("--symbol", "XX"), "--symbol 'XX': unknown market"),
    (("--since", "31/01/2018"), "expected an ISO date"),
    (("--limit", "-1"), "must be 1 or more"),
])
def test_fill_report_bad_arguments_exit_2(replayed: tuple[Path, dict[str, Any]], args: tuple[str, ...], needle: str) -> None:
    out = hydra("fill-report", "--data-dir", str(replayed[0]), *args, timeout=60)
    assert out.returncode == 2 and needle in out.stderr, out.stderr


def test_colours_follow_the_plan() -> None:
    from rich.console import Console

    from hydra_tui.commands.report_tables import bias_style, direction

    assert (bias_style(0.05), bias_style(-0.3), bias_style(0.5), bias_style(-2.0)) == ("green", "yellow", "red", "red")
    console = Console(record=True, force_terminal=True, color_system="standard", width=40)
    console.print(direction("BUY"), direction("SELL"))
    styled = console.export_text(styles=True)
    assert "\x1b[32mBUY" in styled and "\x1b[31mSELL" in styled


# ---------------------------------------------------------------------------------------------- status without an engine


def test_status_without_a_running_engine_is_down(replayed: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, _ = replayed
    code, body = hydra_json("status", "--data-dir", str(data))
    assert code == 2 and body["status"] == "down" and body["exit_code"] == 2
    assert "no engine runs on this store" in body["reasons"][0] and "stopped" in body["reasons"][0]
    assert body["engine"]["mode"] == "SIM"  # the last snapshot the engine wrote is still shown
    text = hydra("status", "--data-dir", str(data))
    assert text.returncode == 2 and "HYDRA DOWN" in text.stdout
    empty = hydra("status", "--data-dir", str(tmp_path))
    assert empty.returncode == 2 and "no store at" in empty.stdout and str(tmp_path) in empty.stdout
    afile = tmp_path / "a-file"
    afile.write_text("x")
    bad = hydra("status", "--data-dir", str(afile))
    assert bad.returncode == 2 and "not a directory" in bad.stderr
