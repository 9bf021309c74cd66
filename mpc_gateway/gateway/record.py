"""The audit entries of one query, written in the order things happen, in few durable writes.

What a client sent is recorded only within bounds: a dataset name longer than a
real one, or a refused request whose canonical form is larger than
:data:`REQUEST_VIEW_BYTES`, is stored as its SHA-256 and length
(:func:`~mpc_gateway.canonical.digest_if_long`), so one refused query cannot grow
the append-only log by more than a few kilobytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.log import AppendedEntry
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import digest_if_long
from mpc_gateway.computations import Blocks, Plan, Request
from mpc_gateway.errors import GatewayError, InternalError
from mpc_gateway.gateway.batching import Batcher, Queued
from mpc_gateway.orders import ExecutionOrder

if TYPE_CHECKING:
    from mpc_gateway.gateway.recombine import Dispatched
    from mpc_gateway.policy import CombinedDecision

__all__ = [
    "QueryRecord",
    "Submissions",
    "request_refused",
    "DATASET_CHARS",
    "REASON_CHARS",
    "REQUEST_VIEW_BYTES",
]

log = logging.getLogger(__name__)

DATASET_CHARS = 63  # the longest dataset name a schema allows
REASON_CHARS = 2000  # our own words, but they may quote what the client sent
REQUEST_VIEW_BYTES = 8192  # a refused request's canonical form


def request_refused(audit: AuditTrail, actor: str, method: str, err: GatewayError) -> None:
    """Log a request refused before it was read (too large for it, or while the gateway drains)."""
    with audit.batch():
        audit.record(
            "request.refused",
            actor,
            decision="refused",
            details={"method": method, "reason": digest_if_long(err.public_message, REASON_CHARS)},
        )
        audit.seal()


class QueryRecord:
    """One query's audit trail.

    The submission is written and sealed before dispatch (nodes verify it); the
    dispatch (lane, epoch, sequence, nodes) is written with the query's outcome.
    """

    def __init__(self, audit: AuditTrail, query_id: str, dataset: str, actor: str) -> None:
        self.audit, self.query_id, self.dataset, self.actor = audit, query_id, dataset, actor
        self.plan_hash: str | None = None
        # one per dispatch (a quantile search has several), each with its batch's first
        # sequence number and size (1: it went alone)
        self.orders: list[tuple[ExecutionOrder, int, int]] = []
        self.closed = False
        self._decision: dict[str, Any] | None = None  # written with the next entry, in its batch

    def _record(self, kind: str, decision: str, details: dict[str, Any]) -> AppendedEntry:
        if self._decision is not None:
            decided, self._decision = self._decision, None
            self._record("policy.decision", "allowed" if decided["allowed"] else "refused", decided)
        dataset = digest_if_long(self.dataset, DATASET_CHARS)
        if not isinstance(dataset, str):  # not a dataset anyone has: its digest, in the details
            details = {**details, "dataset": dataset}
        return self.audit.record(
            kind,
            self.actor,
            query_id=self.query_id,
            dataset=dataset if isinstance(dataset, str) else None,
            decision=decision,
            details=details,
        )

    @contextmanager
    def naming_errors(self) -> Iterator[None]:
        """Every error leaving the block names this query (clients get its id with the error)."""
        try:
            yield
        except GatewayError as err:
            err.query_id = err.query_id or self.query_id
            raise
        except Exception as err:
            log.exception("query %s failed", self.query_id)
            raise InternalError(
                f"internal error at the gateway (query {self.query_id})", self.query_id
            ) from err

    @contextmanager
    def refusing(
        self, request: Request | None, certificate: str, statement: str = ""
    ) -> Iterator[None]:
        """Any error leaving the block refuses the query: logged, then raised naming it.

        A failure no check foresaw is logged and raised as an InternalError.
        """
        try:
            with self.naming_errors():
                yield
        except GatewayError as err:  # naming_errors made any other error an InternalError
            self.refused(request, err, certificate, statement=statement)
            raise

    def _close(self, kind: str, decision: str, details: dict[str, Any]) -> DispatchEvidence:
        """Write the dispatches and the outcome, and seal a checkpoint proving the outcome."""
        with self.audit.batch():
            return self.audit.evidence(self._ending(kind, decision, details))

    def _ending(self, kind: str, decision: str, details: dict[str, Any]) -> AppendedEntry:
        """Write the dispatches and the outcome (in the caller's batch); the outcome's entry."""
        self.closed = True
        for order, first, size in self.orders:
            dispatch = {
                "plan_hash": order.plan_hash,
                "lane": order.lane,
                "epoch": order.epoch,
                "sequence": order.sequence,
                "nodes": [p.name for p in order.parties],
            }
            if size > 1:  # the sequence numbers its batch ran as one MPC job
                dispatch["batch"] = {"first": first, "size": size}
            self._record("query.dispatched", "dispatched", dispatch)
        return self._record(kind, decision, details)

    def refused(
        self,
        request: Request | None,
        err: GatewayError,
        certificate: str,
        rule: str = "",
        statement: str = "",
    ) -> None:
        """``request`` None: the request was malformed, it never became a query.

        ``statement``: the SQL text of a malformed request, as submitted (a request read
        from SQL carries its own).
        """
        details: dict[str, Any] = {
            "reason": digest_if_long(err.public_message, REASON_CHARS),
            "rule": rule,
            "certificate_sha256": certificate,
            "request": None
            if request is None
            else digest_if_long(request.audit_view(), REQUEST_VIEW_BYTES),
        }
        if statement:
            details["statement"] = digest_if_long(statement, REQUEST_VIEW_BYTES)
        self._close("query.refused", "refused", details)

    def policy_decided(self, decision: CombinedDecision[Plan], versions: dict[str, str]) -> None:
        """Note the policy decision; it is written (durably) with the query's next entry."""
        failed = [
            {"owner": d.owner, "rule": c.rule, "reason": c.message}
            for d in decision.decisions
            for c in d.failed
        ]
        self._decision = {
            "allowed": decision.allowed,
            "policy_versions": versions,
            "plan_hash": decision.plan.plan_hash,
            "failed_rules": failed,
            "approvals_needed": [need.owner for need in decision.approvals],
        }

    def pending(self, plan: Plan, waiting_for: list[str]) -> None:
        with self.audit.batch():
            self._record(
                "query.pending",
                "waiting",
                {
                    "plan_hash": plan.plan_hash,
                    "waiting_for": waiting_for,
                    "plan": plan.audit_view(),
                },
            )
            self.audit.seal()

    def approval(self, approver: str, decision: str, reason: str, signature_b64: str) -> None:
        with self.audit.batch():
            self.audit.record(
                "approval.decided",
                approver,
                query_id=self.query_id,
                dataset=self.dataset,
                decision=decision,
                details={"reason": reason, "plan_hash": self.plan_hash, "signature": signature_b64},
            )
            self.audit.seal()

    def submitted(
        self, plan: Plan, request: Request, certificate: str, privacy: list[dict[str, str]]
    ) -> AppendedEntry:
        """Record the query as it will run, with the privacy budgets it spends (if any).

        Written in the caller's batch, unsealed: the submissions written together share
        one checkpoint (:class:`Submissions`).
        """
        self.plan_hash = plan.plan_hash
        details: dict[str, Any] = {
            "plan": plan.audit_view(),
            "plan_hash": plan.plan_hash,
            "purpose": request.purpose,
            "certificate_sha256": certificate,
            "privacy_spent": privacy,
        }
        if request.statement:  # the SQL text as submitted, beside the plan it was read into
            details["statement"] = request.statement
        return self._record("query.submitted", "allowed", details)

    def dispatched(self, order: ExecutionOrder, batch: tuple[int, int] = (0, 1)) -> None:
        """``order`` went to the nodes in the batch of ``batch`` (first sequence, size)."""
        self.orders.append((order, *batch))

    def released(
        self, plan: Plan, public: Blocks, dispatched: Sequence[Dispatched], total_ms: float
    ) -> AppendedEntry:
        """The release to the receiver: every node's sealed shares by digest (nodes check it).

        Written in the caller's batch, unsealed: one checkpoint covers a batch of releases.
        """
        participation = [p for d in dispatched for p in d.participation]
        details: dict[str, Any] = {
            "plan_hash": plan.plan_hash,
            "receiver": self.actor,
            "sealed": dispatched[-1].sealed,
            "sealed_bytes": dispatched[-1].sealed_bytes,
            "participation": participation,
            "total_us": int(total_ms * 1000),
        }
        if public:
            details["public"] = public
        return self._ending("result.released", "released", details)

    def undelivered(self, err: GatewayError) -> None:
        """The release was logged, but the nodes did not hand the sealed shares over."""
        with self.audit.batch():
            self._record(
                "result.undelivered",
                "failed",
                {"plan_hash": self.plan_hash, "reason": err.public_message},
            )
            self.audit.seal()

    def failed(
        self, err: GatewayError, kind: str = "query.failed", *, privacy_refunded: bool = False
    ) -> None:
        """The query ended without a release (its privacy spend refunded, if it had any)."""
        if not self.closed:
            details: dict[str, Any] = {"reason": err.public_message, "plan_hash": self.plan_hash}
            if privacy_refunded:
                details["privacy_refunded"] = True
            self._close(kind, "failed" if kind == "query.failed" else "rejected", details)

    def abandoned(self, reason: str) -> None:
        """The query was left without an outcome (the gateway stopped under it): say so."""
        self._close("query.abandoned", "abandoned", {"reason": reason, "plan_hash": self.plan_hash})


@dataclass(eq=False)
class _Submission(Queued):
    record: QueryRecord
    plan: Plan
    request: Request
    certificate: str
    privacy: list[dict[str, str]]


class Submissions:
    """Submissions written together: the queries admitted while one submission is being
    written share its next durable write and signed checkpoint (a group commit), each
    with its own entry and inclusion proof, the evidence every node demands."""

    def __init__(self, audit: AuditTrail, batch_max: int) -> None:
        self.audit = audit
        self._batcher = Batcher(self._write_all, batch_max, in_flight=1)

    def submit(
        self,
        record: QueryRecord,
        plan: Plan,
        request: Request,
        certificate: str,
        privacy: list[dict[str, str]],
    ) -> DispatchEvidence:
        """``record``'s submission, logged and sealed (with whatever else queued with it)."""
        pending = _Submission(record.query_id, record, plan, request, certificate, privacy)
        evidence: DispatchEvidence = self._batcher.submit(pending)
        return evidence

    def _write_all(self, batch: Sequence[_Submission]) -> list[_Submission]:
        writes = [
            partial(s.record.submitted, s.plan, s.request, s.certificate, s.privacy) for s in batch
        ]
        try:
            evidence = self.audit.sealed(writes)
        except GatewayError as err:  # an unwritable log: none of them runs
            for submission in batch:
                submission.fail(err)
            return []
        for submission, proof in zip(batch, evidence, strict=True):
            submission.succeed(proof)
        return []
