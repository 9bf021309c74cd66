"""Shared by the policy tests: a small valid policy of bank-a, plans over loans, decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import mpc_gateway
from mpc_gateway.computations.aggregate import (
    Aggregate,
    AggregatePlan,
    AggregateRequest,
    build_plan,
)
from mpc_gateway.pki import Identity
from mpc_gateway.policy import Policy, PolicyDecision, evaluate
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.query.where import parse_where

ROOT = Path(mpc_gateway.__file__).parent.parent
SCHEMA = load_schema(ROOT / "mpc_gateway" / "schemas" / "loans.toml")
EXAMPLE_SCHEMAS = {  # the datasets the example policies share
    name: load_schema(ROOT / "mpc_gateway" / "schemas" / f"{name}.toml")
    for name in ("loans", "loans_dp", "alerts")
}
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALICE = Identity("analyst", "alice")


def policy_data(**dataset: Any) -> dict[str, Any]:
    """A small valid policy of bank-a, with ``dataset`` overriding the rules for loans."""
    loans: dict[str, Any] = {
        "principals": ["analyst/alice", "analyst/bob"],
        "purposes": ["Risk monitoring", "supervisory review"],
        "expires": date(2027, 12, 31),
        "max_queries_per_day": 10,
        "columns": {
            "exposure": {"uses": ["aggregate", "filter"], "aggregates": ["sum", "mean"]},
            "sector": {"uses": ["group_by", "filter"]},
            "rating": {"uses": ["filter"]},
            "days_past_due": {"uses": ["secret_compare"]},
            "lgd": {"uses": []},
        },
        "output": {"min_cell_count": 10},
    }
    loans.update(dataset)
    return {"version": 1, "owner": "bank-a", "datasets": {"loans": loans}}


def make_policy(**dataset: Any) -> Policy:
    return Policy.model_validate(policy_data(**dataset))


def plan(
    *aggs: str,
    where: str = "",
    group_by: str | None = None,
    purpose: str = "risk monitoring",
    analyst: str = "analyst/alice",
    schema: DatasetSchema = SCHEMA,
) -> AggregatePlan:
    spec = AggregateRequest(
        dataset=schema.name,
        aggregates=tuple(
            Aggregate(func=a.partition(":")[0], column=a.partition(":")[2] or None)  # type: ignore[arg-type]
            for a in aggs
        ),
        filter=parse_where(where),
        group_by=group_by,
        purpose=purpose,
    )
    return build_plan(spec, schema, analyst)


def decide(
    query: AggregatePlan,
    policy: Policy | None = None,
    caller: Identity | str = ALICE,
    now: datetime = NOW,
    queries_today: int = 0,
) -> PolicyDecision:
    return evaluate(policy or make_policy(), query, caller, now, queries_today)


def failed(decision: PolicyDecision) -> list[tuple[str, str]]:
    return [(check.rule, check.message) for check in decision.failed]


def only_failure(decision: PolicyDecision) -> tuple[str, str]:
    failures = failed(decision)
    assert len(failures) == 1, failures
    return failures[0]
