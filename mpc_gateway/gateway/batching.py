"""Group commit: queries queued at the same moment go as one batch.

What is batched is the caller's: a lane's orders (one signed message per node
and one MPC job, :mod:`.dispatch`), submissions (one durable write and signed
checkpoint, :class:`~.record.Submissions`), releases (one checkpoint cosigned
once, :mod:`.relay`). A query that finds fewer than ``in_flight`` batches under
way leads at once: it takes every query queued before it (up to ``max_size``)
and sends them as one batch, while the others wait for their own result. A
query that finds the batches all under way queues, and the next free leader
takes it. An idle gateway therefore sends each query alone, at once (no waiting
for company), and a busy one sends what piled up while it was busy. Each member
still ends on its own: its own result, or its own copy of the error, naming its
query.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mpc_gateway.computations import Plan
from mpc_gateway.errors import GatewayError
from mpc_gateway.orders import ExecutionOrder
from mpc_gateway.policy import SignedApproval
from mpc_gateway.proto.v1 import node_pb2

__all__ = ["Batcher", "Dispatch", "Member", "Queued"]

log = logging.getLogger(__name__)

Dispatch = Callable[[ExecutionOrder, tuple[int, int]], None]
"""Told each order as it goes out, with its batch: (first sequence number, size)."""

Q = TypeVar("Q", bound="Queued")


@dataclass(eq=False)
class Queued:
    """Something one query waits for in a batch (``send`` ends it one way or the other)."""

    query_id: str
    outcome: Future[Any] = field(default_factory=Future, kw_only=True)
    taken: bool = field(default=False, kw_only=True)  # by a leader, under the batcher's lock

    def succeed(self, result: Any) -> None:
        self.outcome.set_result(result)

    def fail(self, err: GatewayError) -> None:
        """End with ``err``, as a copy of its own that names this query."""
        own = copy.copy(err)
        own.query_id = self.query_id
        self.outcome.set_exception(own)


@dataclass(eq=False)
class Member(Queued):
    """One query's step, as the dispatcher orders it."""

    plan: Plan
    timeout_s: float
    proof: node_pb2.AuditEvidence
    on_dispatched: Dispatch
    approvals: tuple[SignedApproval, ...]
    step: dict[str, Any]
    receiver: str


class Batcher(Generic[Q]):
    """Sends queued members in batches of at most ``max_size``, ``in_flight`` batches at once.

    ``send`` ends the first members it is given that fit one message (succeeds or fails
    each) and returns the others: the same leader sends them next.
    """

    def __init__(
        self, send: Callable[[Sequence[Q]], list[Q]], max_size: int, in_flight: int
    ) -> None:
        if max_size < 1 or in_flight < 1:
            raise ValueError("a batch holds at least one query, and one batch must be let go")
        self._send, self._max, self._limit = send, max_size, in_flight
        self._cond = threading.Condition()
        self._queue: list[Q] = []
        self._busy = 0

    def submit(self, member: Q) -> Any:
        """Queue ``member``, lead batches until one takes it, and return its result."""
        with self._cond:
            self._queue.append(member)
        while True:
            with self._cond:
                while not member.taken and self._busy >= self._limit:
                    self._cond.wait()
                if member.taken:
                    break
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                for taken in batch:
                    taken.taken = True
                self._busy += 1
            try:
                self._lead(batch)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
        return member.outcome.result()

    def _lead(self, batch: list[Q]) -> None:
        try:
            while batch:
                batch = self._send(batch)
        except BaseException as err:  # a bug in send: no member may wait for ever
            if not isinstance(err, GatewayError):
                log.exception("a batch of %d failed", len(batch))
            failure = err if isinstance(err, GatewayError) else GatewayError("internal error")
            for member in batch:
                if not member.outcome.done():
                    member.fail(failure)
            if not isinstance(err, Exception):
                raise
