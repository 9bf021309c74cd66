"""Protobuf <-> domain conversions that no single computation owns (both directions).

A :class:`~mpc_gateway.proto.v1.gateway_pb2.ComputationRequest` carries the
dataset, filter and purpose every computation takes, and one computation's job
message in its ``computation`` oneof; the computation registered under that
name converts its own message. A result carries the query's identity and
timing beside one computation's outcome message.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from mpc_gateway.computations import Released, Request, computation
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.policy import OutputControls
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn
from mpc_gateway.query.where import parse_where

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
    return f"invalid query field {where}: {first['msg']}"


def request_from_proto(message: gateway_pb2.ComputationRequest) -> Request:
    """The request a ComputationRequest carries; InvalidQueryError naming what is wrong."""
    which = message.WhichOneof("computation")
    if which is None:
        raise InvalidQueryError(
            "a request names one computation: aggregate, score, "
            "concentration, quantile or histogram"
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


def result_to_proto(released: Released) -> gateway_pb2.ComputationResult:
    message = gateway_pb2.ComputationResult(
        query_id=released.query_id,
        plan_hash=released.plan_hash,
        dataset=released.dataset,
        sequence=released.sequence,
        rounds=released.rounds,
        timing=gateway_pb2.Timing(
            total_ms=released.total_ms, mpc_ms=released.mpc_ms, local_ms=released.local_ms
        ),
        controls_json=released.controls.model_dump_json(),
    )
    kind = released.outcome.kind
    getattr(message, kind).CopyFrom(computation(kind).outcome_to_proto(released.outcome))
    return message


def result_from_proto(
    message: gateway_pb2.ComputationResult, request: Request | None = None
) -> Released:
    which = message.WhichOneof("outcome")
    if which is None:
        raise InvalidQueryError("the gateway's result carries no outcome")
    controls = json.loads(message.controls_json) if message.controls_json else {}
    return Released(
        query_id=message.query_id,
        plan_hash=message.plan_hash,
        dataset=message.dataset,
        outcome=computation(which).outcome_from_proto(getattr(message, which)),
        sequence=message.sequence,
        rounds=message.rounds,
        total_ms=message.timing.total_ms,
        mpc_ms=message.timing.mpc_ms,
        local_ms=message.timing.local_ms,
        controls=OutputControls.model_validate(controls),
        request=request,
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
