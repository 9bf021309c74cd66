"""The gateway: validate, decide, plan, dispatch, reconstruct, release, and record every step.

The gateway never holds institution data. It turns an analyst's query into a
canonical plan, evaluates the consortium's and every institution's policy (a
query that needs approvals waits for them), has every node execute the plan in
the global MPC order, rebuilds the joint integers from the nodes' re-randomised
shares, turns them into the requested statistics, and releases them to the
analyst who asked. Every step, including every refusal and failure, is appended
to the audit log before it takes effect: no result leaves without its audit entry.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mpc_gateway.audit.evidence import DispatchEvidence, log_origin
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import canonical_hash
from mpc_gateway.errors import GatewayError, InvalidQueryError, PolicyDeniedError
from mpc_gateway.gateway.dispatch import Dispatched, Dispatcher
from mpc_gateway.gateway.governance import ApprovalBook, Governance, PendingQuery
from mpc_gateway.gateway.record import QueryRecord, result_digest
from mpc_gateway.gateway.registry import ModelRegistry, RegisteredModel
from mpc_gateway.pki import Identity, load_ca, load_layout, load_signing_key, tls_credentials_bytes
from mpc_gateway.policy import CombinedDecision, SignedApproval, approvals_satisfied
from mpc_gateway.query.models import QuerySpec
from mpc_gateway.query.plan import QueryPlan, build_plan, layout_for
from mpc_gateway.query.results import ResultTable, decode_result
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.risk import QuantilePlan, ScoringModel, SealedWeights
from mpc_gateway.risk.jobs import (
    QuantileJob,
    RiskOrder,
    RiskOutcome,
    RiskPlan,
    RiskRequest,
    ScoreJob,
    ScoreRequest,
    build_risk_plan,
    decode,
    mpc_plan,
    search_quantiles,
)
from mpc_gateway.settings import GatewaySettings

__all__ = ["Gateway", "Release", "RiskRelease"]

Request = QuerySpec | RiskRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """What the analyst receives."""

    query_id: str
    plan: QueryPlan
    table: ResultTable
    sequence: int
    total_ms: float
    local_ms: float
    mpc_ms: float


@dataclass(frozen=True)
class RiskRelease:
    """What the analyst receives for a risk query (one or more MPC jobs)."""

    query_id: str
    plan: RiskPlan
    outcome: RiskOutcome
    sequence: int  # of the last job
    total_ms: float
    local_ms: float  # summed over the jobs: slowest node's local step of each
    mpc_ms: float


class Gateway:
    """Everything the gateway does for its callers, without any gRPC."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.layout = load_layout(settings.pki_dir)
        self.ca = load_ca(self.layout.ca_cert)
        self.identity = Identity("gateway", settings.name, self.layout.trust_domain)
        self.tls = tls_credentials_bytes(self.layout, self.identity)
        signing_key = load_signing_key(self.layout.signing_paths(self.identity)[1])
        self.schemas: dict[str, DatasetSchema] = {
            name: load_schema(src.schema_file) for name, src in settings.datasets.items()
        }
        for name, schema in self.schemas.items():
            if schema.name != name:
                raise InvalidQueryError(f"dataset {name!r} points at the schema of {schema.name!r}")
        self.governance = Governance(settings.consortium_policy, {n.name: n.policy for n in settings.nodes},
                                     self.schemas, settings.usage_db)  # fmt: skip
        self.book = ApprovalBook()
        self.dispatcher = Dispatcher(settings.nodes, self.layout.nodes, self.tls, signing_key)
        self.models = ModelRegistry(settings.models_dir, self.layout.nodes)
        origin = log_origin(self.layout.trust_domain, "gateway", settings.name)
        self.audit = AuditTrail.open(settings.audit_db, signing_key, origin)
        with self.audit.batch():
            self.audit.record("admin.gateway_started", str(self.identity), details={
                "nodes": [p.name for p in self.dispatcher.parties],
                "datasets": {n: s.schema_hash for n, s in self.schemas.items()},
            })  # fmt: skip
            for owner, version in self.governance.versions().items():
                self.audit.record("admin.policy_loaded", str(self.identity),
                                  details={"owner": owner, "version_hash": version})  # fmt: skip
            self.audit.seal()

    def datasets(self, caller: Identity) -> list[DatasetSchema]:
        _require(caller, "analyst", "auditor", "approver")
        return [self.schemas[name] for name in sorted(self.schemas)]

    def _plan(self, caller: Identity, spec: Request) -> QueryPlan | RiskPlan:
        _require(caller, "analyst")
        schema = self.schemas.get(spec.dataset)
        if schema is None:
            known = ", ".join(sorted(self.schemas)) or "none"
            raise InvalidQueryError(f"unknown dataset {spec.dataset!r}; known datasets: {known}")
        if isinstance(spec, QuerySpec):
            return build_plan(spec, schema, str(caller))
        model = (
            self.models.get(spec.job.model_id).model if isinstance(spec.job, ScoreRequest) else None
        )
        return build_risk_plan(spec, schema, str(caller), len(self.dispatcher.parties), model)

    def explain(self, caller: Identity, spec: Request) -> tuple[CombinedDecision, dict[str, Any]]:
        """The dry run: every rule of every policy, approvals needed, what would be disclosed."""
        decision = self.governance.decide(caller, self._plan(caller, spec))
        return decision, decision.explain()

    def run_query(
        self, caller: Identity, spec: Request, certificate: str = ""
    ) -> Release | RiskRelease:
        """Run ``spec`` for ``caller`` now, or register it for approval (ApprovalMissingError)."""
        query = QueryRecord(self.audit, uuid.uuid4().hex, spec.dataset, str(caller))
        decision = self._admit(caller, spec, query, certificate)
        if decision.approvals:
            pending = PendingQuery(query.query_id, caller, spec, certificate, decision, _now_ms())
            self.book.add(pending)
            query.plan_hash = decision.plan.plan_hash
            query.pending(decision.plan, pending.waiting_for(self.ca))
            self.book.require(pending)
        return self._execute(query, caller, spec, decision.plan, certificate, ())

    def refuse_malformed(
        self, caller: Identity, dataset: str, err: GatewayError, certificate: str = ""
    ) -> None:
        """Log a request that could not even be read as a query (it gets ``err`` back)."""
        QueryRecord(self.audit, uuid.uuid4().hex, dataset, str(caller)).refused(
            None, err, certificate
        )

    def _admit(
        self, caller: Identity, spec: Request, query: QueryRecord, certificate: str
    ) -> CombinedDecision:
        try:
            decision = self.governance.decide(caller, self._plan(caller, spec))
        except GatewayError as err:
            query.refused(spec, err, certificate)
            raise
        query.policy_decided(decision, self.governance.versions())
        try:
            decision.raise_if_denied()
        except GatewayError as err:
            failed = next((c.rule for d in decision.decisions for c in d.failed), "")
            query.refused(spec, err, certificate, rule=failed)
            raise
        return decision

    def _execute(self, query: QueryRecord, caller: Identity, spec: Request, plan: QueryPlan | RiskPlan,
                 certificate: str, approvals: tuple[SignedApproval, ...]) -> Release | RiskRelease:  # fmt: skip
        started = time.perf_counter()
        try:
            self.governance.count_query(caller)
            evidence = query.submitted(plan, spec, certificate)
            if isinstance(plan, RiskPlan):
                return self._execute_risk(query, plan, evidence, approvals, started)
            dispatched = self.dispatcher.run(query.query_id, plan, self.settings.query_timeout_s, evidence,
                                             on_dispatched=query.dispatched, approvals=approvals)  # fmt: skip
            schema = self.schemas[plan.dataset]
            layout = layout_for(plan, schema, len(dispatched.order.parties))
            table = decode_result(plan, layout, schema, dispatched.blocks)
        except GatewayError as err:
            query.failed(err)
            raise
        total_ms = (time.perf_counter() - started) * 1000
        suppressed = [{"group": g, "rules": list(r)} for g, r in table.suppressed]
        query.released(plan, result_digest(table), suppressed, [dispatched], total_ms)
        return Release(query.query_id, plan, table, dispatched.order.sequence, total_ms,
                       dispatched.local_ms, dispatched.mpc_ms)  # fmt: skip

    def _execute_risk(self, query: QueryRecord, plan: RiskPlan, evidence: DispatchEvidence,
                      approvals: tuple[SignedApproval, ...], started: float) -> RiskRelease:  # fmt: skip
        """Run a risk plan's MPC job (a quantile search: one job per round) and decode it."""
        schema = self.schemas[plan.dataset]
        job, job_plan = plan.job, mpc_plan(plan, schema, len(self.dispatcher.parties))
        sealed = self.models.get(job.model_id).sealed if isinstance(job, ScoreJob) else None

        rounds: list[Dispatched] = []

        def run(path: tuple[tuple[int, ...], ...] = ()) -> dict[str, list[int]]:
            rounds.append(self.dispatcher.run(
                query.query_id, plan, self.settings.risk_timeout_s, evidence,
                on_dispatched=query.dispatched, approvals=approvals,
                risk=RiskOrder(sealed=sealed, path=path)))  # fmt: skip
            return rounds[-1].blocks

        if isinstance(job, QuantileJob) and isinstance(job_plan, QuantilePlan):
            outcome = search_quantiles(job, job_plan, run)
        else:
            outcome = decode(plan, schema, job_plan, run())
        total_ms = (time.perf_counter() - started) * 1000
        query.released(plan, outcome.digest(), outcome.suppressed(), rounds, total_ms)
        return RiskRelease(query.query_id, plan, outcome, rounds[-1].order.sequence, total_ms,
                           sum(r.local_ms for r in rounds), sum(r.mpc_ms for r in rounds))  # fmt: skip

    def register_model(
        self, caller: Identity, model: ScoringModel, sealed: SealedWeights | None
    ) -> RegisteredModel:
        """Register a scoring model under the caller's identity (an analyst: its owner)."""
        _require(caller, "analyst")
        try:
            entry, created = self.models.register(caller, model, sealed)
        except GatewayError as err:
            with self.audit.batch():
                self.audit.record("model.refused", str(caller), decision="refused", details={
                    "reason": err.public_message, "model_id": model.model_id})  # fmt: skip
                self.audit.seal()
            raise
        if created:
            sealed_hash = None if sealed is None else canonical_hash(sealed.model_dump(mode="json"))
            with self.audit.batch():
                self.audit.record("model.registered", str(caller), decision="registered", details={
                    "model_id": entry.model_id, "model": model.model_dump(mode="json"),
                    "sealed_weights_sha256": sealed_hash})  # fmt: skip
                self.audit.seal()
        return entry

    def registered_models(self, caller: Identity) -> list[RegisteredModel]:
        _require(caller, "analyst", "auditor", "approver")
        return self.models.models()

    def pending(self, caller: Identity) -> list[PendingQuery]:
        _require(caller, "approver")
        return list(self.book.waiting(caller))

    def status(self, caller: Identity, query_id: str) -> PendingQuery:
        _require(caller, "analyst", "approver", "auditor")
        return self.book.get(query_id, caller)

    def decide(self, caller: Identity, query_id: str, signed: SignedApproval) -> PendingQuery:
        """Record an approver's signed decision; run the query once every approval is in."""
        _require(caller, "approver")
        query = self.book.get(query_id)
        if signed.body.approver != str(caller):
            raise PolicyDeniedError(
                f"{caller} may only submit its own decisions, not {signed.body.approver}'s"
            )
        if query.state != "waiting":
            raise PolicyDeniedError(
                f"query {query_id} is no longer waiting for approval: it is {query.state}"
            )
        for need in query.decision.approvals:  # verifies signature, certificate, plan hash, expiry
            approvals_satisfied(
                need.rule, [signed], query.plan.plan_hash, self.ca, _now(), institution=need.owner
            )
        query.approvals.append(signed)
        record = QueryRecord(self.audit, query.query_id, query.spec.dataset, str(query.caller))
        record.plan_hash = query.plan.plan_hash
        record.approval(str(caller), signed.body.decision, signed.body.reason,
                        base64.b64encode(signed.signature).decode())  # fmt: skip
        self._advance(query, record)
        return query

    def _advance(self, query: PendingQuery, record: QueryRecord) -> None:
        rejections = query.rejections(self.ca)
        if rejections:
            query.state, query.outcome = (
                "rejected",
                PolicyDeniedError("rejected by " + "; ".join(rejections)),
            )
            record.failed(query.outcome, kind="query.rejected")
            query.done.set()
        elif not query.waiting_for(self.ca):
            query.state = "running"
            threading.Thread(target=self._run_approved, args=(query, record), daemon=True).start()

    def _run_approved(self, query: PendingQuery, record: QueryRecord) -> None:
        try:
            query.outcome = self._execute(record, query.caller, query.spec, query.plan, query.certificate,
                                          tuple(query.approvals))  # fmt: skip
            query.state = "released"
        except GatewayError as err:
            query.state, query.outcome = "failed", err
        except Exception as err:  # the analyst polls for this query: never leave it running
            log.exception("approved query %s failed", query.query_id)
            query.state, query.outcome = (
                "failed",
                GatewayError(f"internal error: {type(err).__name__}"),
            )
        finally:
            query.done.set()

    def close(self) -> None:
        self.audit.close()
        self.governance.ledger.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _now() -> datetime:
    return datetime.now(UTC)


def _require(caller: Identity, *roles: str) -> None:
    if caller.role not in roles:
        raise PolicyDeniedError(f"{caller} may not do this: it needs the role {' or '.join(roles)}")
