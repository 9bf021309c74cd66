"""The audit entries of one query, written in the order things happen, in few durable writes."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.log import AppendedEntry
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import GatewayError
from mpc_gateway.query.models import QuerySpec
from mpc_gateway.query.order import ExecutionOrder
from mpc_gateway.query.plan import QueryPlan
from mpc_gateway.query.results import ResultTable

if TYPE_CHECKING:
    from mpc_gateway.gateway.dispatch import Dispatched
    from mpc_gateway.policy import CombinedDecision

__all__ = ["QueryRecord", "result_digest"]


def result_digest(table: ResultTable) -> str:
    """SHA-256 of the released table (values as text): what the log says was released."""
    rows = [
        [group, [None if v is None else str(v) for v in values]] for group, values in table.rows
    ]
    released = {
        "columns": list(table.columns),
        "rows": rows,
        "suppressed": [list(s) for s in table.suppressed],
    }
    return hashlib.sha256(canonical_bytes(released)).hexdigest()


class QueryRecord:
    """One query's audit trail.

    The submission is written and sealed before dispatch (nodes verify it); the
    dispatch (epoch, sequence, nodes) is written with the query's outcome.
    """

    def __init__(self, audit: AuditTrail, query_id: str, dataset: str, actor: str) -> None:
        self.audit, self.query_id, self.dataset, self.actor = audit, query_id, dataset, actor
        self.plan_hash: str | None = None
        self.order: ExecutionOrder | None = None
        self.closed = False
        self._decision: dict[str, Any] | None = None  # written with the next entry, in its batch

    def _record(self, kind: str, decision: str, details: dict[str, Any]) -> AppendedEntry:
        if self._decision is not None:
            decided, self._decision = self._decision, None
            self._record("policy.decision", "allowed" if decided["allowed"] else "refused", decided)
        return self.audit.record(kind, self.actor, query_id=self.query_id, dataset=self.dataset,
                                 decision=decision, details=details)  # fmt: skip

    def _close(self, kind: str, decision: str, details: dict[str, Any]) -> None:
        self.closed = True
        with self.audit.batch():
            if self.order is not None:
                order = self.order
                self._record("query.dispatched", "dispatched", {
                    "plan_hash": order.plan_hash, "epoch": order.epoch, "sequence": order.sequence,
                    "nodes": [p.name for p in order.parties]})  # fmt: skip
            self._record(kind, decision, details)
            self.audit.seal()

    def refused(self, spec: QuerySpec, err: GatewayError, certificate: str, rule: str = "") -> None:
        self._close("query.refused", "refused", {
            "reason": err.public_message, "rule": rule, "certificate_sha256": certificate,
            "request": spec.model_dump(mode="json")})  # fmt: skip

    def policy_decided(self, decision: CombinedDecision, versions: dict[str, str]) -> None:
        """Note the policy decision; it is written (durably) with the query's next entry."""
        failed = [{"owner": d.owner, "rule": c.rule, "reason": c.message}
                  for d in decision.decisions for c in d.failed]  # fmt: skip
        self._decision = {"allowed": decision.allowed, "policy_versions": versions,
                          "plan_hash": decision.plan.plan_hash, "failed_rules": failed,
                          "approvals_needed": [need.owner for need in decision.approvals]}  # fmt: skip

    def pending(self, plan: QueryPlan, waiting_for: list[str]) -> None:
        with self.audit.batch():
            self._record("query.pending", "waiting", {"plan_hash": plan.plan_hash, "waiting_for": waiting_for,
                                                      "plan": plan.model_dump(mode="json")})  # fmt: skip
            self.audit.seal()

    def approval(self, approver: str, decision: str, reason: str, signature_b64: str) -> None:
        with self.audit.batch():
            self.audit.record("approval.decided", approver, query_id=self.query_id, dataset=self.dataset,
                              decision=decision, details={"reason": reason, "plan_hash": self.plan_hash,
                                                          "signature": signature_b64})  # fmt: skip
            self.audit.seal()

    def submitted(self, plan: QueryPlan, spec: QuerySpec, certificate: str) -> DispatchEvidence:
        self.plan_hash = plan.plan_hash
        with self.audit.batch():
            appended = self._record("query.submitted", "allowed", {
                "plan": plan.model_dump(mode="json"), "plan_hash": plan.plan_hash,
                "purpose": spec.purpose, "certificate_sha256": certificate})  # fmt: skip
            return self.audit.evidence(appended)

    def dispatched(self, order: ExecutionOrder) -> None:
        self.order = order

    def released(
        self, plan: QueryPlan, table: ResultTable, dispatched: Dispatched, total_ms: float
    ) -> None:
        self._close("result.released", "released", {
            "plan_hash": plan.plan_hash, "result_sha256": result_digest(table), "receiver": self.actor,
            "suppressed": [{"group": g, "rules": list(r)} for g, r in table.suppressed],
            "participation": dispatched.participation, "total_us": int(total_ms * 1000)})  # fmt: skip

    def failed(self, err: GatewayError, kind: str = "query.failed") -> None:
        if not self.closed:
            self._close(kind, "failed" if kind == "query.failed" else "rejected",
                        {"reason": err.public_message, "plan_hash": self.plan_hash})  # fmt: skip
