"""The market side stands alone: no UI, nothing from the rest of hydra_engine, never the engine's slippage."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

MARKET_MODULES = ("clock", "calendar", "catalog", "history", "scenarios", "term_structure", "intraday_paths",
                  "fill_model", "universe")
SIM_DIR = Path(__file__).resolve().parents[2] / "hydra_engine" / "sim"


def test_fresh_interpreter_imports_only_the_sim_package() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import hydra_engine.sim.{m}\n" for m in MARKET_MODULES)
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=SIM_DIR.parents[1], check=True)
    mods = json.loads(out.stdout)
    assert "textual" not in mods and "hydra_tui" not in mods
    engine = [m for m in mods if m.startswith("hydra_engine.") and not m.startswith("hydra_engine.sim")]
    assert engine == []


def test_market_modules_never_import_engine_code_statically() -> None:
    for name in MARKET_MODULES:
        tree = ast.parse((SIM_DIR / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                mod = node.module
                assert not mod.startswith("hydra_engine.") or mod.startswith("hydra_engine.sim"), (name, mod)
                assert "slippage" not in mod and "textual" not in mod, (name, mod)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("textual"), (name, alias.name)
                    assert not alias.name.startswith("hydra_engine.") or alias.name.startswith("hydra_engine.sim")
