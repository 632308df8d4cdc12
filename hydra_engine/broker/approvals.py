"""Approvals at the broker's door: only an unused risk-gate ``Approval`` that covers exactly the
order being sent gets through ``BrokerGateway.place_order``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hydra_engine.broker.errors import ApprovalRejected

if TYPE_CHECKING:
    from hydra_engine.risk.intents import Approval, OrderIntent

ConsumedApprovals = dict[int, "Approval"]
"""``id(approval)`` -> approval, for every approval this gateway has consumed."""


def require_approval(approval: object, consumed: ConsumedApprovals) -> OrderIntent:
    """The intent of an unused risk-gate ``Approval``; anything else is refused (nothing consumed)."""
    try:
        from hydra_engine.risk.intents import (
            Approval,  # local: risk may load later than broker
        )
    except ImportError:  # pragma: no cover - the risk layer is part of the engine
        Approval = None  # type: ignore[assignment,misc]  # noqa: N806
    if Approval is not None and not isinstance(approval, Approval):
        raise ApprovalRejected(f"place_order needs a risk-gate Approval, got {type(approval).__name__}")
    if approval is None or not hasattr(approval, "intent"):
        raise ApprovalRejected(f"place_order needs a risk-gate Approval, got {type(approval).__name__}")
    if id(approval) in consumed or getattr(approval, "used", False):
        raise ApprovalRejected(f"approval for {getattr(approval.intent, 'order_ref', '?')} was already used")
    intent: OrderIntent = approval.intent
    return intent


def consume_approval(approval: Approval, consumed: ConsumedApprovals) -> OrderIntent:
    """Mark ``approval`` used (once only) and return its intent."""
    intent = require_approval(approval, consumed)
    consume = getattr(approval, "consume", None)
    if callable(consume):
        try:
            consume()
        except Exception as exc:
            raise ApprovalRejected(f"approval refused: {exc}") from exc
    consumed[id(approval)] = approval
    return intent


def check_bound(
    intent: OrderIntent, *, order_ref: str, action: str, con_id: int, quantity: float, limit_price: float,
    modify: bool,
) -> None:
    """An Approval covers exactly the order its intent describes (a reprice: the remaining qty)."""
    problems = []
    if getattr(intent, "order_ref", order_ref) != order_ref:
        problems.append(f"orderRef {intent.order_ref!r} != {order_ref!r}")
    if getattr(intent, "direction", action) != action:
        problems.append(f"direction {intent.direction} != {action}")
    if getattr(intent, "con_id", con_id) != con_id:
        problems.append(f"conId {intent.con_id} != {con_id}")
    qty = float(getattr(intent, "qty", quantity))
    if (qty > quantity) if modify else (qty != quantity):
        problems.append(f"qty {qty:g} vs order {quantity:g}")
    lim = getattr(intent, "limit_price", limit_price)
    if lim is not None and abs(float(lim) - limit_price) > 1e-9:
        problems.append(f"limit {lim} != {limit_price}")
    if problems:
        raise ApprovalRejected(f"approval does not cover order {order_ref}: " + "; ".join(problems))
