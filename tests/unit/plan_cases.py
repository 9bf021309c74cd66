"""Shared by the plan and layout tests: the packaged loans schema, and queries and plans on it."""

from __future__ import annotations

from pathlib import Path

import pytest

import mpc_gateway
from mpc_gateway.computations.aggregate import (
    Aggregate,
    AggregatePlan,
    AggregateRequest,
    build_plan,
)
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.query.where import parse_where

LOANS_TOML = Path(mpc_gateway.__file__).parent / "schemas" / "loans.toml"


@pytest.fixture(scope="module")
def schema() -> DatasetSchema:
    return load_schema(LOANS_TOML)


def agg(text: str) -> Aggregate:
    func, _, column = text.partition(":")
    return Aggregate(func=func, column=column or None)  # type: ignore[arg-type]


def spec(
    *aggs: str, where: str = "", group_by: str | None = None, purpose: str = ""
) -> AggregateRequest:
    return AggregateRequest(
        dataset="loans",
        aggregates=tuple(agg(a) for a in aggs),
        filter=parse_where(where),
        group_by=group_by,
        purpose=purpose,
    )


def plan(schema: DatasetSchema, *aggs: str, analyst: str = "ana", **kw: str) -> AggregatePlan:
    return build_plan(spec(*aggs, **kw), schema, analyst)
