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
from mpc_gateway.risk import ScoringModel, SealedWeights
from mpc_gateway.risk.jobs import RiskOutcome, RiskPlan
from mpc_gateway.rpc.client import ServiceClient
from mpc_gateway.rpc.convert import value_from_proto
from mpc_gateway.rpc.risk_convert import outcome_from_proto
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
    risk_result: RiskResult | None = None


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


@dataclass(frozen=True)
class RiskResult:
    """A released risk result: only what the risk query declared (see RiskOutcome's fields)."""

    query_id: str
    plan_hash: str
    model_id: str
    outcome: RiskOutcome
    sequence: int
    total_ms: float
    mpc_ms: float
    local_ms: float
    controls: dict[str, Any] = field(default_factory=dict)


def _risk_result(reply: gateway_pb2.RiskResult) -> RiskResult:
    return RiskResult(
        query_id=reply.query_id, plan_hash=reply.plan_hash, model_id=reply.model_id,
        outcome=outcome_from_proto(reply), sequence=reply.sequence, total_ms=reply.timing.total_ms,
        mpc_ms=reply.timing.mpc_ms, local_ms=reply.timing.local_ms,
        controls=json.loads(reply.controls_json) if reply.controls_json else {},
    )  # fmt: skip


def _plan_from_json(text: str) -> QueryPlan | RiskPlan:
    data = json.loads(text)
    kind = RiskPlan if isinstance(data, dict) and data.get("kind") == "risk" else QueryPlan
    return kind.model_validate(data)


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

    # --- risk: scoring models and risk queries ---------------------------------------------

    def register_model(self, model: ScoringModel, sealed: SealedWeights | None = None) -> str:
        """Register a scoring model (owner: this client's identity); returns its model id."""
        request = gateway_pb2.RegisterModelRequest(
            model_json=model.model_dump_json(),
            sealed_weights_json=sealed.model_dump_json() if sealed is not None else "",
        )
        return str(self._call(self._stub.RegisterModel, request).model_id)

    def models(self) -> list[ScoringModel]:
        reply = self._call(self._stub.ListModels, gateway_pb2.ListModelsRequest())
        return [ScoringModel.model_validate_json(m.model_json) for m in reply.models]

    def _risk_request(self, dataset: str, where: str, purpose: str | None,
                      **job: Any) -> gateway_pb2.RiskQueryRequest:  # fmt: skip
        return gateway_pb2.RiskQueryRequest(
            dataset=dataset,
            where=where,
            purpose=self.purpose if purpose is None else purpose,
            **job,
        )

    def risk(self, dataset: str, *, where: str = "", purpose: str | None = None,
             explain: bool = False, **job: Any) -> RiskResult | dict[str, Any]:  # fmt: skip
        """Run (or with ``explain``, dry-run) one risk query.

        ``job`` is one keyword naming the job with its proto message, e.g.
        ``score=gateway_pb2.ScoreJob(model_id=..., keys=[...])``; :meth:`score`,
        :meth:`concentration`, :meth:`quantiles` and :meth:`histogram` build them.
        """
        request = self._risk_request(dataset, where, purpose, **job)
        if explain:
            reply = self._call(self._stub.ExplainRiskQuery, request)
            return {"allowed": reply.allowed, "plan_hash": reply.plan_hash,
                    **json.loads(reply.report_json)}  # fmt: skip
        return _risk_result(self._call(self._stub.RunRiskQuery, request))

    def score(self, dataset: str, model_id: str, keys: Sequence[str], *, key_column: str = "",
              where: str = "", purpose: str | None = None) -> RiskResult:  # fmt: skip
        """Score ``keys`` with a registered model: its declared output (scores, decisions or count)."""
        job = gateway_pb2.ScoreJob(model_id=model_id, keys=keys, key_column=key_column)
        return self._run_risk(dataset, where, purpose, score=job)

    def concentration(self, dataset: str, *, keys: Sequence[str] = (), group_by: str = "",
                      limit: str = "", hhi: str = "", hhi_limit: int | None = None,
                      column: str = "", where: str = "", purpose: str | None = None) -> RiskResult:  # fmt: skip
        """Joint exposure per unit (``keys`` or ``group_by``): flags above ``limit`` and/or the HHI."""
        job = gateway_pb2.ConcentrationJob(keys=keys, group_by=group_by, limit=limit, hhi=hhi,
                                           hhi_limit=hhi_limit, column=column)  # fmt: skip
        return self._run_risk(dataset, where, purpose, concentration=job)

    def quantiles(self, dataset: str, column: str, levels: Sequence[str], *, grid_size: int = 0,
                  where: str = "", purpose: str | None = None) -> RiskResult:  # fmt: skip
        """Exact joint quantiles of ``column`` at ``levels`` (e.g. ``["0.5", "0.99"]``)."""
        job = gateway_pb2.QuantileJob(
            column=column, levels=[str(q) for q in levels], grid_size=grid_size
        )
        return self._run_risk(dataset, where, purpose, quantiles=job)

    def histogram(self, dataset: str, column: str, edges: Sequence[str], *, where: str = "",
                  purpose: str | None = None) -> RiskResult:  # fmt: skip
        """Joint counts of ``column`` per bin between ``edges``."""
        job = gateway_pb2.HistogramJob(column=column, edges=[str(e) for e in edges])
        return self._run_risk(dataset, where, purpose, histogram=job)

    def _run_risk(self, dataset: str, where: str, purpose: str | None, **job: Any) -> RiskResult:
        result = self.risk(dataset, where=where, purpose=purpose, **job)
        assert isinstance(result, RiskResult)
        return result

    def status(self, query_id: str) -> QueryStatus:
        reply = self._call(
            self._stub.GetQueryStatus, gateway_pb2.QueryStatusRequest(query_id=query_id)
        )
        released = reply.state == "released"
        result = _result(reply.result) if released and reply.HasField("result") else None
        risk = (
            _risk_result(reply.risk_result) if released and reply.HasField("risk_result") else None
        )
        return QueryStatus(
            reply.query_id, reply.state, tuple(reply.waiting_for), reply.reason, result, risk
        )

    def wait(
        self, query_id: str, timeout_s: float = 60.0, poll_s: float = 0.2
    ) -> QueryResult | RiskResult:
        """Block until a query that needed approval is released; raise if it is rejected or fails."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(query_id)
            if status.result is not None or status.risk_result is not None:
                return status.result or status.risk_result  # type: ignore[return-value]
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
        plan = _plan_from_json(query.plan_json)
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
