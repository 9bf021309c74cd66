"""The analyst client: what the CLI uses, and what a notebook calls.

>>> from mpc_gateway.client import GatewayClient
>>> client = GatewayClient.from_pki("var/demo/pki", "analyst/alice", "127.0.0.1:50050")
>>> result = client.query("loans", ["count", "mean:exposure"], group_by="sector")
>>> result.records()        # plain data
>>> result.to_pandas()      # a DataFrame

Errors come back as the :mod:`mpc_gateway.errors` classes (``InvalidQueryError``,
``PolicyDeniedError``, ``NodeUnavailableError``, ...), with the server's message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mpc_gateway.errors import (
    ConfigurationError,
    DeadlineExceededError,
    IntegrityError,
    InvalidQueryError,
    PolicyDeniedError,
    ProtocolAbortedError,
)
from mpc_gateway.pki import Identity, load_layout, load_signing_key, tls_credentials_bytes
from mpc_gateway.policy import ApprovalBody, sign_approval
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc
from mpc_gateway.query.plan import QueryPlan
from mpc_gateway.query.results import Scalar, records
from mpc_gateway.rpc.client import ServiceClient
from mpc_gateway.rpc.convert import value_from_proto
from mpc_gateway.rpc.server import TlsMaterial

__all__ = [
    "GatewayClient",
    "QueryResult",
    "QueryStatus",
    "ApproverClient",
    "parse_aggregate",
    "tls_from_pki",
]


def tls_from_pki(pki_dir: str | Path, identity: str) -> TlsMaterial:
    """The mutual-TLS material of ``identity`` (``"role/name"``) in a consortium PKI directory."""
    layout = load_layout(Path(pki_dir))
    role, _, name = identity.partition("/")
    try:
        who = Identity(role, name, layout.trust_domain)
    except ValueError as err:
        raise ConfigurationError(
            f"identity {identity!r} is not of the form role/name: {err}"
        ) from None
    return tls_credentials_bytes(layout, who)


def parse_aggregate(text: str) -> gateway_pb2.AggregateSpec:
    """``"count"`` or ``"mean:exposure"`` (also ``"mean(exposure)"``) as an AggregateSpec."""
    text = text.strip()
    if text.endswith(")") and "(" in text:
        func, column = text[:-1].split("(", 1)
    else:
        func, _, column = text.partition(":")
    return gateway_pb2.AggregateSpec(func=func.strip().lower(), column=column.strip())


@dataclass(frozen=True)
class QueryResult:
    """A released joint result."""

    query_id: str
    plan_hash: str
    dataset: str
    group_by: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Scalar, ...]], ...]
    sequence: int
    total_ms: float
    mpc_ms: float
    local_ms: float = 0.0  # slowest node's local pre-aggregation
    suppressed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> rules failed
    controls: dict[str, Any] = field(default_factory=dict)  # the output controls applied

    def records(self) -> list[dict[str, Any]]:
        return records(self.group_by, self.columns, self.rows)

    def to_pandas(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame(self.records())
        return frame.set_index(self.group_by or "group")


def _column_details(column: gateway_pb2.ColumnInfo) -> dict[str, Any]:
    if column.kind == "categorical":
        return {"domain": list(column.domain)}
    if column.kind == "numeric":
        return {"scale": column.scale, "min": column.min, "max": column.max}
    return {}


@dataclass(frozen=True)
class QueryStatus:
    """Where a query that needed approval stands."""

    query_id: str
    state: str  # waiting, running, released, rejected, failed
    waiting_for: tuple[str, ...]
    reason: str
    result: QueryResult | None


def _result(reply: gateway_pb2.QueryResult) -> QueryResult:
    return QueryResult(
        query_id=reply.query_id,
        plan_hash=reply.plan_hash,
        dataset=reply.dataset,
        group_by=reply.group_by or None,
        columns=tuple(reply.columns),
        rows=tuple((r.group, tuple(value_from_proto(v) for v in r.values)) for r in reply.rows),
        suppressed={r.group: tuple(r.suppressed_by) for r in reply.rows if r.suppressed_by},
        sequence=reply.sequence,
        total_ms=reply.timing.total_ms,
        mpc_ms=reply.timing.mpc_ms,
        local_ms=reply.timing.local_ms,
        controls=json.loads(reply.controls_json) if reply.controls_json else {},
    )


class GatewayClient(ServiceClient):
    def __init__(
        self, address: str, tls: TlsMaterial, timeout_s: float = 120.0, purpose: str = ""
    ) -> None:
        super().__init__(address, tls, timeout_s, f"gateway at {address}")
        self.purpose = purpose  # declared with every query that names none
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    @classmethod
    def from_pki(
        cls, pki_dir: str | Path, identity: str, address: str, **kwargs: Any
    ) -> GatewayClient:
        """A client using ``identity`` (``"role/name"``) from a consortium PKI directory."""
        return cls(address, tls_from_pki(pki_dir, identity), **kwargs)

    def datasets(self) -> list[dict[str, Any]]:
        reply = self._call(self._stub.ListDatasets, gateway_pb2.ListDatasetsRequest())
        return [
            {
                "name": d.name,
                "description": d.description,
                "schema_hash": d.schema_hash,
                "nodes": list(d.nodes),
                "columns": [
                    {
                        "name": c.name,
                        "kind": c.kind,
                        "description": c.description,
                        **_column_details(c),
                    }
                    for c in d.columns
                ],
            }
            for d in reply.datasets
        ]

    def _request(
        self,
        dataset: str,
        aggregates: Sequence[str],
        where: str,
        group_by: str | None,
        purpose: str | None,
    ) -> gateway_pb2.QueryRequest:
        return gateway_pb2.QueryRequest(
            dataset=dataset,
            aggregates=[parse_aggregate(a) for a in aggregates],
            where=where,
            group_by=group_by or "",
            purpose=self.purpose if purpose is None else purpose,
        )

    def query(
        self,
        dataset: str,
        aggregates: Sequence[str],
        *,
        where: str = "",
        group_by: str | None = None,
        purpose: str | None = None,
    ) -> QueryResult:
        """Run a joint query; ``aggregates`` like ``["count", "mean:exposure"]``.

        A query that needs approval raises ApprovalMissingError naming its id;
        :meth:`wait` returns its result once approvers have decided.
        """
        request = self._request(dataset, aggregates, where, group_by, purpose)
        return _result(self._call(self._stub.RunQuery, request))

    def explain(
        self,
        dataset: str,
        aggregates: Sequence[str],
        *,
        where: str = "",
        group_by: str | None = None,
        purpose: str | None = None,
    ) -> dict[str, Any]:
        """The dry run: which rules pass or fail, approvals needed, what would be disclosed."""
        request = self._request(dataset, aggregates, where, group_by, purpose)
        reply = self._call(self._stub.ExplainQuery, request)
        return {
            "allowed": reply.allowed,
            "plan_hash": reply.plan_hash,
            **json.loads(reply.report_json),
        }

    def status(self, query_id: str) -> QueryStatus:
        reply = self._call(
            self._stub.GetQueryStatus, gateway_pb2.QueryStatusRequest(query_id=query_id)
        )
        result = _result(reply.result) if reply.state == "released" else None
        return QueryStatus(
            reply.query_id, reply.state, tuple(reply.waiting_for), reply.reason, result
        )

    def wait(self, query_id: str, timeout_s: float = 60.0, poll_s: float = 0.2) -> QueryResult:
        """Block until a query that needed approval is released; raise if it is rejected or fails."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(query_id)
            if status.result is not None:
                return status.result
            if status.state in ("rejected", "failed"):
                raise (PolicyDeniedError if status.state == "rejected" else ProtocolAbortedError)(
                    f"query {query_id} {status.state}: {status.reason}"
                )
            if time.monotonic() > deadline:
                raise DeadlineExceededError(
                    f"query {query_id} is still {status.state}"
                    + (
                        f", waiting for {', '.join(status.waiting_for)}"
                        if status.waiting_for
                        else ""
                    )
                )
            time.sleep(poll_s)


