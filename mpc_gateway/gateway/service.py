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

from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import GatewayError, InvalidQueryError, PolicyDeniedError
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.pki import Identity, load_layout, load_signing_key, tls_credentials_bytes
from mpc_gateway.query.models import QuerySpec
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
        self.audit = AuditTrail.open(settings.audit_db, signing_key, settings.name)
        self.audit.record(
            "admin.gateway_started",
            str(self.identity),
            details={
                "nodes": [p.name for p in self.dispatcher.parties],
                "datasets": {n: s.schema_hash for n, s in self.schemas.items()},
            },
        )

    def datasets(self, caller: Identity) -> list[DatasetSchema]:
        _require(caller, "analyst", "auditor", "approver")
        return [self.schemas[name] for name in sorted(self.schemas)]

    def _plan(self, caller: Identity, spec: QuerySpec) -> QueryPlan:
        schema = self.schemas.get(spec.dataset)
        if schema is None:
            known = ", ".join(sorted(self.schemas)) or "none"
            raise InvalidQueryError(f"unknown dataset {spec.dataset!r}; known datasets: {known}")
        return build_plan(spec, schema, str(caller))

    def run_query(self, caller: Identity, spec: QuerySpec) -> Release:
        """Run ``spec`` for ``caller``; every outcome is in the audit log."""
        started = time.perf_counter()
        query_id = uuid.uuid4().hex
        base: dict[str, Any] = {"query_id": query_id, "dataset": spec.dataset}
        try:
            _require(caller, "analyst")
            plan = self._plan(caller, spec)
        except GatewayError as err:
            self.audit.record(
                "query.refused",
                str(caller),
                decision="refused",
                details={"reason": err.public_message, "request": spec.model_dump(mode="json")},
                **base,
            )
            raise
        self.audit.record(
            "query.submitted",
            str(caller),
            decision="allowed",
            details={"plan": plan.model_dump(mode="json"), "plan_hash": plan.plan_hash},
            **base,
        )
        try:
            dispatched = self.dispatcher.run(query_id, plan, self.settings.query_timeout_s)
            schema = self.schemas[plan.dataset]
            layout = layout_for(plan, schema, len(dispatched.order.parties))
            table = decode_result(plan, layout, schema, dispatched.blocks)
        except GatewayError as err:
            self.audit.record(
                "query.failed",
                str(caller),
                decision="failed",
                details={"reason": err.public_message, "plan_hash": plan.plan_hash},
                **base,
            )
            raise
        total_ms = (time.perf_counter() - started) * 1000
        self.audit.record(
            "result.released",
            str(caller),
            decision="released",
            details={
                "plan_hash": plan.plan_hash,
                "result_sha256": _digest(table),
                "epoch": dispatched.order.epoch,
                "sequence": dispatched.order.sequence,
                "nodes": [p.name for p in dispatched.order.parties],
                "receiver": str(caller),
                "timing_us": {"total": int(total_ms * 1000), "mpc": int(dispatched.mpc_ms * 1000)},
            },
            **base,
        )
        return Release(
            query_id,
            plan,
            table,
            dispatched.order.sequence,
            total_ms,
            dispatched.local_ms,
            dispatched.mpc_ms,
        )


def _require(caller: Identity, *roles: str) -> None:
    if caller.role not in roles:
        raise PolicyDeniedError(f"{caller} may not do this: it needs the role {' or '.join(roles)}")
