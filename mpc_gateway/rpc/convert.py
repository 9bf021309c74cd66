"""Protobuf <-> domain conversions that no single computation owns (both directions).

A :class:`~mpc_gateway.proto.v1.gateway_pb2.ComputationRequest` carries the
dataset, filter and purpose every computation takes, and one computation's job
message in its ``computation`` oneof; the computation registered under that
name converts its own message. A result carries the query's identity and
timing beside the result sealed to its receiver (:mod:`mpc_gateway.orders.release`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.computations import Plan, Request, computation, plan_from_json
from mpc_gateway.errors import GatewayError, IntegrityError, InvalidQueryError
from mpc_gateway.lanes import Lane, is_lane
from mpc_gateway.orders.release import Relayed, SealedShare
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn
from mpc_gateway.query.where import parse_where
from mpc_gateway.sql import read_statement

__all__ = [
    "request_from_proto",
    "result_to_proto",
    "result_from_proto",
    "dataset_to_proto",
    "dataset_from_proto",
]


def _problem(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "missing":  # an empty repeated field is not sent: it is missing too
        return f"invalid query field {where}: required, and missing or empty"
    return f"invalid query field {where}: {first['msg']}"


def _statement_request(
    message: gateway_pb2.ComputationRequest, schemas: Mapping[str, DatasetSchema] | None
) -> Request:
    if message.WhichOneof("computation") is not None or message.dataset or message.where:
        raise InvalidQueryError(
            "a request is either a SQL statement or a dataset, filter and computation, not both"
        )
    return read_statement(message.sql, schemas, message.purpose).request


def request_from_proto(
    message: gateway_pb2.ComputationRequest, schemas: Mapping[str, DatasetSchema] | None = None
) -> Request:
    """The request a ComputationRequest carries; InvalidQueryError naming what is wrong.

    A SQL statement (``sql``) is read with ``schemas`` (where given) to refuse unknown
    datasets and columns at their position in the statement.
    """
    if message.sql:
        return _statement_request(message, schemas)
    which = message.WhichOneof("computation")
    if which is None:
        names = [f.name for f in message.DESCRIPTOR.oneofs_by_name["computation"].fields]
        raise InvalidQueryError(
            f"a request names one computation: {', '.join(names[:-1])} or {names[-1]}"
        )
    common = {
        "dataset": message.dataset,
        "purpose": message.purpose,
        "filter": parse_where(message.where),
    }
    try:
        request: Request = computation(which).request_from_proto(getattr(message, which), common)
    except ValidationError as err:
        raise InvalidQueryError(_problem(err)) from None
    return request


def result_to_proto(relayed: Relayed) -> gateway_pb2.ComputationResult:
    release = relayed.release
    return gateway_pb2.ComputationResult(
        query_id=relayed.query_id,
        plan_hash=relayed.plan.plan_hash,
        dataset=relayed.plan.dataset,
        sequence=relayed.sequence,
        lane=relayed.lane,
        rounds=relayed.rounds,
        timing=gateway_pb2.Timing(
            total_ms=relayed.total_ms,
            mpc_ms=relayed.mpc_ms,
            local_ms=relayed.local_ms,
            release_ms=relayed.release_ms,
        ),
        controls_json=relayed.plan.controls.model_dump_json(),
        sealed=gateway_pb2.SealedResult(
            plan_json=relayed.plan.canonical().decode(),
            schema_json=relayed.schema.model_dump_json(),
            parties=relayed.parties,
            shares=[
                gateway_pb2.NodeShares(node=s.node, party_index=s.party, ciphertext=s.ciphertext)
                for s in relayed.shares
            ],
            public_json=json.dumps(relayed.public),
            checkpoint=release.checkpoint,
            release_entry=release.entry,
            release_index=release.index,
            inclusion=release.proof,
            node_certificates=[pem.decode() for pem in relayed.signing_certificates],
        ),
    )


def _lane(name: str) -> Lane:
    if not name:
        return "short"  # a gateway from before lanes: it had one sequence
    if not is_lane(name):
        raise IntegrityError(f"the gateway's result names no MPC lane: {name[:40]!r}")
    return name


@lru_cache(maxsize=64)
def _plan(text: str) -> Plan:
    """A relayed plan, parsed once per text (a client asks the same queries again and again)."""
    return plan_from_json(text)


@lru_cache(maxsize=64)
def _schema(text: str) -> DatasetSchema:
    """A relayed schema, parsed once per text (it comes with every result of its dataset)."""
    return DatasetSchema.model_validate_json(text)


def result_from_proto(message: gateway_pb2.ComputationResult) -> Relayed:
    """The relayed result a message carries (the receiver then checks and opens it)."""
    sealed = message.sealed
    try:
        plan = _plan(sealed.plan_json)
        schema = _schema(sealed.schema_json)
        public = json.loads(sealed.public_json or "{}")
        if not isinstance(public, dict) or not all(
            isinstance(v, list) and all(isinstance(x, int) for x in v) for v in public.values()
        ):
            raise ValueError("public blocks must be lists of integers")
    except (ValueError, ValidationError, GatewayError) as err:
        raise IntegrityError(f"the gateway's result is malformed: {err}") from None
    if plan.plan_hash != message.plan_hash:
        raise IntegrityError("the gateway's result carries a plan that is not its plan hash's")
    return Relayed(
        query_id=message.query_id,
        plan=plan,
        schema=schema,
        parties=sealed.parties,
        public=public,
        shares=tuple(SealedShare(s.node, s.party_index, s.ciphertext) for s in sealed.shares),
        release=DispatchEvidence(
            entry=sealed.release_entry,
            index=sealed.release_index,
            proof=tuple(sealed.inclusion),
            checkpoint=sealed.checkpoint,
        ),
        signing_certificates=tuple(pem.encode() for pem in sealed.node_certificates),
        sequence=message.sequence,
        lane=_lane(message.lane),
        rounds=message.rounds,
        total_ms=message.timing.total_ms,
        mpc_ms=message.timing.mpc_ms,
        local_ms=message.timing.local_ms,
        release_ms=message.timing.release_ms,
    )


def dataset_to_proto(schema: DatasetSchema, nodes: list[str]) -> gateway_pb2.DatasetInfo:
    columns = []
    for name, column in schema.columns.items():
        if isinstance(column, CategoricalColumn):
            info = gateway_pb2.ColumnInfo(
                name=name, kind=column.kind, domain=column.domain, description=column.description
            )
        elif isinstance(column, KeyColumn):
            info = gateway_pb2.ColumnInfo(
                name=name, kind=column.kind, description=column.description
            )
        else:
            info = gateway_pb2.ColumnInfo(
                name=name,
                kind=column.kind,
                scale=column.scale,
                min=str(column.min),
                max=str(column.max),
                description=column.description,
            )
        columns.append(info)
    return gateway_pb2.DatasetInfo(
        name=schema.name,
        description=schema.description,
        columns=columns,
        schema_hash=schema.schema_hash,
        nodes=nodes,
    )


def _column_details(column: gateway_pb2.ColumnInfo) -> dict[str, Any]:
    if column.kind == "categorical":
        return {"domain": list(column.domain)}
    if column.kind == "numeric":
        return {"scale": column.scale, "min": column.min, "max": column.max}
    return {}


def dataset_from_proto(info: gateway_pb2.DatasetInfo) -> dict[str, Any]:
    """A dataset's public description as plain data."""
    return {
        "name": info.name,
        "description": info.description,
        "schema_hash": info.schema_hash,
        "nodes": list(info.nodes),
        "columns": [
            {"name": c.name, "kind": c.kind, "description": c.description, **_column_details(c)}
            for c in info.columns
        ],
    }
