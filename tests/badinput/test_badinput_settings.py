"""Item 9 of issue 13: every settings section validated before anything starts, one schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import hydra
from hydra_engine.config import EXTRA_SECTIONS, ConfigError, load_settings, section_schema


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hydra.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("[sim]\nsed = 3\n", r"sim\.sed: unknown key; known keys: faults, seed, starting_cash; did you mean 'seed'\?"),
        ("[sim]\nstarting_cash = -5\n", r"sim\.starting_cash = -5.0: must be between 1.0 and"),
        ("[sim]\nfaults = \"explode@order=1\"\n", r"sim\.faults = 'explode@order=1': "),
        ("[tui]\ntheme = \"dark\"\n", r"tui\.theme: unknown key; \[tui\] has no settings yet"),
        ("[model]\nfamily = \"x\"\n", r"model\.family: unknown key; \[model\] has no settings yet"),
        ("[agent]\nalarms_per_1000_days = 1\n",
         r"agent\.alarms_per_1000_days: unknown key; .*did you mean 'alarms_per_1000_days_per_stream'\?"),
        ("[agent]\nalarms_per_1000_days_per_stream = -1\n",
         r"agent\.alarms_per_1000_days_per_stream = -1.0: must be between 0.001 and 1000"),
        ("[agent]\nenabled = \"sometimes\"\n", r"agent\.enabled = 'sometimes': must be true or false"),
        ("[agent]\nwf_splits = 1\n", r"agent\.wf_splits = 1: must be between 2 and"),
        ("[agent.gate]\ndm_alpha = 0.7\n", r"agent\.gate\.dm_alpha = 0.7: must be between"),
        ("[agent.gate]\ndm_alfa = 0.1\n", r"agent\.gate\.dm_alfa: unknown key; .*did you mean 'dm_alpha'\?"),
        ("[agent.rollback]\nwatch_days = 0\n", r"agent\.rollback\.watch_days = 0: must be between 1 and"),
        ("[agent.playbook]\nbudget_per_cycle = -1\n", r"agent\.playbook\.budget_per_cycle = -1: must be between 0"),
        ("[agent]\ninitial_autonomy = \"reckless\"\n", r"agent\.initial_autonomy = 'reckless': must be one of"),
        ("[agent.default_spec]\nfamily = \"oracle\"\n", r"agent\.default_spec: "),
        ("[risk]\nmax_contracts = -1\n", r"risk\.max_contracts = -1: must be between 0 and"),
        ("[risk]\nmax_contract = 3\n", r"risk\.max_contract: unknown key; .*did you mean 'max_contracts'\?"),
        ("[execution]\nlong_threshold = 2\n", r"execution\.long_threshold = 2.0: must be between 0.5 and 1.0"),
        ("[execution]\npatience = 1\n", r"execution\.patience: unknown key; .*did you mean 'patience_steps'\?"),
        ("[runer]\nx = 1\n", r"runer: unknown section; known sections: .*; did you mean 'runner'\?"),
        ("[broker]\nprot = 4002\n", r"broker\.prot: unknown key; .*did you mean 'port'\?"),
    ],
)
def test_every_section_is_checked_when_the_settings_load(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        load_settings(write(tmp_path, text))
    assert str(tmp_path / "hydra.toml") in str(info.value)  # the file is named


def test_set_override_is_refused_with_key_and_range() -> None:
    with pytest.raises(ConfigError, match=r"agent\.alarms_per_1000_days_per_stream = -1.0: must be between") as info:
        load_settings(None, {"agent.alarms_per_1000_days_per_stream": "-1"})
    assert info.value.key == "agent.alarms_per_1000_days_per_stream"


def test_every_section_has_a_schema_and_its_defaults_load(tmp_path: Path) -> None:
    import dataclasses
    import enum
    import tomllib

    lines: list[str] = []
    for name in EXTRA_SECTIONS:
        cls = section_schema(name)
        assert dataclasses.is_dataclass(cls), name
        scalars = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)
                   if isinstance(getattr(cls(), f.name), (bool, int, float, str))}
        scalars = {k: v.value if isinstance(v, enum.Enum) else v for k, v in scalars.items()}
        lines.append(f"[{name}]")
        lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, str) else v}"
                  for k, v in scalars.items()]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)
    s = load_settings(write(tmp_path, text))
    assert set(s.sections) == set(EXTRA_SECTIONS)


def test_cli_refuses_a_bad_agent_value_before_starting(tmp_path: Path) -> None:
    out = hydra("--no-ui", "--days", "1", "--data-dir", str(tmp_path),
                "--set", "agent.alarms_per_1000_days_per_stream=-1", timeout=60)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "agent.alarms_per_1000_days_per_stream = -1.0: must be between 0.001 and 1000" in out.stderr
    assert not (tmp_path / "sim-DU1234567" / "hydra.db").exists()  # nothing started
    bad = write(tmp_path, "[tui]\nthme = 1\n")
    out = hydra("--no-ui", "--days", "1", "--config", str(bad), "--data-dir", str(tmp_path), timeout=60)
    assert out.returncode == 2 and str(bad) in out.stderr and "tui.thme: unknown key" in out.stderr


def test_agent_enabled_words_are_read_as_booleans() -> None:
    for word, expected in (("no", False), ("off", False), ("yes", True), ("true", True)):
        s = load_settings(None, {"agent.enabled": word})
        assert s.sections["agent"]["enabled"] is expected, word


def test_sim_section_reaches_the_exchange_typed() -> None:
    from hydra_engine.config import SimSettings

    s = load_settings(None, {"sim.seed": "3", "sim.starting_cash": "5e5", "sim.faults": "reject@order=2"})
    sim = s.section("sim", SimSettings)
    assert (sim.seed, sim.starting_cash, sim.faults) == (3, 500_000.0, "reject@order=2")
