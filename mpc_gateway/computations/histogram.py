"""Joint histograms: counts of a numeric column per declared bin, across institutions.

Bins are ``[e_i, e_{i+1})``, the last one closed (numpy's rule); values outside
are not counted. Every node counts its values per bin in one scan, the MPC
program (``histogram:histogram``) adds the counts up and, with a minimum cell
count or a minimum number of institutions in the controls, releases a bin that
fails either as 0 flagged suppressed (secure comparisons per bin). Released
counts are rounded like aggregate counts.

Under differential privacy every node adds a full-scale discrete Gaussian
sample to each of its bin counts (one record lands in at most one bin, so the
vector's l2 sensitivity is 1); the controls then decide on the noisy counts
(an institution is present in a bin when its noisy count reaches a few noise
scales, as for aggregate cells), so every released bit and count is noisy.

Disclosure: the receiver learns the released bin counts; nodes learn the
request, not the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.computations.aggregate_layout import PRESENCE_SCALES
from mpc_gateway.computations.base import (
    Blocks,
    Computation,
    Display,
    LocalData,
    Outcome,
    Plan,
    ProgramCall,
    Request,
    format_value,
)
from mpc_gateway.computations.shared import (
    bits,
    block,
    encode_value,
    numeric_column,
    released_count,
    risk_disclosure,
)
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.policy.declaration import Declaration, RiskUse
from mpc_gateway.privacy import NoisyRelease, calibrate, sample
from mpc_gateway.privacy.noise import TAIL
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import ColumnName, DatasetSchema
from mpc_gateway.query.sql import QueryCursor, Where, ident

__all__ = [
    "HistogramRequest",
    "HistogramPlan",
    "HistogramOutcome",
    "HistogramLayout",
    "Histograms",
    "histogram_layout",
    "local_histogram",
]


class _Bins(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    column: ColumnName
    edges: tuple[Decimal, ...] = Field(min_length=2, max_length=1001)


class HistogramRequest(_Bins, Request):
    """Joint counts per bin ``[e_i, e_{i+1})`` (the last bin closed) of a numeric column."""

    kind: Literal["histogram"] = "histogram"


class HistogramPlan(_Bins, Plan):
    kind: Literal["histogram"] = "histogram"

    def declaration(self) -> Declaration:
        return Declaration(risk=RiskUse(outputs=("histogram",), columns=(self.column,)))

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        controls = self.controls
        what = f"joint counts of {self.column} in {len(self.edges) - 1} bins"
        if controls.min_cell_count > 1 or controls.min_institutions > 1:
            what += (
                f" (a bin below {controls.min_cell_count} values or "
                f"{controls.min_institutions} institutions is reported as withheld)"
            )
        if controls.dp_rho is not None:
            what += (
                ", each with discrete Gaussian noise drawn inside the MPC; the query costs "
                f"ρ {controls.dp_rho} (zCDP) of the privacy budgets"
            )
        return risk_disclosure(self.analyst, what, institutions)


@dataclass(frozen=True)
class HistogramLayout:
    """Encoded edges (strictly increasing), the bit length of the joint counts, the controls.

    ``noise`` is the bins' noisy release under DP (None without).
    """

    column: str
    edges: tuple[int, ...]
    bits: int
    min_count: int = 0  # bins with fewer joint values are released as 0, flagged suppressed
    min_institutions: int = 1
    noise: NoisyRelease | None = None
    round_to: int = 1  # exact counts are rounded to a multiple inside the MPC

    def program_args(self, counts: np.ndarray, noisy: bool = True) -> dict[str, Any]:
        """The MPC inputs of this node's exact counts (its own noise added under DP).

        ``noisy`` False: a helper's zeros, exact (it has no row to protect, and is present
        in no bin).
        """
        if counts.shape != (len(self.edges) - 1,):
            raise InvalidRequestError("local counts must have one entry per bin")
        counts = np.asarray(counts, dtype=object)
        present_from = 1
        if self.noise is not None and noisy:
            counts = counts + sample(self.noise.scale, len(counts))
            present_from = math.ceil(PRESENCE_SCALES * self.noise.scale)
        return {
            "counts": counts,
            "bits": self.bits,
            "min_count": self.min_count,
            "min_institutions": self.min_institutions,
            "presence": np.array([int(c >= present_from) for c in counts], dtype=object),
            "round_to": self.round_to,
        }


def histogram_layout(
    schema: DatasetSchema,
    parties: int,
    column: str,
    edges: Sequence[Decimal | str | int],
    controls: OutputControls | None = None,
) -> HistogramLayout:
    controls = controls or OutputControls()
    encoded = tuple(encode_value(schema, column, e) for e in edges)
    if len(encoded) < 2 or len(encoded) > 1001 or any(a >= b for a, b in zip(encoded, encoded[1:])):
        raise InvalidRequestError("histogram edges: 2..1001 strictly increasing values")
    noise = None
    bound = parties * schema.max_rows_per_node
    if controls.dp_rho is not None:
        noise = calibrate(controls.dp_rho, {"bins": 1})["bins"]
        bound += parties * TAIL * math.ceil(noise.scale)  # every node's noise, signed
    return HistogramLayout(
        column=column,
        edges=encoded,
        bits=bound.bit_length() + 2,
        min_count=controls.min_cell_count,
        min_institutions=controls.min_institutions,
        noise=noise,
        round_to=1 if noise is not None else controls.round_counts_to,  # noise: the client rounds
    )


def local_histogram(
    cursor: QueryCursor,
    schema: DatasetSchema,
    layout: HistogramLayout,
    where: Where | None = None,
    table: str = "data",
) -> np.ndarray:
    """This node's count per bin of ``layout`` (one scan)."""
    numeric_column(schema, layout.column)
    x = ident(layout.column)
    last = len(layout.edges) - 2
    exprs = [
        f"count(*) FILTER (WHERE {x} >= ? AND {x} {'<=' if i == last else '<'} ?)"
        for i in range(last + 1)
    ]
    params: list[Any] = [v for i in range(last + 1) for v in (layout.edges[i], layout.edges[i + 1])]
    sql, where_params = where or ("TRUE", [])
    row = cursor.execute(
        f"SELECT {', '.join(exprs)} FROM {ident(table)} WHERE {sql}", params + where_params
    ).fetchall()[0]  # fetchall: a cursor reused by the node must not keep a pending result
    return np.array([int(v) for v in row], dtype=object)


