"""Orders that act on each other: bracket parents and children, and OCA groups.

IB's rules, as the exchange applies them:

- A child (``parentId`` set) is held, PreSubmitted, until its parent has filled completely; then it
  works from that instant on (its fills use only later prints). A parent that ends without filling
  (cancelled, rejected, expired, an auction limit not met) cancels its held children.
- The children of one parent form an implicit OCA group that reduces with block (a take-profit's
  fill shrinks the stop-loss by as much), unless they name an OCA group of their own.
- OCA groups (``ocaGroup`` per account) act when a member executes, wholly or in part:
  ``ocaType`` 1 cancels every other working member; 2 and 3 shrink each other member in proportion
  (the filled share of the executing order, rounded to whole contracts; a member shrunk to what it
  has filled is done). "With block" (1 and 2) is IB's overfill protection: only one member of the
  group executes on any one print, the others act on later prints; without block (3) members that
  trade on the same print all fill, and the group may overfill, as IB warns. A member cancelled by
  the client leaves the others working (OCA acts on executions). ``ocaType`` 0 with a group counts
  as 1.

Pure bookkeeping over the book's orders: every change is returned as ``LinkChange``s (the order and
whether it was cancelled, shrunk or released) for the book to turn into events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .orders import WorkingOrder

ACTIVE = ("PreSubmitted", "Submitted")
GroupKey = tuple[str, str, int]
BLOCKING = (1, 2)


@dataclass(frozen=True, slots=True)
class LinkChange:
    """What a link did to ``order``: ``cancelled``, ``shrunk`` or ``released`` (a child activated)."""

    order: WorkingOrder
    what: str


class OrderLinks:
    """Parent/child and OCA relations over the book's order dict (read live, never copied)."""

    def __init__(self, orders: Mapping[tuple[int, int], WorkingOrder]) -> None:
        self._orders = orders

    # ----- relations --------------------------------------------------------------------------
    def parent(self, o: WorkingOrder) -> WorkingOrder | None:
        return self._orders.get((o.client_id, o.parent_id)) if o.parent_id else None

    def children(self, o: WorkingOrder) -> list[WorkingOrder]:
        return sorted((c for c in self._orders.values() if c.parent_id == o.order_id and c.client_id == o.client_id),
                      key=lambda c: c.order_id)  # fmt: skip

    def held(self, o: WorkingOrder) -> bool:
        """A child waiting for its parent to fill completely."""
        p = self.parent(o)
        return p is not None and p.status != "Filled"

    @staticmethod
    def group(o: WorkingOrder) -> GroupKey | None:
        """The OCA group ``o`` belongs to: its named group, or its parent's implicit one."""
        if o.oca_group:
            return ("oca", f"{o.account}\x00{o.oca_group}", 0)
        if o.parent_id:
            return ("bracket", str(o.client_id), o.parent_id)
        return None

    @staticmethod
    def group_type(o: WorkingOrder) -> int:
        if o.oca_group:
            return o.oca_type if o.oca_type in (1, 2, 3) else 1
        return 2 if o.parent_id else 0

    def peers(self, o: WorkingOrder) -> list[WorkingOrder]:
        """Working members of ``o``'s group other than ``o`` (held children included)."""
        key = self.group(o)
        if key is None:
            return []
        return [p for p in self._orders.values()
                if p is not o and p.status in ACTIVE and self.group(p) == key]  # fmt: skip

    def blocks(self, o: WorkingOrder) -> bool:
        """Whether ``o``'s group lets only one member execute per print."""
        return self.group(o) is not None and self.group_type(o) in BLOCKING

    def acts_on_fill(self, o: WorkingOrder, completes: bool) -> bool:
        """Whether a fill of ``o`` changes another order (so later fills must be replayed)."""
        if self.peers(o):
            return True
        return completes and any(c.status in ACTIVE for c in self.children(o))

    # ----- consequences -------------------------------------------------------------------------
    def after_fill(self, o: WorkingOrder, qty: float, t: dt.datetime) -> list[LinkChange]:
        """``o`` executed ``qty`` at ``t``: act on its group, release its children when complete."""
        out: list[LinkChange] = []
        kind = self.group_type(o)
        for p in self.peers(o):
            if kind == 1:
                out += self._end(p, t)
                continue
            cut = int(round(qty * p.total_qty / o.total_qty)) if o.total_qty > 0 else 0
            if cut <= 0:
                continue
            p.total_qty = max(p.filled, p.total_qty - cut)
            if p.remaining <= 0:
                if p.filled > 0:
                    p.status, p.done_at = "Filled", t
                    out.append(LinkChange(p, "shrunk"))
                else:
                    out += self._end(p, t)
            else:
                out.append(LinkChange(p, "shrunk"))
        if o.status == "Filled":
            out += [LinkChange(c, "released") for c in self.children(o) if c.status in ACTIVE]
        return out

    def after_end(self, o: WorkingOrder, t: dt.datetime) -> list[LinkChange]:
        """``o`` ended without filling completely (cancelled, rejected, expired): cancel its held
        children, and theirs."""
        if o.status == "Filled":
            return []
        out: list[LinkChange] = []
        for c in self.children(o):
            if c.status in ACTIVE or c.status == "Staged":
                out += self._end(c, t)
        return out

    def _end(self, o: WorkingOrder, t: dt.datetime) -> list[LinkChange]:
        o.status, o.done_at = "Cancelled", t
        return [LinkChange(o, "cancelled"), *self.after_end(o, t)]

    def staged_family(self, o: WorkingOrder) -> list[WorkingOrder]:
        """Staged orders that ``o``'s transmission sends with it: its parent and the parent's other
        staged children, and ``o``'s own staged children (parent first, then by order id)."""
        out: list[WorkingOrder] = []
        p = self.parent(o)
        if p is not None and p.status == "Staged":
            out.append(p)
        family: Iterable[WorkingOrder] = [*(self.children(p) if p is not None else []), *self.children(o)]
        for c in sorted(family, key=lambda c: c.order_id):
            if c is not o and c.status == "Staged" and c not in out:
                out.append(c)
        return out
