"""What a node writes in its witness log about the orders it is given, in few signed writes.

Every order is recorded on arrival (with the gateway's signed tree head that came
with it) before anything runs, and so is its outcome; the orders of one message
(a batch, or one order) share one write and one signed head each time. Each
record is durable before anything it describes leaves the node: an arrival at
once, an outcome that opens nothing to the gateway with the release that hands
its sealed shares over (one fsync fewer per query).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.orders import ExecutionOrder

__all__ = ["outcomes", "received", "refused"]

_DECISIONS = {"order.completed": "contributed", "order.failed": "failed"}


def received(
    witness: AuditTrail, caller: str, orders: Sequence[tuple[ExecutionOrder, DispatchEvidence, int]]
) -> None:
    """Each (order, its submission's evidence, the gateway log size it proves): accepted."""
    with witness.batch():  # signed at once: a head covers the receipt while it runs
        for order, evidence, log_size in orders:
            witness.record(
                "order.received",
                caller,
                query_id=order.query_id,
                dataset=order.plan.dataset,
                decision="accepted",
                details={
                    **order.witness_fields(),
                    "gateway_checkpoint": evidence.checkpoint,
                    "gateway_log_size": log_size,
                    "submission_index": evidence.index,
                },
            )
        witness.seal()


def refused(
    witness: AuditTrail,
    caller: str,
    order_bytes: Sequence[bytes],
    orders: Sequence[ExecutionOrder],
    reason: str,
) -> None:
    """Orders refused; those whose signature checked (``orders``) are named, for auditors."""
    named: Sequence[ExecutionOrder | None] = orders or [None]
    with witness.batch():
        for order, data in zip(named, order_bytes):
            witness.record(
                "order.refused",
                caller,
                query_id=None if order is None else order.query_id,
                decision="refused",
                details={
                    "reason": reason,
                    "order_sha256": hashlib.sha256(data).hexdigest(),
                    **({} if order is None else order.witness_fields()),
                },
            )
        witness.seal()


def outcomes(
    witness: AuditTrail,
    gateway: str,
    orders: Sequence[ExecutionOrder],
    kind: str,
    details: Sequence[dict[str, Any]],
    durable: bool = True,
) -> None:
    """Each order's outcome ``kind``, with its own ``details``.

    ``durable=False`` for outcomes whose answer holds nothing of the result (it is
    all sealed and held): the release's record, synced before the node hands
    anything over, makes them durable with it.
    """
    with witness.batch(durable):
        for order, more in zip(orders, details, strict=True):
            witness.record(
                kind,
                gateway,
                query_id=order.query_id,
                dataset=order.plan.dataset,
                decision=_DECISIONS[kind],
                details={**order.witness_fields(), **more},
            )
        witness.seal()
