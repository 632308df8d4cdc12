"""How order events reach clients: OPEN_ORDER / ORDER_STATUS / EXECUTION_DATA / COMMISSION_REPORT
batches per owning client, account pushes after fills, and the faults that act on delivery.

A part held by ``EmbeddedExchange`` (formerly a mixin reading its fields); it sees the exchange
only through the parts it is given. Faults it cannot carry out itself (restart, notice) are
returned to the exchange, which owns the listener and the client broadcast.

Persist before publish: with ``hold`` on (the exchange keeps a state file) nothing is sent at once;
the messages wait, in order, until the exchange has saved the state they describe and calls
``release``, so a crash can never unsee a fill or an acknowledgement a client has already read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import structlog

from . import messages as M
from .account_book import AccountBook
from .client_registry import ClientRegistry
from .faults import Fault, FaultPlan
from .orders import ACTIVE, BookEvent, Execution, WorkingOrder
from .wire_views import ContractWire, exec_view, order_view, status_fields

if TYPE_CHECKING:
    from .client_session import ClientSession

log = structlog.get_logger(__name__)


def corrected(e: Execution) -> Execution:
    """The correction IB would send for ``e``: the same fill under a new execId whose last group is
    one higher (``....01.01`` -> ``....01.02``); quantities and prices as booked."""
    base, _, seq = e.exec_id.rpartition(".")
    nxt = f"{int(seq, 16) + 1:02x}" if base and seq else "02"
    return replace(e, exec_id=f"{base}.{nxt}" if base else f"{e.exec_id}.02")


class OrderDelivery:
    """Turns order-book events into the messages each owning client receives."""

    def __init__(self, clients: ClientRegistry, contracts: ContractWire, accounts: AccountBook,
                 faults: FaultPlan, book_correction: Callable[[Execution], None] | None = None) -> None:  # fmt: skip
        """``book_correction``: records a corrected execution with the exchange's others (so a
        reconnecting client's reqExecutions and the state file see it)."""
        self._clients = clients
        self._contracts = contracts
        self._accounts = accounts
        self._faults = faults
        self._book_correction = book_correction
        self.hold = False
        """Keep every outgoing message until ``release`` (set when a state file is kept)."""
        self._held: list[Callable[[], None]] = []

    @property
    def held(self) -> int:
        """Messages (batches, pushes, answers) waiting for the state they describe to be saved."""
        return len(self._held)

    def later(self, send: Callable[[], None]) -> None:
        """Run ``send`` now, or after the next save when holding (keeps the order of everything)."""
        if self.hold or self._held:
            self._held.append(send)
        else:
            send()

    def behind(self, send: Callable[[], None]) -> None:
        """Run ``send`` now, or behind what is held (an answer never overtakes unsaved state)."""
        if self._held:
            self._held.append(send)
        else:
            send()

    def release(self, n: int | None = None) -> None:
        """Send the first ``n`` held messages (all when None): their state is on disk now."""
        n = len(self._held) if n is None else n
        batch, self._held = self._held[:n], self._held[n:]
        for send in batch:
            try:
                send()
            except Exception:  # noqa: BLE001 - one closed client must not stop the others
                log.exception("sim_release_failed")

    def send_open_orders(self, s: ClientSession, working: list[WorkingOrder], all_clients: bool) -> None:
        """Answer reqOpenOrders / reqAllOpenOrders (client 0 sees every client's orders)."""
        for o in working:
            if all_clients or o.client_id == s.client_id or s.client_id == 0:
                c = self._contracts.get(o.con_id)
                if c is not None:
                    s.send(M.open_order(c, order_view(o), s.version))
                    s.send(status_fields(o))
        s.send_end(M.open_order_end())

    def deliver(self, events: list[BookEvent], delay: float = 0.0) -> list[Fault]:
        """Send each event to its owning client (after ``delay`` real seconds), push account
        changes to subscribers; returns the fill-triggered faults left for the exchange to run."""
        touched: dict[str, set[int]] = {}
        post: list[Fault] = []
        for ev in events:
            o = ev.order
            s = self._clients.get(o.client_id)
            c = self._contracts.get(o.con_id)
            batch: list[M.Fields] = []
            ev_delay = delay
            dup = False
            correction: Execution | None = None
            if ev.kind == "fill":
                assert ev.execution is not None
                touched.setdefault(o.account, set()).add(o.con_id)
                for f in self._faults.on_fill():
                    if f.kind == "delay_fill":
                        ev_delay = max(ev_delay, f.param("s"))
                    elif f.kind == "dup_exec":
                        dup = True
                    elif f.kind == "correct":
                        correction = corrected(ev.execution)
                        if self._book_correction is not None:
                            self._book_correction(correction)
                        log.info("sim_fault_correct", exec_id=ev.execution.exec_id, correction=correction.exec_id)
                    elif f.kind == "drop" and s is not None:
                        log.info("sim_fault_drop_at_fill", client_id=o.client_id, exec_id=ev.execution.exec_id)
                        s.close("injected fault: drop at fill")
                        s = None
                    else:
                        post.append(f)
            if s is None or c is None:
                continue
            if ev.kind == "fill":
                e = ev.execution
                assert e is not None
                exec_msgs = [M.execution_data(-1, c, exec_view(e, c), s.version),
                             M.commission_report(e.exec_id, e.commission, self._accounts.currency(e.account),
                                                 e.realized_pnl)]  # fmt: skip
                batch.append(exec_msgs[0])
                batch.append(M.open_order(c, order_view(o), s.version))
                batch.append(status_fields(o))
                batch.append(exec_msgs[1])
                if dup:
                    batch += exec_msgs
                if correction is not None:  # IB corrects a fill with a new execId (last group + 1)
                    batch.append(M.execution_data(-1, c, exec_view(correction, c), s.version))
                    batch.append(M.commission_report(correction.exec_id, correction.commission,
                                                     self._accounts.currency(correction.account),
                                                     correction.realized_pnl))
            elif ev.kind == "status":
                if o.status in ACTIVE or o.status == "Filled":
                    batch.append(M.open_order(c, order_view(o), s.version))
                batch.append(status_fields(o))
            elif ev.kind == "error":
                batch.append(M.error(o.order_id, ev.code, ev.text, s.version))
            elif ev.kind == "whatif" and ev.what_if is not None:
                batch.append(M.open_order(c, order_view(o, ev.what_if), s.version))
            self.later(partial(s.send_later, ev_delay, batch))
        for acct, con_ids in touched.items():
            for sess in self._clients.started():
                self.later(partial(sess.on_account_change, acct, con_ids))
        return post
