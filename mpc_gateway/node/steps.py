"""What a node opened in a query's earlier MPC steps, kept for the query's next step.

A computation the nodes steer themselves (a quantile search: each round's grid
follows from the brackets before it) has its MPC open some blocks to the parties
only (modulus :data:`~mpc_gateway.mpc.wire.NODES_ONLY`). The node keeps them here,
per query and in order, and hands them to the computation's next
:meth:`~mpc_gateway.computations.Computation.local_inputs` as ``LocalData.opened``;
they are neither returned to the gateway nor sealed to the receiver. The driver
only names the step it asks for (``step["round"]``): one out of order (replayed,
skipped, or asked of a node that lost what it kept when it restarted) is refused
before the node computes anything, so a driver cannot steer a search itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from mpc_gateway.errors import ProtocolAbortedError
from mpc_gateway.mpc.wire import NODES_ONLY
from mpc_gateway.orders import ExecutionOrder

__all__ = ["StepMemory"]

Opened = dict[str, list[int]]


class StepMemory:
    """Per query, the blocks its steps opened to the nodes, for the queries seen last."""

    def __init__(self, queries: int = 1024) -> None:
        self._limit = queries
        self._kept: OrderedDict[str, tuple[Opened, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def opened(self, order: ExecutionOrder) -> tuple[Opened, ...]:
        """What the order's earlier steps opened; ProtocolAbortedError if it skips ahead or back."""
        asked = order.step.get("round", 0)
        with self._lock:
            kept = self._kept.get(order.query_id, ())
        if not isinstance(asked, int) or asked != len(kept):
            raise ProtocolAbortedError(
                f"order {order.query_id} asks for step {asked!r} of its search, but this node "
                f"took part in {len(kept)} of its steps: steps run once each, in order"
            )
        return kept

    def keep(self, order: ExecutionOrder, blocks: dict[str, Any]) -> dict[str, Any]:
        """Keep the blocks opened to the nodes; the others (shares) are returned."""
        opened = {name: list(b[1]) for name, b in blocks.items() if b[0] == NODES_ONLY}
        if opened:
            with self._lock:
                kept = self._kept.pop(order.query_id, ())
                self._kept[order.query_id] = (*kept, opened)
                while len(self._kept) > self._limit:
                    self._kept.popitem(last=False)
        return {name: b for name, b in blocks.items() if b[0] != NODES_ONLY}
