"""The parser and the rules: every command's --help, one-line errors (exit 2), ``hydra-tui --help``
importing no engine module, the status rules (healthy / degraded / down) on snapshots, and
constants the commands repeat kept equal to the engine's."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from commands_helpers import ROOT, env, hydra
from hydra_tui.cli import build_parser, main

COMMANDS = ("status", "diagnose", "journal", "approve", "rollback", "pause", "resume", "run", "reset-peak", "flatten",
            "fill-report", "paper-trade", "replay", "sim", "serve")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: hydra-tui {command if command != 'run' else 'resume'}") or "usage:" in text


def test_top_level_help_lists_every_command_and_imports_no_engine_module() -> None:
    code = ("import sys, contextlib, io\n"
            "from hydra_tui.cli import main\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0\n"
            "print(sorted(m for m in sys.modules if m == 'hydra_engine' or m.startswith('hydra_engine.')))\n"
            "print(buf.getvalue())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, _, help_text = out.stdout.partition("\n")
    assert first == "[]"
    for command in COMMANDS:
        if command != "run":
            assert command in help_text, command
    status_help = hydra("status", "--help", timeout=60)
    assert status_help.returncode == 0
    for word in ("healthy (exit 0)", "degraded (exit 1)", "down (exit 2)", "paused", "breaker"):
        assert word in status_help.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (("status", "--bogus"), "hydra-tui status: unrecognized arguments: --bogus"),
    (("journal", "--limit", "many"), "invalid int value: 'many'"),
    (("paper-trade", "restart"), "invalid choice: 'restart'"),
    (("--nope",), "hydra-tui: unrecognized arguments: --nope"),
])
def test_bad_arguments_are_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    out = hydra(*args, timeout=60)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_sim_options_are_parsed_when_sim_runs() -> None:
    args, extra = build_parser().parse_known_args(["sim", "--port", "0", "--seed", "3"])
    assert args.run == "sim" and extra == ["--port", "0", "--seed", "3"]
    from hydra_tui.cli import sim_parser

    sim = sim_parser().parse_args(extra)
    assert sim.port == 0 and sim.seed == 3
    bad = hydra("sim", "--speed", "fast", timeout=60)
    assert bad.returncode == 2 and "hydra-tui sim: argument --speed: invalid float value" in bad.stderr


def test_paper_trade_refuses_a_live_port_before_connecting(tmp_path) -> None:
    out = hydra("paper-trade", "start", "--port", "4001", "--data-dir", str(tmp_path), timeout=60)
    assert out.returncode == 2 and "live" in out.stderr and "--yes-i-mean-live" in out.stderr
    assert "HYDRA LIVE" in out.stdout  # the red panel
    assert not any(tmp_path.iterdir())  # nothing was started: no store, no log


def test_constants_repeated_by_the_commands_match_the_engine() -> None:
    from hydra_engine.agent.journal import ENTRY_TYPES
    from hydra_engine.engine import SIM_DEFAULT_ACCOUNT
    from hydra_engine.store.ops_journal import OpsKind
    from hydra_tui.commands.journal import AGENT_TYPES, operator_types
    from hydra_tui.commands.store_reader import SIM_DEFAULT_ACCOUNT as READER_ACCOUNT

    assert READER_ACCOUNT == SIM_DEFAULT_ACCOUNT
    assert AGENT_TYPES == ENTRY_TYPES
    assert {k.value.lower() for k in OpsKind} | {"fill_conflict"} == set(operator_types())


# ---------------------------------------------------------------------------------------------- the status rules


NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def snap(age_s: float = 1.0, pid: int = 4242, **data: object) -> object:
    from hydra_engine.operator_requests import StatusSnapshot

    engine = {"connected": True, "connection": "connected", "trading_state": "ACTIVE", "paused": False,
              "size_fraction": 1.0}
    engine.update(data.pop("engine", {}))  # type: ignore[arg-type]
    body = {"engine": engine, "stopped": False, "risk": {"trading_state": engine["trading_state"], "breakers": []},
            **data}
    return StatusSnapshot(NOW - dt.timedelta(seconds=age_s), pid, body)


def test_status_rules() -> None:
    from hydra_tui.commands.status import StoreFacts, judge

    ok = StoreFacts(latest_cycles={"CL": ("2018-01-08", "FINISHED")})
    assert judge(snap(), 4242, ok, now=NOW).level == "healthy"
    assert judge(snap(), 4242, ok, now=NOW).exit_code == 0
    down = [judge(None, None, ok, now=NOW), judge(snap(), None, ok, now=NOW), judge(snap(age_s=16), 4242, ok, now=NOW),
            judge(snap(stopped=True), 4242, ok, now=NOW), judge(snap(pid=1), 4242, ok, now=NOW)]
    assert [h.level for h in down] == ["down"] * 5 and all(h.exit_code == 2 for h in down)
    assert "15 s" in down[2].reasons[0] and "starting" in down[4].reasons[0]
    cases = {
        "broker not connected": snap(engine={"connected": False, "connection": "reconnecting"}),
        "trading state HALTED": snap(engine={"trading_state": "HALTED"}),
        "paused (operator)": snap(engine={"paused": True}, pause_reason="operator"),
        "re-entry": snap(engine={"size_fraction": 0.5}),
        "ZO de-risked": snap(engine={"derisked": {"ZO": 0.0}}),
        "risk state not persisted": snap(risk={"trading_state": "ACTIVE", "breakers": [], "persist_error": "disk full"}),
        "breaker daily_loss TRIGGERED": snap(risk={"trading_state": "ACTIVE", "breakers": [
            {"name": "daily_loss", "state": "TRIGGERED", "cooldown_remaining": 1, "reason": "-2.1 %"}]}),
    }
    for needle, s in cases.items():
        h = judge(s, 4242, ok, now=NOW)
        assert h.level == "degraded" and h.exit_code == 1 and any(needle in r for r in h.reasons), (needle, h.reasons)
    facts = StoreFacts(open_conflicts=("CL",), latest_cycles={"ZO": ("2018-01-08", "FAILED")})
    h = judge(snap(), 4242, facts, now=NOW)
    assert h.level == "degraded" and len(h.reasons) == 2
    assert any("conflicting fill open in CL" in r for r in h.reasons) and any("ZO (2018-01-08) FAILED" in r for r in h.reasons)
