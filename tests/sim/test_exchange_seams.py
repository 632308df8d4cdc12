"""The exchange is composed of parts that meet through public seams (issue 12, "the composed kernel").

A client session reaches the exchange only through the ``ExchangeCore`` protocol; no module in
``hydra_engine.sim`` reads or writes another object's private members; no class is built from
mixins; module names say what they hold. The wire behaviour itself is covered by the other tests.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import typing
from pathlib import Path

import pytest

SIM_DIR = Path(__file__).resolve().parents[2] / "hydra_engine" / "sim"


def _foreign_private_accesses(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls`` (``self._a._b`` counts: it reaches into a part).
    A fresh instance a class method builds (``ex = cls()``) is the class's own business."""
    out: list[str] = []
    tree = ast.parse(path.read_text())
    own = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
           and isinstance(n.value.func, ast.Name) and n.value.func.id == "cls"
           for t in n.targets if isinstance(t, ast.Name)}  # fmt: skip
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls", *own):
            continue
        out.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_no_module_reaches_into_another_objects_private_members() -> None:
    found = [hit for p in sorted(SIM_DIR.glob("*.py")) for hit in _foreign_private_accesses(p)]
    assert found == []


def test_tests_of_the_exchange_use_its_public_surface_only() -> None:
    here = Path(__file__).resolve().parent
    found = [hit for p in sorted(here.glob("test_exchange_*.py")) if p.name != Path(__file__).name
             for hit in _foreign_private_accesses(p)]  # fmt: skip
    assert found == []


def test_embedded_exchange_holds_its_parts_instead_of_inheriting_them() -> None:
    from hydra_engine.sim import EmbeddedExchange
    from hydra_engine.sim.client_session import ClientSession

    assert EmbeddedExchange.__mro__ == (EmbeddedExchange, object)
    assert ClientSession.__mro__ == (ClientSession, object)


def test_sessions_see_the_exchange_through_the_exchange_core_protocol() -> None:
    from hydra_engine.sim.client_session import ClientSession
    from hydra_engine.sim.exchange_core import ExchangeCore

    assert getattr(ExchangeCore, "_is_protocol", False)
    hints = typing.get_type_hints(ClientSession.__init__)
    assert hints["core"] is ExchangeCore
    src = inspect.getsource(importlib.import_module("hydra_engine.sim.client_session"))
    assert "exchange_server" not in src and "EmbeddedExchange" not in src


def test_the_exchange_core_seam_has_no_any() -> None:
    from hydra_engine.sim import exchange_core

    tree = ast.parse(inspect.getsource(exchange_core))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "Any" not in names and "Any" not in attrs


async def test_the_embedded_exchange_satisfies_the_core_protocol(make_exchange) -> None:
    from hydra_engine.sim.exchange_core import ExchangeCore

    members = [m for m in vars(ExchangeCore) if not m.startswith("_")]
    assert "submit" in members and "account_book" in members
    ex = await make_exchange()
    assert [m for m in members if not hasattr(ex, m)] == []


@pytest.mark.parametrize(
    ("old", "new"),
    [("session", "client_session"), ("routing", "order_delivery"), ("state", "state_file"),
     ("paths", "intraday_paths")],
)  # fmt: skip
def test_module_names_say_what_they_hold(old: str, new: str) -> None:
    assert not (SIM_DIR / f"{old}.py").exists()
    importlib.import_module(f"hydra_engine.sim.{new}")