@dataclass(frozen=True)
class HistogramOutcome(Outcome):
    """Per bin ``(low, high, count)``; count None where the bin was suppressed."""

    kind = "histogram"

    bins: list[tuple[Decimal, Decimal, int | None]] = field(default_factory=list)

    def released(self) -> dict[str, Any]:
        return {"kind": self.kind, "bins": [[str(lo), str(hi), c] for lo, hi, c in self.bins]}

    def withheld(self) -> list[dict[str, Any]]:
        return [{"bin": [str(lo), str(hi)]} for lo, hi, c in self.bins if c is None]

    def records(self) -> list[dict[str, Any]]:
        return [{"low": lo, "high": hi, "count": c} for lo, hi, c in self.bins]

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        bins = [
            {"low": str(lo), "high": str(hi), "count": c, "suppressed": c is None}
            for lo, hi, c in self.bins
        ]
        return {"kind": self.kind, "bins": bins}

    def display(self, request: Request | None = None) -> Display:
        rows = []
        for i, (lo, hi, count) in enumerate(self.bins):
            closing = "]" if i == len(self.bins) - 1 else ")"
            shown = "withheld" if count is None else format_value(count)
            rows.append((f"[{lo:,}, {hi:,}{closing}", shown))
        return Display(("bin", "count"), tuple(rows))


class Histograms(Computation[HistogramRequest, HistogramPlan, HistogramOutcome]):
    """Histograms, as the gateway, the nodes and the receiver use them."""

    kind = "histogram"
    request_type = HistogramRequest
    plan_type = HistogramPlan
    outcome_type = HistogramOutcome
    lane = "long"
    outputs = ("histogram",)

    def layout(self, plan: HistogramPlan, schema: DatasetSchema, parties: int) -> HistogramLayout:
        return histogram_layout(schema, parties, plan.column, plan.edges, plan.controls)

    def noise(self, plan: HistogramPlan, schema: DatasetSchema, parties: int) -> list[NoisyRelease]:
        release = self.layout(plan, schema, parties).noise
        return [] if release is None else [release]

    def check(self, plan: HistogramPlan, schema: DatasetSchema, parties: int) -> None:
        plan.check_schema(schema)
        self.layout(plan, schema, parties)

    def local_inputs(
        self, plan: HistogramPlan, step: dict[str, Any], data: LocalData
    ) -> ProgramCall:
        layout = self.layout(plan, data.schema, data.parties)
        counts = local_histogram(data.cursor, data.schema, layout, data.where)
        return ProgramCall("histogram:histogram", layout.program_args(counts, data.holds_data))

    def decode(
        self, plan: HistogramPlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> HistogramOutcome:
        counts = block(blocks, "counts", len(plan.edges) - 1)
        hidden = bits(blocks.get("suppressed", [0] * len(counts)), "flags")
        edges = list(plan.edges)
        return HistogramOutcome(
            [
                (lo, hi, None if gone else released_count(c, plan.controls))
                for lo, hi, c, gone in zip(edges, edges[1:], counts, hidden)
            ]
        )

    def request_from_proto(
        self, message: gateway_pb2.HistogramJob, common: dict[str, Any]
    ) -> HistogramRequest:
        return HistogramRequest.model_validate(
            {"column": message.column, "edges": list(message.edges), **common}
        )

    def job_message(
        self, column: str = "", edges: Sequence[Decimal | str] = ()
    ) -> gateway_pb2.HistogramJob:
        return gateway_pb2.HistogramJob(column=column, edges=[str(e) for e in edges])
