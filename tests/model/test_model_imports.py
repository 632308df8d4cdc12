"""The model layer imports neither the UI nor the simulator (fresh interpreter, real import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_model_package_imports_no_ui_and_no_sim() -> None:
    code = (
        "import sys\n"
        "import hydra_engine.model.features, hydra_engine.model.baseline, hydra_engine.model.walk_forward\n"
        "import hydra_engine.model.metrics, hydra_engine.model.registry, hydra_engine.model.champion\n"
        "import hydra_engine.store.migrations.v003_models\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'hydra_tui') or m.startswith('hydra_engine.sim'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
