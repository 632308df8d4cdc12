"""The exchange's own record: every order it accepted and every execution it booked, appended once.

The state file holds only what a restart needs (working orders, the day's executions), as a gateway
does. Checking weeks of trading against a client's journal needs the whole history, so beside the
state file the exchange appends one JSON line per new order (its orderRef, permId and ids) and per
execution, and fsyncs it in the same step that saves the state, before anything it describes is
published: what a client has seen is always in the record. A restart reads the record back so
nothing is appended twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

AUDIT_SUFFIX = ".audit.jsonl"


def audit_path(state_path: Path) -> Path:
    """The record kept beside a state file (``exchange.json`` -> ``exchange.json.audit.jsonl``)."""
    return Path(str(state_path) + AUDIT_SUFFIX)


class AuditLog:
    """Append-only JSON lines: ``{"type": "order", ...}`` and ``{"type": "execution", ...}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._orders: set[tuple[int, int, int]] = set()
        self._executions: set[str] = set()
        if path.exists():
            with open(path, "rb+") as fh:  # a torn last line (a kill mid-append) must not swallow the next record
                if fh.seek(0, os.SEEK_END) and (fh.seek(-1, os.SEEK_END), fh.read(1))[1] != b"\n":
                    fh.write(b"\n")
            for rec in read_audit(path):
                if rec.get("type") == "order":
                    self._orders.add((int(rec["client_id"]), int(rec["order_id"]), int(rec["perm_id"])))
                elif rec.get("type") == "execution":
                    self._executions.add(str(rec["exec_id"]))

    def append(self, orders: Iterable[Any], executions: Iterable[Any]) -> int:
        """Append the orders and executions not recorded yet (blocking: call from a thread); returns
        how many lines were written. ``orders``: objects with client_id, order_id, perm_id, order_ref,
        con_id, action, total_qty, order_type, placed_at; ``executions``: ``Execution``-like."""
        lines = []
        for o in orders:
            key = (int(o.client_id), int(o.order_id), int(o.perm_id))
            if key in self._orders:
                continue
            self._orders.add(key)
            lines.append({"type": "order", "client_id": key[0], "order_id": key[1], "perm_id": key[2],
                          "order_ref": o.order_ref, "account": o.account, "con_id": o.con_id, "action": o.action,
                          "qty": o.total_qty, "order_type": o.order_type, "placed_at": o.placed_at.isoformat()})
        for e in executions:
            if e.exec_id in self._executions:
                continue
            self._executions.add(e.exec_id)
            lines.append({"type": "execution", **e.to_dict()})
        if not lines:
            return 0
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(rec, default=str) + "\n" for rec in lines))
            fh.flush()
            os.fsync(fh.fileno())
        return len(lines)


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every record in ``path``; a torn last line (a kill mid-append) is skipped."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
