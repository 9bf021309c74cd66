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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.pki import Identity, load_layout, tls_credentials_bytes
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc
from mpc_gateway.query.results import Scalar, records
from mpc_gateway.rpc.convert import value_from_proto
from mpc_gateway.rpc.errors import error_from_rpc
from mpc_gateway.rpc.server import TlsMaterial, client_channel

__all__ = ["GatewayClient", "QueryResult", "parse_aggregate", "tls_from_pki"]


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
    suppressed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> rules failed

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


class GatewayClient:
    def __init__(self, address: str, tls: TlsMaterial, timeout_s: float = 120.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = client_channel(address, tls)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    @classmethod
    def from_pki(
        cls, pki_dir: str | Path, identity: str, address: str, **kwargs: Any
    ) -> GatewayClient:
        """A client using ``identity`` (``"role/name"``) from a consortium PKI directory."""
        return cls(address, tls_from_pki(pki_dir, identity), **kwargs)

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise error_from_rpc(err, f"gateway at {self.address}") from None

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

    def query(
        self,
        dataset: str,
        aggregates: Sequence[str],
        *,
        where: str = "",
        group_by: str | None = None,
        purpose: str = "",
    ) -> QueryResult:
        """Run a joint query; ``aggregates`` like ``["count", "mean:exposure"]``."""
        request = gateway_pb2.QueryRequest(
            dataset=dataset,
            aggregates=[parse_aggregate(a) for a in aggregates],
            where=where,
            group_by=group_by or "",
            purpose=purpose,
        )
        reply = self._call(self._stub.RunQuery, request)
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
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
