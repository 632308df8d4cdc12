"""How order events reach clients: OPEN_ORDER / ORDER_STATUS / EXECUTION_DATA / COMMISSION_REPORT
batches per owning client, account pushes after fills, and the faults that act on delivery.

A mixin of ``EmbeddedExchange`` (kept apart so each module stays one concept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from . import messages as M
from .faults import NOTICES, Fault
from .orders import ACTIVE, BookEvent, WorkingOrder

if TYPE_CHECKING:
    from .session import ClientSession

log = structlog.get_logger(__name__)


class OrderRouting:
    """Order-event delivery for ``EmbeddedExchange`` (uses its registry, book and faults)."""

    _by_client: dict[int, "ClientSession"]
    book: Any
    faults: Any

    def _open_orders(self, s: ClientSession, all_clients: bool) -> None:
        for o in self.book.working():
            if all_clients or o.client_id == s.client_id or s.client_id == 0:
                c = self._wire(o.con_id)
                if c is not None:
                    s.send(M.open_order(c, self._order_view(o), s.version))
                    s.send(self._status_fields(o))
        s.send_end(M.open_order_end())

    def _order_view(self, o: WorkingOrder) -> M.OrderView:
        return M.OrderView(o.order_id, o.client_id, o.perm_id, o.action, o.total_qty, o.order_type,
                           o.lmt_price, o.tif, o.account, o.order_ref, o.status)  # fmt: skip

    def _status_fields(self, o: WorkingOrder) -> list[Any]:
        return M.order_status(o.order_id, o.status, o.filled, o.remaining, round(o.avg_fill_price, 10),
                              o.perm_id, o.last_fill_price, o.client_id)  # fmt: skip

    def _after_faults(self, faults: list[Fault], s: ClientSession | None) -> None:
        for f in faults:
            if f.kind == "drop" and s is not None:
                log.info("sim_fault_drop", conn=s.conn_id, client_id=s.client_id)
                s.close("injected fault: drop")
            elif f.kind == "restart":
                log.info("sim_fault_restart", down_seconds=f.param("down"))
                self._spawn(self.restart(f.param("down")), "sim-fault-restart")
            elif f.kind == "notice":
                self.notice(int(f.param("code")))

    def notice(self, code: int, text: str | None = None) -> None:
        """Broadcast a system notice (1100/1101/1102, 2103-2106...) to every client."""
        text = text or NOTICES.get(code, "Notice")
        log.info("sim_notice", code=code)
        for s in list(self._by_client.values()):
            if code == 1101:
                s.mkt.clear()  # data lost: the client must resubscribe, as with IB
            s.error(-1, code, text)

    # ----- delivering order events ----------------------------------------------------------
    def _deliver(self, events: list[BookEvent], delay: float = 0.0) -> None:
        touched: dict[str, set[int]] = {}
        post: list[Fault] = []
        for ev in events:
            o = ev.order
            s = self._by_client.get(o.client_id)
            c = self._wire(o.con_id)
            batch: list[list[Any]] = []
            ev_delay = delay
            dup = False
            if ev.kind == "fill":
                assert ev.execution is not None
                touched.setdefault(o.account, set()).add(o.con_id)
                for f in self.faults.on_fill():
                    if f.kind == "delay_fill":
                        ev_delay = max(ev_delay, f.param("s"))
                    elif f.kind == "dup_exec":
                        dup = True
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
                exec_msgs = [M.execution_data(-1, c, self._exec_view(e, c), s.version),
                             M.commission_report(e.exec_id, e.commission, self._currency(e.account), e.realized_pnl)]  # fmt: skip
                batch.append(exec_msgs[0])
                batch.append(M.open_order(c, self._order_view(o), s.version))
                batch.append(self._status_fields(o))
                batch.append(exec_msgs[1])
                if dup:
                    batch += exec_msgs
            elif ev.kind == "status":
                if o.status in ACTIVE or o.status == "Filled":
                    batch.append(M.open_order(c, self._order_view(o), s.version))
                batch.append(self._status_fields(o))
            elif ev.kind == "error":
                batch.append(M.error(o.order_id, ev.code, ev.text, s.version))
            s.send_later(ev_delay, batch)
        for acct, con_ids in touched.items():
            for sess in list(self._by_client.values()):
                sess.on_account_change(acct, con_ids)
        self._after_faults(post, None)
