"""Shared fixtures for the operations tests: a real store and a loopback webhook receiver."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from ops_helpers import WebhookReceiver

from hydra_engine.store.database import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data", "sim", "DU7654321")
    yield s
    await s.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()
