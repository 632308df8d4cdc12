"""Helpers shared by the app's Pilot tests (imported by module name, like the other test siblings)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra_engine.config import load_settings
from hydra_tui.app import HydraApp

ALWAYS_TAKE_A_SIDE = {"execution.long_threshold": 0.5, "execution.short_threshold": 0.5}
"""Mechanics under test, not the champion's edge: a champion that always takes a side trades."""


def make_app(tmp_path: Path, universe: Any, *, days: int | None = 2, agent: bool = False, **overrides: Any) -> HydraApp:
    settings = load_settings(None, {**ALWAYS_TAKE_A_SIDE, **overrides})
    return HydraApp(settings, data_dir=tmp_path, universe=universe, agent=agent, day_seconds=0, days=days)


async def until(pilot: Any, cond: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Wait on a condition (events, not fixed sleeps), letting the App process messages."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


def header(app: HydraApp) -> str:
    from hydra_tui.widgets.header import HydraHeader

    return str(app.query_one(HydraHeader).render())


def notified(app: HydraApp, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def wait_worker_free(pilot: Any, app: HydraApp) -> None:
    """Let the App's command workers finish (approve, rollback...)."""
    await until(pilot, lambda: not [w for w in app.workers if w.group == "command" and not w.is_finished],
                what="command workers finished")


class SessionSpy:
    """Records every client id that starts an API session on an embedded exchange (the stand-in for
    IB Gateway), so a test can say which sessions were opened."""

    def __init__(self, exchange: Any) -> None:
        self.client_ids: list[int] = []
        self._register = exchange.registry.register
        exchange.registry.register = self._record

    def _record(self, session: Any) -> None:
        self.client_ids.append(int(session.client_id))
        self._register(session)


FROZEN = dt.datetime(2018, 3, 15, 21, 15, tzinfo=dt.timezone.utc)


async def click_into(pilot: Any, selector: str) -> None:
    """Click a widget of the current screen once it is laid out (a click before the first layout lands
    wherever the widget is not yet), and wait until it has the focus."""
    screen = pilot.app.screen
    await until(pilot, lambda: screen.query_one(selector).region.area > 0, what=f"{selector} laid out")
    await pilot.click(selector)
    await until(pilot, lambda: screen.focused is screen.query_one(selector), what=f"{selector} focused")
