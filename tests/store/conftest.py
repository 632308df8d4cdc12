from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from hydra_engine.clock import ManualClock
from hydra_engine.store.database import Store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 20, 0, tzinfo=timezone.utc))


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock):
    s = await Store.open(tmp_path, "sim", "DU1234567", clock=clock)
    try:
        yield s
    finally:
        await s.close()
