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
values and the weight); the bisection path, hence those values, is known to every
node and to the gateway too (it drives the next round's grid). The weights are not.
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
from mpc_gateway.computations.shared import bits, block, risk_disclosure
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
        gateway_sees = f"the search path it steers, hence the {values}"
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
        layout = self.layout(plan, data.schema, data.parties)
        path = tuple(tuple(int(k) for k in brackets) for brackets in step.get("path", ()))
        search = quantile_search(layout, path)
        if search.done:
            raise IntegrityError("the quantile search has no rounds left")
        counts, totals = local_cumulative_counts(
            data.cursor, plan.column, search.grids(), data.where
        )
        args = layout.program_args(counts, totals, last=search.last_round)
        return ProgramCall("quantile:quantile_round", args)

    def visible(self, plan: QuantilePlan) -> frozenset[str]:
        return frozenset({"bracket"})  # the search path steers the next round

    def run(self, plan: QuantilePlan, execution: Execution) -> Blocks:
        """The search; its path determines the values searched, so they are public blocks.

        Per level: whether it has a value, the value (the lower neighbour when
        interpolated) and, when interpolated, the upper neighbour (the lower one
        again where there is none beyond it, with weight 0).
        """
        search = self.layout(plan, execution.schema, execution.parties).search()
        path: Path = ()
        while not search.done:
            blocks = execution.run_step({"path": [list(b) for b in path]})
            brackets = tuple(block(blocks, "bracket", len(search.targets)))
            search.advance(brackets)
            path = (*path, brackets)
        found = search.results()
        lows = found[:: 2 if plan.interpolation == "linear" else 1]
        public = {
            "found": [int(v is not None) for v in lows],
            "values": [0 if v is None else v for v in lows],
            "rounds": [search.rounds],
        }
        if plan.interpolation == "linear":
            public["upper"] = [
                (lo or 0) if hi is None else hi for lo, hi in zip(found[::2], found[1::2])
            ]
        return public

    def decode(
        self, plan: QuantilePlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> QuantileOutcome:
        layout = self.layout(plan, schema, parties)
        n = len(plan.levels)
        found = bits(block(blocks, "found", n), "flags")
        values = block(blocks, "values", n)
        if plan.interpolation == "linear":
            uppers, weights = block(blocks, "upper", n), block(blocks, "weight", n)
            quantiles = [
                (q, layout.interpolate(f, lo, hi, w) if ok else None)
                for q, f, lo, hi, w, ok in zip(
                    plan.levels, layout.fractions, values, uppers, weights, found
                )
            ]
        else:
            quantiles = [
                (q, layout.decode(v) if ok else None)
                for q, v, ok in zip(plan.levels, values, found)
            ]
        return QuantileOutcome(quantiles, block(blocks, "rounds", 1)[0])

    def request_from_proto(
        self, message: gateway_pb2.QuantileJob, common: dict[str, Any]
    ) -> QuantileRequest:
        fields: dict[str, Any] = {
            f.name: tuple(v) if f.name == "levels" else v for f, v in message.ListFields()
        }
        return QuantileRequest(**fields, **common)

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
