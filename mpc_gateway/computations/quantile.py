"""Exact joint quantiles of a numeric column, at its declared precision.

The driver (the gateway) runs the batched secure search of
:mod:`~mpc_gateway.computations.quantile_search`: one MPC step per round, each
releasing only the bracket indices of the round. Every order carries the
brackets released so far (the step's ``path``), and each node replays that
path to compute the round's grid itself, so the driver cannot choose grid
points to probe the data. With ``min_cell_count`` in the controls, a quantile
over fewer joint values is suppressed inside the MPC (as if there were none);
with ``min_institutions``, so is one whose values come from fewer institutions.
A quantile is a single value of the column, so it cannot be released under
differential privacy (the plan declares that), and it declares its levels: a
level near 0 or 1 is the minimum or maximum, which policies may forbid.

``interpolation="linear"`` asks ``PERCENTILE_CONT``'s quantile instead of
``PERCENTILE_DISC``'s: two searches per level find the neighbouring joint values,
and the last round seals the interpolation weight to the receiver, who
interpolates exactly (see :mod:`~mpc_gateway.computations.quantile_search`).

Disclosure: the receiver learns the quantiles (interpolated: both neighbouring
values and the weight), sealed; the bisection path, hence those values, is known
to every node too (each derives the next round's grid from it: the brackets are
opened to the nodes only). The gateway learns that the rounds ran, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.computations.base import (
    Blocks,
    Computation,
    Display,
    Execution,
    LocalData,
    Outcome,
    Plan,
    ProgramCall,
    Request,
    format_value,
)
from mpc_gateway.computations.quantile_search import (
    Interpolation,
    QuantileLayout,
    QuantileSearch,
    local_cumulative_counts,
    quantile_layout,
)
from mpc_gateway.computations.shared import bits, block, fields_set, risk_disclosure
from mpc_gateway.errors import IntegrityError
from mpc_gateway.policy.declaration import Declaration, RiskUse
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import ColumnName, DatasetSchema

__all__ = ["QuantileRequest", "QuantilePlan", "QuantileOutcome", "Quantiles", "quantile_search"]

Path = tuple[tuple[int, ...], ...]


class _Levels(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    column: ColumnName
    levels: tuple[Decimal, ...] = Field(min_length=1, max_length=64)
    grid_size: int = Field(default=64, ge=2, le=4096)
    interpolation: Interpolation = "discrete"


class QuantileRequest(_Levels, Request):
    """Exact joint quantiles of a numeric column at ``levels`` in (0, 1]."""

    kind: Literal["quantile"] = "quantile"


class QuantilePlan(_Levels, Plan):
    kind: Literal["quantile"] = "quantile"

    def declaration(self) -> Declaration:
        risk = RiskUse(outputs=("quantile",), columns=(self.column,), levels=self.levels)
        blocker = f"quantiles of {self.column!r} are single values, which noise cannot protect"
        return Declaration(risk=risk, dp_blocker=blocker)

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        levels = ", ".join(str(q) for q in self.levels)
        what = f"the exact joint quantiles {levels} of {self.column}"
        if self.interpolation == "linear":
            what += " interpolated between the two neighbouring values (each also learnt)"
        minimums = []
        if self.controls.min_cell_count > 1:
            minimums.append(f"{self.controls.min_cell_count} values")
        if self.controls.min_institutions > 1:
            minimums.append(f"values from {self.controls.min_institutions} institutions")
        if minimums:
            what += f" (suppressed below {' or '.join(minimums)})"
        values = "neighbouring values" if self.interpolation == "linear" else "quantiles"
        nodes_see = (
            f"the request, including any entity keys, and the search path, hence the {values}"
        )
        gateway_sees = "that each round of the search ran: the nodes steer it"
        return risk_disclosure(self.analyst, what, institutions, nodes_see, gateway_sees)


def quantile_search(layout: QuantileLayout, path: Path) -> QuantileSearch:
    """The search after the rounds in ``path`` (public: every node replays it)."""
    search = layout.search()
    if len(path) > search.rounds:
        raise IntegrityError("the quantile path is longer than the search")
    for brackets in path:
        search.advance(list(brackets))
    return search


@dataclass(frozen=True)
class QuantileOutcome(Outcome):
    """The quantiles, each None where suppressed (too few values or institutions, or none)."""

    kind = "quantile"

    quantiles: list[tuple[Decimal, Decimal | None]] = field(default_factory=list)
    rounds: int = 1

    def released(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "quantiles": [[str(q), None if v is None else str(v)] for q, v in self.quantiles],
        }

    def withheld(self) -> list[dict[str, Any]]:
        return [{"quantile": str(q)} for q, v in self.quantiles if v is None]

    def records(self) -> list[dict[str, Any]]:
        return [{"level": q, "value": v} for q, v in self.quantiles]

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        quantiles = [
            {"level": str(q), "value": None if v is None else str(v), "suppressed": v is None}
            for q, v in self.quantiles
        ]
        return {"kind": self.kind, "rounds": self.rounds, "quantiles": quantiles}

    def display(self, request: Request | None = None) -> Display:
        rows = tuple(
            (
                str(q),
                "suppressed (too few values or institutions)" if v is None else format_value(v),
            )
            for q, v in self.quantiles
        )
        return Display(("level", "quantile"), rows, about=f"{self.rounds} rounds")


class Quantiles(Computation[QuantileRequest, QuantilePlan, QuantileOutcome]):
    """Quantiles, as the gateway, the nodes and the receiver use them."""

    kind = "quantile"
    request_type = QuantileRequest
    plan_type = QuantilePlan
    outcome_type = QuantileOutcome
    lane = "long"
    outputs = ("quantile",)

    def layout(self, plan: QuantilePlan, schema: DatasetSchema, parties: int) -> QuantileLayout:
        return quantile_layout(
            schema,
            parties,
            plan.column,
            plan.levels,
            plan.grid_size,
            min_count=plan.controls.min_cell_count,
            min_institutions=plan.controls.min_institutions,
            interpolation=plan.interpolation,
        )

    def check(self, plan: QuantilePlan, schema: DatasetSchema, parties: int) -> None:
        plan.check_schema(schema)
        self.layout(plan, schema, parties)

    def steps(self, plan: QuantilePlan, schema: DatasetSchema, parties: int) -> int:
        return self.layout(plan, schema, parties).search().rounds

    def local_inputs(
        self, plan: QuantilePlan, step: dict[str, Any], data: LocalData
    ) -> ProgramCall:
        """The round's counts at grid points this node derives from the path it opened."""
        layout = self.layout(plan, data.schema, data.parties)
        path = tuple(tuple(int(k) for k in opened["bracket"]) for opened in data.opened)
        search = quantile_search(layout, path)
        if search.done:
            raise IntegrityError("the quantile search has no rounds left")
        grids = search.grids()
        counts, totals = local_cumulative_counts(data.cursor, plan.column, grids, data.where)
        args = layout.program_args(counts, totals, grids if search.last_round else ())
        return ProgramCall("quantile:quantile_round", args)

    def run(self, plan: QuantilePlan, execution: Execution) -> Blocks:
        """Every round, in order: the nodes steer the search, the driver only counts rounds."""
        rounds = self.steps(plan, execution.schema, execution.parties)
        for number in range(rounds):
            execution.run_step({"round": number})
        return {"rounds": [rounds]}

    def decode(
        self, plan: QuantilePlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> QuantileOutcome:
        """Per level its value; interpolated, from both neighbours (none beyond: weight 0)."""
        layout = self.layout(plan, schema, parties)
        searches = len(layout.targets)
        found = bits(block(blocks, "found", searches), "flags")
        values = block(blocks, "value", searches)
        if plan.interpolation == "discrete":
            quantiles = [
                (q, layout.decode(v) if ok else None)
                for q, v, ok in zip(plan.levels, values, found)
            ]
            return QuantileOutcome(quantiles, block(blocks, "rounds", 1)[0])
        weights = block(blocks, "weight", len(plan.levels))
        quantiles = []
        for i, (q, f, w) in enumerate(zip(plan.levels, layout.fractions, weights)):
            low, high = values[2 * i], values[2 * i + 1] if found[2 * i + 1] else values[2 * i]
            quantiles.append((q, layout.interpolate(f, low, high, w) if found[2 * i] else None))
        return QuantileOutcome(quantiles, block(blocks, "rounds", 1)[0])

    def request_from_proto(
        self, message: gateway_pb2.QuantileJob, common: dict[str, Any]
    ) -> QuantileRequest:
        return QuantileRequest(**fields_set(message), **common)

    def job_message(
        self,
        column: str = "",
        levels: Sequence[Decimal | str] = (),
        grid_size: int | None = None,
        interpolation: str = "",
    ) -> gateway_pb2.QuantileJob:
        return gateway_pb2.QuantileJob(
            column=column,
            levels=[str(q) for q in levels],
            grid_size=grid_size or 0,
            interpolation=interpolation,
        )
