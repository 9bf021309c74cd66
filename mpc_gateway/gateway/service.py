"""The gateway: validate, plan, dispatch, reconstruct, release, and record every step.

The gateway never holds institution data. It turns an analyst's query into a
canonical plan, has every node execute it in the global MPC order, rebuilds the
joint integers from the nodes' re-randomised shares, turns them into the
requested statistics, and releases them to the analyst who asked. Every step,
including every refusal and failure, is appended to the audit log before the
step takes effect: no result leaves without its audit entry.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from mpc_gateway.audit.evidence import DispatchEvidence, log_origin
from mpc_gateway.audit.log import AppendedEntry
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import GatewayError, InvalidQueryError, PolicyDeniedError
from mpc_gateway.gateway.dispatch import Dispatched, Dispatcher
from mpc_gateway.pki import Identity, load_layout, load_signing_key, tls_credentials_bytes
from mpc_gateway.query.models import QuerySpec
from mpc_gateway.query.order import ExecutionOrder
from mpc_gateway.query.plan import QueryPlan, build_plan, layout_for
from mpc_gateway.query.results import ResultTable, decode_result
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.settings import GatewaySettings

__all__ = ["Gateway", "Release"]

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


def _digest(table: ResultTable) -> str:
    rows = [
        [group, [None if v is None else str(v) for v in values]] for group, values in table.rows
    ]
    return hashlib.sha256(
        canonical_bytes({"columns": list(table.columns), "rows": rows})
    ).hexdigest()


class Gateway:
    """Everything the gateway does for its callers, without any gRPC."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.layout = load_layout(settings.pki_dir)
        self.identity = Identity("gateway", settings.name, self.layout.trust_domain)
        self.tls = tls_credentials_bytes(self.layout, self.identity)
        _, key_path = self.layout.signing_paths(self.identity)
        signing_key = load_signing_key(key_path)
        self.schemas: dict[str, DatasetSchema] = {
            name: load_schema(src.schema_file) for name, src in settings.datasets.items()
        }
        for name, schema in self.schemas.items():
            if schema.name != name:
                raise InvalidQueryError(f"dataset {name!r} points at the schema of {schema.name!r}")
        self.dispatcher = Dispatcher(settings.nodes, self.layout.nodes, self.tls, signing_key)
        origin = log_origin(self.layout.trust_domain, "gateway", settings.name)
        self.audit = AuditTrail.open(settings.audit_db, signing_key, origin)
        self.audit.record(
            "admin.gateway_started",
            str(self.identity),
            details={
                "nodes": [p.name for p in self.dispatcher.parties],
                "datasets": {n: s.schema_hash for n, s in self.schemas.items()},
            },
        )
        self.audit.seal()

    def datasets(self, caller: Identity) -> list[DatasetSchema]:
        _require(caller, "analyst", "auditor", "approver")
        return [self.schemas[name] for name in sorted(self.schemas)]

    def _plan(self, caller: Identity, spec: QuerySpec) -> QueryPlan:
        schema = self.schemas.get(spec.dataset)
        if schema is None:
            known = ", ".join(sorted(self.schemas)) or "none"
            raise InvalidQueryError(f"unknown dataset {spec.dataset!r}; known datasets: {known}")
        return build_plan(spec, schema, str(caller))

    def run_query(self, caller: Identity, spec: QuerySpec, certificate: str = "") -> Release:
        """Run ``spec`` for ``caller``; every outcome is in the audit log, sealed by a signed head."""
        started = time.perf_counter()
        query = _QueryRecord(self.audit, uuid.uuid4().hex, spec.dataset, str(caller))
        try:
            plan = self._admit(caller, spec, query, certificate)
            evidence = query.submitted(plan, spec, certificate)
            dispatched = self.dispatcher.run(
                query.query_id,
                plan,
                self.settings.query_timeout_s,
                evidence,
                on_dispatched=query.dispatched,
            )
            schema = self.schemas[plan.dataset]
            layout = layout_for(plan, schema, len(dispatched.order.parties))
            table = decode_result(plan, layout, schema, dispatched.blocks)
        except GatewayError as err:
            query.failed(err)
            raise
        total_ms = (time.perf_counter() - started) * 1000
        query.released(plan, table, dispatched, total_ms)
        return Release(
            query.query_id,
            plan,
            table,
            dispatched.order.sequence,
            total_ms,
            dispatched.local_ms,
            dispatched.mpc_ms,
        )

    def _admit(
        self, caller: Identity, spec: QuerySpec, query: _QueryRecord, certificate: str
    ) -> QueryPlan:
        try:
            _require(caller, "analyst")
            return self._plan(caller, spec)
        except GatewayError as err:
            query.refused(spec, err, certificate)
            raise


class _QueryRecord:
    """The audit entries of one query, in the order they happen, sealed in few durable writes.

    The submission is written and sealed before dispatch (nodes verify it); the
    dispatch (epoch, sequence, nodes) is written with the query's outcome.
    """

    def __init__(self, audit: AuditTrail, query_id: str, dataset: str, actor: str) -> None:
        self.audit, self.query_id, self.dataset, self.actor = audit, query_id, dataset, actor
        self.plan_hash: str | None = None
        self.order: ExecutionOrder | None = None
        self.closed = False

    def _record(self, kind: str, decision: str, details: dict[str, Any]) -> AppendedEntry:
        return self.audit.record(
            kind,
            self.actor,
            query_id=self.query_id,
            dataset=self.dataset,
            decision=decision,
            details=details,
        )

    def _close(self, kind: str, decision: str, details: dict[str, Any]) -> None:
        self.closed = True
        with self.audit.batch():
            if self.order is not None:
                order = self.order
                self._record(
                    "query.dispatched",
                    "dispatched",
                    {
                        "plan_hash": order.plan_hash,
                        "epoch": order.epoch,
                        "sequence": order.sequence,
                        "nodes": [p.name for p in order.parties],
                    },
                )
            self._record(kind, decision, details)
            self.audit.seal()

    def refused(self, spec: QuerySpec, err: GatewayError, certificate: str) -> None:
        self._close(
            "query.refused",
            "refused",
            {
                "reason": err.public_message,
                "certificate_sha256": certificate,
                "request": spec.model_dump(mode="json"),
            },
        )

    def submitted(self, plan: QueryPlan, spec: QuerySpec, certificate: str) -> DispatchEvidence:
        self.plan_hash = plan.plan_hash
        with self.audit.batch():
            appended = self._record(
                "query.submitted",
                "allowed",
                {
                    "plan": plan.model_dump(mode="json"),
                    "plan_hash": plan.plan_hash,
                    "purpose": spec.purpose,
                    "certificate_sha256": certificate,
                },
            )
            return self.audit.evidence(appended)

    def dispatched(self, order: ExecutionOrder) -> None:
        self.order = order

    def released(
        self, plan: QueryPlan, table: ResultTable, dispatched: Dispatched, total_ms: float
    ) -> None:
        self._close(
            "result.released",
            "released",
            {
                "plan_hash": plan.plan_hash,
                "result_sha256": _digest(table),
                "receiver": self.actor,
                "participation": dispatched.participation,
                "total_us": int(total_ms * 1000),
            },
        )

    def failed(self, err: GatewayError) -> None:
        if not self.closed:
            self._close(
                "query.failed",
                "failed",
                {"reason": err.public_message, "plan_hash": self.plan_hash},
            )


def _require(caller: Identity, *roles: str) -> None:
    if caller.role not in roles:
        raise PolicyDeniedError(f"{caller} may not do this: it needs the role {' or '.join(roles)}")
