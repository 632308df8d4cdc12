"""One real two-day run, shared: each test copies its data dir and breaks the copy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import QUICK, hydra  # noqa: E402


@pytest.fixture(scope="session")
def traded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir after two lock-step days with at least one fill and an open position."""
    base = tmp_path_factory.mktemp("traded")
    out = hydra("--no-ui", "--days", "2", "--data-dir", str(base), *QUICK)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "positions flat" not in out.stdout, out.stdout
    return base
