"""What the gateway sends the nodes and what comes back: signed orders and result shares.

Both the gateway (which issues orders and recombines shares) and every node
(which verifies orders) import this package; it sits above the computations,
whose plans an order carries, and the policy's signed approvals.
"""

from mpc_gateway.orders.execution import (
    MAX_BATCH,
    ExecutionOrder,
    Party,
    SessionOrder,
    batch_message,
    check_batch,
    check_parties,
)
from mpc_gateway.orders.shares import recombine_block, recombine_shares, signed

__all__ = [
    "MAX_BATCH",
    "batch_message",
    "check_batch",
    "ExecutionOrder",
    "Party",
    "SessionOrder",
    "check_parties",
    "recombine_block",
    "recombine_shares",
    "signed",
]
