"""A query that needs approval, from waiting to its outcome, with transitions that cannot race.

A :class:`TrackedQuery` moves through :class:`QueryState` only by
:meth:`TrackedQuery.transition`, which checks the state it leaves and sets the
new one under the query's lock: two approvers deciding at the same moment
cannot both start it, and an outcome is recorded exactly once. The
:class:`QueryBook` keeps the queries by id and forgets finished ones after a
while (their outcome has been fetched by then or can be read in the audit log).
With a :class:`~mpc_gateway.gateway.pending.QueryStore`, the book also keeps
each waiting query, its approvals and every state it reaches on disk, so a
restart resumes what waits and still reports how the others ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography import x509

from mpc_gateway.computations import Plan, Request
from mpc_gateway.errors import (
    ApprovalMissingError,
    GatewayError,
    InvalidRequestError,
    PolicyDeniedError,
)
from mpc_gateway.gateway.pending import EndedQuery, QueryStore
from mpc_gateway.pki import Identity
from mpc_gateway.policy import CombinedDecision, SignedApproval, approvals_satisfied

__all__ = ["QueryState", "TrackedQuery", "QueryBook", "not_waiting"]

Clock = Callable[[], float]


class QueryState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    RELEASED = "released"
    FAILED = "failed"
    REJECTED = "rejected"

    @property
    def finished(self) -> bool:
        return self in (QueryState.RELEASED, QueryState.FAILED, QueryState.REJECTED)


_ALLOWED = {
    QueryState.WAITING: {QueryState.RUNNING, QueryState.REJECTED},
    QueryState.RUNNING: {QueryState.RELEASED, QueryState.FAILED},
}


@dataclass
class TrackedQuery:
    """A query waiting for approvals, and later its outcome."""

    query_id: str
    caller: Identity
    request: Request
    certificate: str
    decision: CombinedDecision[Plan]
    submitted_ms: int
    receiver: str = ""  # the analyst's key-agreement certificate (PEM) results are sealed to
    approvals: list[SignedApproval] = field(default_factory=list)
    state: QueryState = QueryState.WAITING
    outcome: Any = None  # the Relayed result, or the GatewayError
    finished_at: float | None = None  # by ``clock``
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock: Clock = time.monotonic
    on_change: Callable[[TrackedQuery], None] = lambda query: None  # after each transition

    @property
    def plan(self) -> Plan:
        return self.decision.plan

    def transition(self, leaving: QueryState, to: QueryState, outcome: Any = None) -> bool:
        """Move from ``leaving`` to ``to``; False (nothing changes) if it is not in ``leaving``."""
        if to not in _ALLOWED.get(leaving, ()):
            raise ValueError(f"a query cannot go from {leaving} to {to}")
        with self.lock:
            if self.state is not leaving:
                return False
            self.state = to
            if to.finished:
                self.outcome = outcome
                self.finished_at = self.clock()
            self.on_change(self)
            if to.finished:
                self.done.set()
            return True

    def check_decision(self, caller: Identity, signed: SignedApproval) -> None:
        """Refuse a decision that is not the caller's own, or not on this query's plan."""
        if signed.body.approver != str(caller):
            raise PolicyDeniedError(
                f"{caller} may only submit its own decisions, not {signed.body.approver}'s"
            )
        if signed.body.plan_hash != self.plan.plan_hash:
            raise InvalidRequestError(
                f"the signed decision is for plan {signed.body.plan_hash}, but query "
                f"{self.query_id} has plan {self.plan.plan_hash}: it was not recorded"
            )
        if signed.body.query_id != self.query_id:
            raise InvalidRequestError(
                f"the signed decision is for query {signed.body.query_id}, not query "
                f"{self.query_id}: each query needs a decision of its own; it was not recorded"
            )

    def _statuses(self, ca: x509.Certificate) -> list[tuple[str, Any]]:
        now = datetime.now(UTC)
        return [
            (
                need.owner,
                approvals_satisfied(
                    need.rule,
                    self.approvals,
                    self.plan.plan_hash,
                    ca,
                    now,
                    institution=need.owner,
                    query_id=self.query_id,
                ),
            )
            for need in self.decision.approvals
        ]

    def waiting_for(self, ca: x509.Certificate) -> list[str]:
        return [f"{who} ({owner})" for owner, s in self._statuses(ca) for who in s.missing]

    def rejections(self, ca: x509.Certificate) -> list[str]:
        return [
            f"{who} ({owner}): {reason}"
            for owner, s in self._statuses(ca)
            for who, reason in s.rejected_by
        ]

    def waiting_error(self) -> ApprovalMissingError:
        return ApprovalMissingError(
            f"query {self.query_id} waits for approval: "
            + "; ".join(need.describe(self.plan.plan_hash) for need in self.decision.approvals)
            + f". See where it stands with `mpcgw status {self.query_id}`",
            query_id=self.query_id,
        )


class QueryBook:
    """Queries that needed approval, by id; thread-safe; finished ones kept ``keep_s`` seconds."""

    def __init__(
        self, keep_s: float = 3600.0, clock: Clock = time.monotonic, store: QueryStore | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._queries: dict[str, TrackedQuery] = {}
        self._keep_s = keep_s
        self._clock = clock
        self.store = store

    def _forget_old(self) -> None:
        now = self._clock()
        old = [
            q
            for q, t in self._queries.items()
            if t.finished_at is not None and now - t.finished_at > self._keep_s
        ]
        for query_id in old:
            del self._queries[query_id]

    def add(self, query: TrackedQuery) -> None:
        """Keep ``query`` (on disk too, before the audit log says it waits)."""
        query.clock = self._clock
        if self.store is not None:
            self.store.keep_waiting(
                query.query_id,
                query.caller,
                query.request,
                query.certificate,
                query.plan.plan_hash,
                query.submitted_ms,
                query.receiver,
            )
            query.on_change = self._persist
        with self._lock:
            self._forget_old()
            self._queries[query.query_id] = query

    def _persist(self, query: TrackedQuery) -> None:
        assert self.store is not None
        if query.state is QueryState.RUNNING:
            self.store.started(query.query_id)
        elif query.state.finished:
            outcome = query.outcome
            reason = outcome.public_message if isinstance(outcome, GatewayError) else ""
            self.remember(
                query.query_id, str(query.caller), query.state, query.plan.plan_hash, reason
            )

    def remember(
        self, query_id: str, caller: str, state: str, plan_hash: str | None, reason: str
    ) -> None:
        """How a query ended, for status calls after a restart (with a store)."""
        if self.store is not None:
            self.store.ended(
                query_id, caller, str(state), plan_hash, reason, time.time_ns() // 1_000_000
            )

    def keep_approvals(self, query: TrackedQuery) -> None:
        """Store the decisions ``query`` has so far (after the audit log recorded them)."""
        if self.store is not None:
            self.store.keep_approvals(query.query_id, list(query.approvals))

    def check_decision_is_new(self, signed: SignedApproval, query_id: str) -> None:
        """Refuse a signed decision already given on another query: each needs its own."""
        if self.store is not None:  # it keeps every decision given, also on finished queries
            self.store.check_decision_is_new(signed, query_id)

    def get(self, query_id: str, caller: Identity | None = None) -> TrackedQuery:
        with self._lock:
            self._forget_old()
            query = self._queries.get(query_id)
        if query is None or (
            caller is not None and caller.role == "analyst" and caller != query.caller
        ):
            raise InvalidRequestError(
                f"no query {query_id} is waiting for approval or has run after one"
            )
        return query

    def find(self, query_id: str, caller: Identity) -> TrackedQuery | EndedQuery:
        """``get``, or how the query ended if only the store still knows (after a restart)."""
        try:
            return self.get(query_id, caller)
        except InvalidRequestError:
            ended = None if self.store is None else self.store.ending(query_id)
            if ended is None or (caller.role == "analyst" and ended.caller != str(caller)):
                raise
            return ended

    def waiting(self, approver: Identity) -> Sequence[TrackedQuery]:
        with self._lock:
            queries = [q for q in self._queries.values() if q.state is QueryState.WAITING]
        return [
            q
            for q in queries
            if any(str(approver) in need.rule.approvers for need in q.decision.approvals)
        ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._queries)


def not_waiting(query: TrackedQuery) -> PolicyDeniedError:
    return PolicyDeniedError(
        f"query {query.query_id} is no longer waiting for approval: it is {query.state}"
    )
