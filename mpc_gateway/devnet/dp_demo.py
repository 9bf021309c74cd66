"""The demo's differential privacy part: noisy results beside the exact ones, a budget spent.

On ``loans_dp`` (the same loan books, shared only under DP) analyst/alice sees
what a query would cost (the dry run), runs noisy queries whose every count and
sum is checked against the exact plaintext answer to lie within the declared
noise, and keeps asking until a budget refuses. The exact answers come from
DuckDB over the pooled rows, for the demo only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import Released
from mpc_gateway.computations.aggregate_result import AggregateOutcome, Scalar
from mpc_gateway.devnet.demo import ExampleQuery, plaintext_result
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.errors import BudgetExhaustedError
from mpc_gateway.query.schema import load_schema

__all__ = [
    "DATASET",
    "DP_QUERIES",
    "SIGMAS",
    "NoisyCheck",
    "BudgetRun",
    "run_noisy",
    "spend_until_refused",
]

DATASET = "loans_dp"
DP_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "Loans and exposure by sector, under DP",
        ("count", "sum:exposure", "mean:exposure"),
        group_by="sector",
        dataset=DATASET,
    ),
    ExampleQuery(
        "Default rate by rating, under DP",
        ("count", "sum:defaulted", "mean:defaulted"),
        group_by="rating",
        dataset=DATASET,
    ),
)
SIGMAS = 6
"""A released count or sum is checked to lie within this many standard deviations of the
exact value (a false alarm has probability ~2e-9 per value)."""


@dataclass(frozen=True)
class NoisyCheck:
    """One query under DP: what it released, the exact answer, and the noise it declared."""

    query: ExampleQuery
    released: Released
    exact: list[tuple[str, tuple[Scalar, ...]]]
    cost: dict[str, Any]  # the dry run's privacy section
    institutions: int  # the nodes that add noise (a helper holds no rows and adds none)

    @property
    def outcome(self) -> AggregateOutcome:
        outcome = self.released.outcome
        assert isinstance(outcome, AggregateOutcome)
        return outcome

    def spread(self, label: str) -> float | None:
        """The standard deviation of a released count or sum (every institution's noise summed)."""
        scales = {n["release"]: float(n["scale"]) for n in self.cost["noise"]}
        scale = scales.get(label)
        return None if scale is None else scale * math.sqrt(self.institutions)

    def within_noise(self) -> list[tuple[str, str, float, float]]:
        """Every released count and sum: (group, column, |noisy - exact|, allowed)."""
        checked = []
        exact = dict(self.exact)
        for group, values in self.outcome.rows:
            if group in self.outcome.suppressed:
                continue
            for column, value, truth in zip(self.outcome.columns, values, exact[group]):
                spread = self.spread(column)
                if spread is None or value is None:
                    continue  # means and deviations are functions of these
                gap = abs(float(value) - float(truth or 0))
                checked.append((group, column, gap, SIGMAS * spread))
        return checked

    @property
    def matches(self) -> bool:
        within = self.within_noise()
        return bool(within) and all(gap <= allowed for _, _, gap, allowed in within)

    def as_json(self) -> dict[str, Any]:
        key = self.query.group_by or "group"
        columns = self.outcome.columns

        def rows(table: Sequence[tuple[str, tuple[Scalar, ...]]]) -> list[dict[str, Any]]:
            return [
                {key: g, **{c: _jsonable(v) for c, v in zip(columns, vals)}} for g, vals in table
            ]

        return {
            "title": self.query.title,
            "query": self.query.as_dict(),
            "noisy": rows(self.outcome.rows),
            "exact": rows(self.exact),
            "suppressed": {g: list(r) for g, r in self.outcome.suppressed.items()},
            "cost": self.cost,
            "within_noise": [
                {key: g, "column": c, "gap": gap, "allowed": allowed}
                for g, c, gap, allowed in self.within_noise()
            ],
            "match": self.matches,
            "query_id": self.released.query_id,
        }


def _jsonable(value: Scalar) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def run_noisy(client: GatewayClient, files: ConsortiumFiles, query: ExampleQuery) -> NoisyCheck:
    """The dry run's cost, then the query, beside its exact answer over the pooled rows."""
    report = client.explain(
        "aggregate",
        query.dataset,
        where=query.where,
        aggregates=query.aggregates,
        group_by=query.group_by,
    )
    released = client.query(
        query.dataset, query.aggregates, where=query.where, group_by=query.group_by
    )
    outcome = released.outcome
    assert isinstance(outcome, AggregateOutcome)
    columns = dict(load_schema(schema_path(query.dataset)).columns)
    groups = [g for g, _ in outcome.rows]
    exact = plaintext_result(files, query, groups, columns)
    return NoisyCheck(query, released, exact, report["privacy"], len(files.institutions))


@dataclass(frozen=True)
class BudgetRun:
    """Queries run until a privacy budget refused one, with the budgets before and after."""

    before: list[dict[str, str]]
    after: list[dict[str, str]]
    ran: int
    refusal: BudgetExhaustedError | None

    def as_json(self) -> dict[str, Any]:
        refusal = self.refusal
        return {
            "budget_before": self.before,
            "budget_after": self.after,
            "queries_until_refused": self.ran,
            "refusal": None
            if refusal is None
            else {"rule": refusal.rule, "message": refusal.public_message},
        }


def spend_until_refused(client: GatewayClient, limit: int = 100) -> BudgetRun:
    """Ask one noisy count after another until a budget refuses (at most ``limit``)."""
    before = client.budget(DATASET)
    refusal, ran = None, 0
    while ran < limit:
        try:
            client.query(DATASET, ["count"])
        except BudgetExhaustedError as err:
            refusal = err
            break
        ran += 1
    return BudgetRun(before, client.budget(DATASET), ran, refusal)
