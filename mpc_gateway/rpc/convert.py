"""Conversions between protobuf messages and domain objects (both directions)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.models import AGGREGATES, QuerySpec
from mpc_gateway.query.results import Scalar
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn
from mpc_gateway.query.where import parse_where

__all__ = ["spec_from_proto", "value_to_proto", "value_from_proto", "dataset_to_proto"]


def _aggregate_problem(err: ValidationError) -> str:
    for problem in err.errors():
        if problem["loc"][-1:] == ("func",) or "func" in problem["loc"]:
            return f"unsupported aggregate {problem['input']!r}; supported: {', '.join(AGGREGATES)}"
    first = err.errors()[0]
    return f"invalid query field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def spec_from_proto(request: gateway_pb2.QueryRequest) -> QuerySpec:
    if not request.aggregates:
        raise InvalidQueryError("a query needs at least one aggregate, e.g. count")
    try:
        return QuerySpec(
            dataset=request.dataset,
            aggregates=tuple(
                {"func": a.func, "column": a.column or None} for a in request.aggregates
            ),
            filter=parse_where(request.where),
            group_by=request.group_by or None,
            purpose=request.purpose,
        )
    except ValidationError as err:
        raise InvalidQueryError(_aggregate_problem(err)) from None


def value_to_proto(value: Scalar) -> gateway_pb2.Value:
    if value is None:
        return gateway_pb2.Value(null=True)
    if isinstance(value, bool) or isinstance(value, int):
        return gateway_pb2.Value(int_value=int(value))
    if isinstance(value, Decimal):
        return gateway_pb2.Value(decimal_value=str(value))
    return gateway_pb2.Value(float_value=float(value))


def value_from_proto(value: gateway_pb2.Value) -> Scalar:
    kind = value.WhichOneof("kind")
    if kind == "int_value":
        return value.int_value
    if kind == "decimal_value":
        return Decimal(value.decimal_value)
    if kind == "float_value":
        return value.float_value
    return None


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
