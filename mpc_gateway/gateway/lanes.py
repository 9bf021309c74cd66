"""Each lane's place in the consortium's MPC order, as the gateway keeps it.

Every lane (:mod:`mpc_gateway.lanes`) is its own MPC session among the nodes:
its own epoch, its own sequence numbers, its own MPC ports (the party list its
orders carry), and its own orders in flight. A query's deadline counts from the
end of the orders ahead of it *in its lane* only: a short query never waits
behind a long job, so its deadline never has to cover one. The dispatcher holds
its lock around every method here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mpc_gateway.computations import Plan
from mpc_gateway.lanes import Lane
from mpc_gateway.orders import ExecutionOrder, Party, SessionOrder
from mpc_gateway.policy import SignedApproval
from mpc_gateway.settings import NodeLink

__all__ = ["LaneSequence", "lane_parties"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def lane_parties(links: Sequence[NodeLink], lane: Lane) -> tuple[Party, ...]:
    """The parties of ``lane``'s session, in party order, each at its MPC port for that lane."""
    return tuple(
        Party(index=i, name=link.name, host=link.mpc_host, port=link.mpc_port_of(lane))
        for i, link in enumerate(links)
    )


@dataclass
class LaneSequence:
    """One lane's current epoch, its next sequence number and its orders in flight."""

    lane: Lane
    parties: tuple[Party, ...]
    epoch: int = field(default_factory=_now_ms)
    next: int = 0
    deadlines: dict[tuple[int, int], int] = field(default_factory=dict)  # (epoch, seq) -> ms

    def order(
        self,
        query_id: str,
        plan: Plan,
        timeout_s: float,
        approvals: tuple[SignedApproval, ...],
        step: dict[str, Any],
        receiver: str,
        starts_ms: int | None = None,
    ) -> ExecutionOrder:
        """The next order of this lane, in flight until :meth:`finished`; its time counts
        from ``starts_ms`` (default: :meth:`starts_ms`, after every order ahead of it)."""
        now_ms = _now_ms()
        if starts_ms is None:
            starts_ms = self.starts_ms()
        order = ExecutionOrder(
            query_id=query_id,
            plan=plan,
            plan_hash=plan.plan_hash,
            lane=self.lane,
            epoch=self.epoch,
            sequence=self.next,
            parties=self.parties,
            issued_at_ms=now_ms,
            deadline_ms=starts_ms + int(timeout_s * 1000),
            approvals=approvals,
            step=step,
            receiver=receiver,
        )
        self.next += 1
        self.deadlines[(order.epoch, order.sequence)] = order.deadline_ms
        return order

    def starts_ms(self) -> int:
        """When the next message's time starts: after every order ahead of it in its lane.

        A job queued behind a long one must not time out while it waits its turn; the
        orders of one batch all start together, as they run as one job.
        """
        ahead = [d for (epoch, _), d in self.deadlines.items() if epoch == self.epoch]
        return max([_now_ms(), *ahead])

    def finished(self, order: ExecutionOrder) -> None:
        del self.deadlines[(order.epoch, order.sequence)]

    def withdraw(self, order: ExecutionOrder) -> None:
        """Take back the last order issued, never sent: its sequence number is issued again."""
        if (order.epoch, order.sequence) != (self.epoch, self.next - 1):
            raise ValueError("only the last order issued can be withdrawn")
        self.finished(order)
        self.next -= 1

    def turn_over(self, epoch: int) -> bool:
        """Leave ``epoch`` for a new one (its session is torn down); False if it is not current."""
        if epoch != self.epoch:
            return False
        self.epoch = max(epoch + 1, _now_ms())
        self.next = 0
        return True

    def session_order(self) -> SessionOrder:
        return SessionOrder(
            lane=self.lane, epoch=self.epoch, parties=self.parties, issued_at_ms=_now_ms()
        )
