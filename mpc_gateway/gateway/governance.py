"""The gateway's side of the data owners' conditions: policies, daily limits, approvals.

The gateway evaluates the consortium's policy and every institution's published
policy before anything runs; the combined decision fixes the plan it dispatches
(with the strictest output controls) and the approvals it must collect. Queries
waiting for approval are kept here until their approvers decide; each node
re-checks its own policy and the approvals on the signed order anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from mpc_gateway.errors import ApprovalMissingError, InvalidRequestError, PolicyDeniedError
from mpc_gateway.pki import Identity
from mpc_gateway.policy import (
    CombinedDecision,
    Policy,
    SignedApproval,
    UsageLedger,
    approvals_satisfied,
    combine,
    evaluate,
    load_policy,
)
from mpc_gateway.query.models import QuerySpec
from mpc_gateway.query.plan import QueryPlan
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.risk.jobs import RiskPlan, RiskRequest

__all__ = ["Governance", "PendingQuery", "ApprovalBook"]


def _now() -> datetime:
    return datetime.now(UTC)


class Governance:
    """Every policy the gateway enforces, and the per-analyst daily usage."""

    def __init__(
        self,
        consortium: Path,
        published: dict[str, Path],
        schemas: dict[str, DatasetSchema],
        usage_db: Path | None,
    ) -> None:
        self.policies: list[Policy] = [load_policy(consortium, schemas)]
        for node, path in published.items():
            policy = load_policy(path, schemas)
            if policy.owner != node:
                raise PolicyDeniedError(
                    f"the policy published for node {node} is owned by {policy.owner!r}"
                )
            self.policies.append(policy)
        if usage_db is not None:
            usage_db.parent.mkdir(parents=True, exist_ok=True)
        self.ledger = UsageLedger(usage_db)
        self._limits = [
            d.max_queries_per_day
            for p in self.policies
            for d in p.datasets.values()
            if d.max_queries_per_day
        ]

    def versions(self) -> dict[str, str]:
        return {policy.owner: policy.version_hash for policy in self.policies}

    def decide(self, caller: Identity, plan: QueryPlan | RiskPlan) -> CombinedDecision:
        """Evaluate every policy; the combined decision (not yet raised if denied)."""
        now, used = _now(), self.ledger.count(str(caller))
        return combine(evaluate(policy, plan, caller, now, used) for policy in self.policies)

    def count_query(self, caller: Identity) -> None:
        """Count one dispatched query against the analyst's strictest daily limit."""
        limit = min(self._limits, default=None)
        if not self.ledger.record_if_below(str(caller), limit):
            raise PolicyDeniedError(f"{caller} has used today's {limit} queries")


@dataclass
class PendingQuery:
    """A query waiting for approvals, and later its outcome."""

    query_id: str
    caller: Identity
    spec: QuerySpec | RiskRequest
    certificate: str
    decision: CombinedDecision
    submitted_ms: int
    approvals: list[SignedApproval] = field(default_factory=list)
    state: str = "waiting"  # waiting -> running -> released | failed | rejected
    outcome: Any = None  # the Release, or the GatewayError
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def plan(self) -> QueryPlan | RiskPlan:
        return self.decision.plan

    def waiting_for(self, ca: x509.Certificate) -> list[str]:
        now, missing = _now(), []
        for need in self.decision.approvals:
            status = approvals_satisfied(need.rule, self.approvals, self.plan.plan_hash, ca, now,
                                         institution=need.owner)  # fmt: skip
            missing += [f"{who} ({need.owner})" for who in status.missing]
        return missing

    def rejections(self, ca: x509.Certificate) -> list[str]:
        now, found = _now(), []
        for need in self.decision.approvals:
            status = approvals_satisfied(need.rule, self.approvals, self.plan.plan_hash, ca, now,
                                         institution=need.owner)  # fmt: skip
            found += [f"{who} ({need.owner}): {reason}" for who, reason in status.rejected_by]
        return found


class ApprovalBook:
    """Queries waiting for approval, by id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queries: dict[str, PendingQuery] = {}

    def add(self, query: PendingQuery) -> None:
        with self._lock:
            self._queries[query.query_id] = query

    def get(self, query_id: str, caller: Identity | None = None) -> PendingQuery:
        with self._lock:
            query = self._queries.get(query_id)
        if query is None or (
            caller is not None and caller.role == "analyst" and caller != query.caller
        ):
            raise InvalidRequestError(
                f"no query {query_id} is waiting for approval or has run after one"
            )
        return query

    def waiting(self, approver: Identity) -> Sequence[PendingQuery]:
        with self._lock:
            queries = [q for q in self._queries.values() if q.state == "waiting"]
        return [
            q for q in queries
            if any(str(approver) in need.rule.approvers for need in q.decision.approvals)
        ]  # fmt: skip

    def require(self, query: PendingQuery) -> None:
        raise ApprovalMissingError(
            f"query {query.query_id} waits for approval: "
            + "; ".join(need.describe(query.plan.plan_hash) for need in query.decision.approvals)
            + f". See where it stands with `mpcgw status {query.query_id}`",
            query_id=query.query_id,
        )