class ApproverClient(ServiceClient):
    """An approver's side: see the queries that wait for you, sign your decision locally.

    The signing key never leaves the approver: the decision is signed here, over
    the plan hash this client recomputed from the plan it was shown.
    """

    def __init__(
        self, pki_dir: str | Path, identity: str, address: str, timeout_s: float = 30.0
    ) -> None:
        layout = load_layout(Path(pki_dir))
        role, _, name = identity.partition("/")
        self.identity = Identity(role, name, layout.trust_domain)
        cert, key = layout.signing_paths(self.identity)
        self._cert, self._key = cert.read_bytes(), load_signing_key(key)
        super().__init__(
            address, tls_from_pki(pki_dir, identity), timeout_s, f"gateway at {address}"
        )
        self._stub = gateway_pb2_grpc.ApprovalServiceStub(self._channel)

    def pending(self) -> list[gateway_pb2.PendingQuery]:
        return list(self._call(self._stub.ListPending, gateway_pb2.ListPendingRequest()).queries)

    def decide(self, query_id: str, decision: str, reason: str) -> str:
        """Approve or reject query ``query_id``; returns its state afterwards."""
        query = next((q for q in self.pending() if q.query_id == query_id), None)
        if query is None:
            raise InvalidQueryError(f"query {query_id} is not waiting for your decision")
        plan = QueryPlan.model_validate_json(query.plan_json)
        if plan.plan_hash != query.plan_hash:
            raise IntegrityError(
                "the gateway's plan does not hash to the plan hash it asks you to sign"
            )
        need = next(n for n in query.needs if str(self.identity) in n.approvers)
        body = ApprovalBody.issue(plan_hash=plan.plan_hash, approver=str(self.identity), decision=decision,
                                  reason=reason, institution=need.institution, now=datetime.now(UTC),
                                  valid_for_hours=need.valid_for_hours)  # fmt: skip
        signed = sign_approval(body, self._key, self._cert)
        request = gateway_pb2.ApprovalDecision(
            query_id=query_id, signed_approval_json=signed.model_dump_json()
        )
        return str(self._call(self._stub.Decide, request).state)
