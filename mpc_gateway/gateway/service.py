"""The gateway: validate, decide, plan, dispatch, release, and record every step.

The gateway never holds institution data. It turns an analyst's request into a
canonical plan (the request's computation builds it), evaluates the
consortium's and every institution's policy (a query that needs approvals waits
for them), has every node execute the plan in the global MPC order, and relays
the result, sealed to the analyst, once every node witnessed its release
(:mod:`mpc_gateway.gateway.relay`): it never holds a result. Every step,
including every refusal and failure, is appended to the audit log before it
takes effect: no result leaves without its audit entry.

Who may call what is decided before any of this runs, by the server's access
table (:mod:`mpc_gateway.gateway.server`); the methods here take the caller
only to act for it.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import (
    Execution,
    Plan,
    Planning,
    Request,
    computation_of,
)
from mpc_gateway.computations.disclosure import helpers_learn
from mpc_gateway.computations.scoring import ScoringModel
from mpc_gateway.errors import (
    BudgetExhaustedError,
    ConfigurationError,
    GatewayError,
    InternalError,
    InvalidQueryError,
    PolicyDeniedError,
    ShuttingDownError,
)
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.gateway.governance import BudgetLine, Governance
from mpc_gateway.gateway.lifecycle import QueryBook, QueryState, TrackedQuery, not_waiting
from mpc_gateway.gateway.pending import EndedQuery, QueryStore
from mpc_gateway.gateway.pseudonyms import PseudonymRelay
from mpc_gateway.gateway.recombine import Dispatched
from mpc_gateway.gateway.record import QueryRecord, Submissions
from mpc_gateway.gateway.recovery import LogScan, recover, witnessed_by
from mpc_gateway.gateway.registry import ModelRegistry, RegisteredModel, register_recorded
from mpc_gateway.gateway.relay import Relay
from mpc_gateway.orders.release import Relayed
from mpc_gateway.pki import Identity, load_ca, load_layout, load_signing_key, tls_credentials_bytes
from mpc_gateway.pki.sealing import SealedWeights
from mpc_gateway.policy import CombinedDecision, SignedApproval, approvals_satisfied
from mpc_gateway.privacy import DEFAULT_DELTA, epsilon_for
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.rpc.drain import Gate
from mpc_gateway.settings import GatewaySettings

__all__ = ["Gateway"]

log = logging.getLogger(__name__)


class Gateway:
    """Everything the gateway does for its callers, without any gRPC."""

    def __init__(self, settings: GatewaySettings, dispatcher: Dispatcher | None = None) -> None:
        self.settings = settings
        self.layout = load_layout(settings.pki_dir)
        self.ca = load_ca(self.layout.ca_cert)
        td = self.layout.trust_domain
        self.identity = Identity("gateway", settings.name, td)
        self.tls = tls_credentials_bytes(self.layout, self.identity)
        signing_key = load_signing_key(self.layout.signing_paths(self.identity)[1])
        self.schemas: dict[str, DatasetSchema] = {
            name: load_schema(src.schema_file) for name, src in settings.datasets.items()
        }
        for name, schema in self.schemas.items():
            if schema.name != name:
                raise ConfigurationError(
                    f"dataset {name!r} points at the schema of {schema.name!r}"
                )
        policies = {n.name: n.policy for n in settings.nodes}
        self.governance = Governance(
            settings.consortium_policy, policies, self.schemas, settings.usage_db
        )
        queries_db = settings.queries_db or settings.audit_db.with_name("queries.sqlite")
        self.store = QueryStore(queries_db, self.layout.trust_domain)
        self.book = QueryBook(store=self.store)
        self.executions = Gate("the gateway")  # queries running, drained on SIGTERM
        self.dispatcher = dispatcher or Dispatcher(
            settings.nodes,
            self.layout.nodes,
            self.tls,
            signing_key,
            settings.batch_max,
            settings.batches_in_flight,
        )
        self.models = ModelRegistry(settings.models_dir, self.layout.nodes, self.datasets())
        origin = log_origin(td, "gateway", settings.name)
        self.audit = AuditTrail.open(settings.audit_db, signing_key, origin)
        self.dispatcher.on_session = witnessed_by(self.audit)
        self.submissions = Submissions(self.audit, settings.batch_max)
        self.relay = Relay(  # batch_max = 1: each query alone, to the nodes and at its release
            self.dispatcher, self.audit, self.layout, self.identity, settings.batch_max
        )
        self.dispatcher.shown = self.relay.shown
        with self.audit.batch():
            self.audit.record(
                "admin.gateway_started",
                str(self.identity),
                details={
                    "nodes": [p.name for p in self.dispatcher.parties],
                    "datasets": {n: s.schema_hash for n, s in self.schemas.items()},
                },
            )
            for owner, version in self.governance.versions().items():
                self.audit.record(
                    "admin.policy_loaded",
                    str(self.identity),
                    details={"owner": owner, "version_hash": version},
                )
            self.audit.seal()
        decide = lambda c, r: self.governance.decide(c, self._plan(c, r))  # noqa: E731
        self.pseudonyms = PseudonymRelay(
            self.governance, self.audit, self.dispatcher, settings.query_timeout_s, self.ca
        )
        self.recovered = recover(self.audit, self.store, self.book, decide, self.ca)
        self.scan = LogScan(self.audit.log, self.store)

    @property
    def parties(self) -> int:
        return len(self.dispatcher.parties)

    def datasets(self) -> list[DatasetSchema]:
        return [self.schemas[name] for name in sorted(self.schemas)]

    def _plan(self, caller: Identity, request: Request) -> Plan:
        schema = self.schemas.get(request.dataset)
        if schema is None:
            known = ", ".join(sorted(self.schemas)) or "none"
            raise InvalidQueryError(f"unknown dataset {request.dataset!r}; known datasets: {known}")
        planning = Planning(str(caller), self.parties, self.models)
        plan: Plan = computation_of(request).build(request, schema, planning)
        return plan

    def explain(
        self, caller: Identity, request: Request
    ) -> tuple[CombinedDecision[Plan], dict[str, Any]]:
        """The dry run: every rule of every policy, approvals needed, what would be disclosed."""
        decision = self.governance.decide(caller, self._plan(caller, request))
        report = decision.explain()
        helpers = [n.name for n in self.settings.nodes if n.role == "helper"]
        if helpers:
            report["disclosure"].append(helpers_learn(helpers))
        plan = decision.plan
        if plan.controls.dp_rho is not None:
            report["privacy"] = self._privacy_report(plan)
        return decision, report

    def _privacy_report(self, plan: Plan) -> dict[str, Any]:
        """What a plan under DP costs, its noise, and what the budgets have left."""
        assert plan.controls.dp_rho is not None
        rho = plan.controls.dp_rho
        noise = computation_of(plan).noise(plan, self.schemas[plan.dataset], self.parties)
        return {
            "rho": str(rho),
            "epsilon": f"{epsilon_for(float(rho)):.4g}",
            "delta": f"{DEFAULT_DELTA:g}",
            "noise": [release.shown() for release in noise],
            "budgets": [line.as_dict() for line in self.governance.costs(plan)],
        }

    def budgets(self, caller: Identity, dataset: str = "") -> list[BudgetLine]:
        """The caller's privacy budgets (on ``dataset``, or every dataset) as they stand."""
        if dataset and dataset not in self.schemas:
            known = ", ".join(sorted(self.schemas)) or "none"
            raise InvalidQueryError(f"unknown dataset {dataset!r}; known datasets: {known}")
        return self.governance.budgets(str(caller), dataset or None)

    def run(
        self, caller: Identity, request: Request, certificate: str = "", receiver: str = ""
    ) -> Relayed:
        """Run ``request`` for ``caller`` now, or keep it for approval (ApprovalMissingError).

        ``receiver`` is the caller's key-agreement certificate (PEM): nodes seal to it.
        """
        query = QueryRecord(self.audit, uuid.uuid4().hex, request.dataset, str(caller))
        with query.naming_errors():
            decision = self._admit(caller, request, query, certificate)
            plan = decision.plan
            if decision.approvals:
                tracked = TrackedQuery(
                    query.query_id, caller, request, certificate, decision, _now_ms(), receiver
                )
                self.book.add(tracked)
                query.plan_hash = plan.plan_hash
                query.pending(plan, tracked.waiting_for(self.ca))
                raise tracked.waiting_error()
            with self.executions.hold():  # drained on SIGTERM
                return self._execute(query, caller, request, plan, certificate, (), receiver)

    def reading(
        self, caller: Identity, dataset: str, certificate: str = "", statement: str = ""
    ) -> AbstractContextManager[None]:
        """Errors leaving the block refuse a request not yet read as a query (and log it)."""
        query = QueryRecord(self.audit, uuid.uuid4().hex, dataset, str(caller))
        return query.refusing(None, certificate, statement)

    def _admit(
        self, caller: Identity, request: Request, query: QueryRecord, certificate: str
    ) -> CombinedDecision[Plan]:
        with query.refusing(request, certificate):
            decision = self.governance.decide(caller, self._plan(caller, request))
        query.policy_decided(decision, self.governance.versions())
        try:
            decision.raise_if_denied()
        except GatewayError as err:
            failed = next((c.rule for d in decision.decisions for c in d.failed), "")
            query.refused(request, err, certificate, rule=failed)
            raise
        return decision

    def _execute(
        self,
        query: QueryRecord,
        caller: Identity,
        request: Request,
        plan: Plan,
        certificate: str,
        approvals: tuple[SignedApproval, ...],
        receiver: str,
    ) -> Relayed:
        started = time.perf_counter()
        computation = computation_of(plan)
        timeout_s = (
            self.settings.query_timeout_s
            if computation.lane == "short"
            else self.settings.risk_timeout_s
        )
        schema = self.schemas[plan.dataset]
        try:
            reservation = self.governance.reserve(
                caller, plan, query.query_id, computation.steps(plan, schema, self.parties)
            )
        except BudgetExhaustedError as err:
            query.refused(request, err, certificate, rule=err.rule)
            raise
        steps: list[Dispatched] = []
        try:
            evidence = self.submissions.submit(
                query, plan, request, certificate, reservation.audit_view()
            )

            def run_step(step: dict[str, Any]) -> dict[str, list[int]]:
                steps.append(
                    self.dispatcher.run(
                        query.query_id,
                        plan,
                        timeout_s,
                        evidence,
                        on_dispatched=query.dispatched,
                        approvals=approvals,
                        step=step,
                        receiver=receiver,
                    )
                )
                return steps[-1].blocks

            execution = Execution(schema, self.parties, self.models, run_step)
            public = computation.run(plan, execution)
        except Exception as err:
            refunded = self.governance.give_back(reservation, len(steps))
            if not isinstance(err, GatewayError):
                log.exception("query %s failed", query.query_id)
                err = InternalError("internal error at the gateway")
            query.failed(err, privacy_refunded=refunded)
            if isinstance(err, ShuttingDownError):  # so that status says so after the restart
                self.book.remember(query.query_id, str(caller), "failed", plan.plan_hash, str(err))
            raise
        total_ms = (time.perf_counter() - started) * 1000
        return self.relay.release(query, plan, schema, public, steps, total_ms)

    def register_model(
        self, caller: Identity, model: ScoringModel, sealed: SealedWeights | None
    ) -> RegisteredModel:
        """Register a scoring model under the caller's identity (an analyst: its owner)."""
        return register_recorded(self.models, self.audit, caller, model, sealed)

    def registered_models(self) -> list[RegisteredModel]:
        return self.models.models()

    def pending(self, caller: Identity) -> list[TrackedQuery]:
        """The queries waiting for ``caller``'s decision."""
        return list(self.book.waiting(caller))

    def status(self, caller: Identity, query_id: str) -> TrackedQuery | EndedQuery:
        """A query that needed approval, or one a restart ended; analysts see only their own."""
        return self.book.find(query_id, caller)

    def decide(self, caller: Identity, query_id: str, signed: SignedApproval) -> TrackedQuery:
        """Record an approver's signed decision; run the query once every approval is in.

        Everything is checked before anything is written: the decision is the
        caller's own, for exactly this query's plan, authentic and by a listed
        approver, and the query still waits. Decisions on one query are taken one
        at a time, so two approvals at once start it once.
        """
        query = self.book.get(query_id)
        query.check_decision(caller, signed)
        self.book.check_decision_is_new(signed, query_id)
        plan_hash = query.plan.plan_hash
        with query.lock:
            if query.state is not QueryState.WAITING:
                raise not_waiting(query)
            for need in query.decision.approvals:  # verifies signature, certificate, expiry
                approvals_satisfied(
                    need.rule,
                    [signed],
                    plan_hash,
                    self.ca,
                    _now(),
                    institution=need.owner,
                    query_id=query_id,
                )
            query.approvals.append(signed)
            record = QueryRecord(
                self.audit, query.query_id, query.request.dataset, str(query.caller)
            )
            record.plan_hash = plan_hash
            record.approval(
                str(caller),
                signed.body.decision,
                signed.body.reason,
                base64.b64encode(signed.signature).decode(),
            )
            self.book.keep_approvals(query)
            self._advance(query, record)
        return query

    def _advance(self, query: TrackedQuery, record: QueryRecord) -> None:
        rejections = query.rejections(self.ca)
        if rejections:
            rejected = PolicyDeniedError("rejected by " + "; ".join(rejections))
            record.failed(rejected, kind="query.rejected")
            query.transition(QueryState.WAITING, QueryState.REJECTED, rejected)
        elif not query.waiting_for(self.ca) and query.transition(
            QueryState.WAITING, QueryState.RUNNING
        ):
            run = self.executions.holding(lambda: self._run_approved(query, record))
            threading.Thread(target=run, daemon=True).start()

    def _run_approved(self, query: TrackedQuery, record: QueryRecord) -> None:
        try:
            released = self._execute(
                record,
                query.caller,
                query.request,
                query.plan,
                query.certificate,
                tuple(query.approvals),
                query.receiver,
            )
            query.transition(QueryState.RUNNING, QueryState.RELEASED, released)
        except GatewayError as err:
            query.transition(QueryState.RUNNING, QueryState.FAILED, err)
        except Exception as err:  # the analyst polls for this query: never leave it running
            log.exception("approved query %s failed", query.query_id)
            failure = InternalError(f"internal error: {type(err).__name__}")
            query.transition(QueryState.RUNNING, QueryState.FAILED, failure)

    def close(self) -> None:
        self.scan.close()
        self.store.close()
        self.audit.close()
        self.governance.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _now() -> datetime:
    return datetime.now(UTC)
