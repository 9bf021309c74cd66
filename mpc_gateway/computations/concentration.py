"""Concentration across institutions: large-exposure flags and the Herfindahl-Hirschman index.

For n disjoint units (the counterparties of a batch of distinct LEIs, or the
values of a categorical column such as the sectors) with joint exposures s_i,
the receiver gets the flags ``s_i > limit`` and the HHI as the two integers
``(sum s_i**2, (sum s_i)**2)`` (``hhi="fraction"``), or only the bit
``HHI > hhi_limit`` (``hhi="flag"``, HHI in points 0..10,000). The joint
exposures themselves are never opened (MPC program ``concentration:concentration``).
Over a batch of keys, anything is released only if at least
``controls.min_entities`` of the counterparties are known to the institutions
(decided inside the MPC, :mod:`~mpc_gateway.computations.known_entities`).
No output is differentially private: one loan can flip a flag and move the HHI
without bound, so every plan declares a ``dp_blocker``.

The layout (shape, bounds, bit lengths) and a node's local sums are in
:mod:`~mpc_gateway.computations.concentration_layout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
)
from mpc_gateway.computations.concentration_layout import (
    ConcentrationLayout,
    Hhi,
    concentration_layout,
    local_group_exposures,
)
from mpc_gateway.computations.features import local_entity_features, local_presence
from mpc_gateway.computations.known_entities import ENOUGH_KNOWN, KnownEntities, known_entities
from mpc_gateway.computations.shared import (
    DEFAULT_KEY_COLUMN,
    Keys,
    bits,
    block,
    check_key_column,
    fields_set,
    risk_disclosure,
    without_keys,
)
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.policy.declaration import ColumnUse, Declaration, EntityBatch, RiskUse
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import CategoricalColumn, ColumnName, DatasetSchema

__all__ = [
    "ConcentrationRequest",
    "ConcentrationPlan",
    "ConcentrationOutcome",
    "Concentration",
    "hhi_text",
]


class _Job(BaseModel):
    """What a concentration request and its plan both say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: Keys | None = None
    key_column: ColumnName = DEFAULT_KEY_COLUMN
    group_by: ColumnName | None = None
    column: ColumnName = "exposure"
    limit: Decimal | None = None
    hhi: Hhi = "fraction"
    hhi_limit: int | None = Field(default=None, ge=0, le=10000)

    @model_validator(mode="after")
    def _units(self) -> Self:
        if (self.keys is None) == (self.group_by is None):
            raise ValueError("a concentration job has either entity keys or a group_by column")
        if self.keys is not None and len(set(self.keys)) != len(self.keys):
            raise ValueError("concentration units must be distinct: a key is listed twice")
        if (self.hhi == "flag") != (self.hhi_limit is not None):
            raise ValueError("hhi='flag' and hhi_limit (HHI points, 0..10000) go together")
        return self

    def audit_view(self) -> dict[str, Any]:
        return without_keys(self.model_dump(mode="json"))


class ConcentrationRequest(_Job, Request):
    """Joint exposure per unit: distinct entity keys, or the values of a categorical column."""

    kind: Literal["concentration"] = "concentration"


class ConcentrationPlan(_Job, Plan):
    kind: Literal["concentration"] = "concentration"

    @property
    def outputs(self) -> tuple[str, ...]:
        flags = ("over_limit",) if self.limit is not None else ()
        return flags + {"none": (), "fraction": ("hhi",), "flag": ("hhi_flag",)}[self.hhi]

    def declaration(self) -> Declaration:
        uses = (ColumnUse(self.group_by, "group_by"),) if self.group_by is not None else ()
        batch = None if self.keys is None else EntityBatch(self.key_column, len(set(self.keys)))
        blocker = (
            f"{', '.join(self.outputs)} release flags or an index that one loan can change "
            "without bound, which noise cannot protect"
        )
        return Declaration(
            uses, RiskUse(self.outputs, columns=(self.column,), batch=batch), dp_blocker=blocker
        )

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        units = f"{len(self.keys)} counterparties" if self.keys else f"each {self.group_by}"
        what = f"{' and '.join(self.outputs)} over the joint {self.column} of {units}"
        gate = self.known_entities(len(institutions))
        if gate is not None:
            what += f", {gate.describe()}"
        return risk_disclosure(self.analyst, what, institutions)

    def known_entities(self, parties: int) -> KnownEntities | None:
        """The minimum-batch check over the counterparties (None for categorical units)."""
        return None if self.keys is None else known_entities(self.keys, self.controls, parties)


def hhi_text(points: Fraction) -> str:
    """HHI points as a person reads them: six decimals."""
    return str(round(Decimal(points.numerator) / Decimal(points.denominator), 6))


@dataclass(frozen=True)
class ConcentrationOutcome(Outcome):
    """Flags per unit and/or the HHI, as the plan declares."""

    kind = "concentration"

    units: list[str] = field(default_factory=list)
    over_limit: list[bool] = field(default_factory=list)
    hhi: Fraction | None = None  # points, 0..10000; None: not released or no exposure
    hhi_over_limit: bool | None = None

    def released(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "units": self.units,
            "over_limit": self.over_limit,
            "hhi": None if self.hhi is None else str(self.hhi),
            "hhi_over_limit": self.hhi_over_limit,
        }

    def withheld(self) -> list[dict[str, Any]]:
        return []

    def records(self) -> list[dict[str, Any]]:
        return [{"unit": u, "over_limit": f} for u, f in zip(self.units, self.over_limit)]

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.over_limit:
            data["units"] = self.records()
        if self.hhi is not None:
            data["hhi"] = hhi_text(self.hhi)
        if self.hhi_over_limit is not None:
            data["hhi_over_limit"] = self.hhi_over_limit
        return data

    def display(self, request: Request | None = None) -> Display:
        limit = getattr(request, "limit", None)
        column = getattr(request, "column", "exposure")
        hhi_limit = getattr(request, "hhi_limit", None)
        columns: tuple[str, ...] = ()
        rows: list[tuple[str, ...]] = []
        notes: list[str] = []
        if self.over_limit:
            flag = f"joint {column} > {Decimal(limit):,f}" if limit is not None else "over limit"
            columns = ("unit", flag)
            rows = [(u, "yes" if f else "no") for u, f in zip(self.units, self.over_limit)]
            notes.append(f"{sum(self.over_limit):,} of {len(self.units):,} units over the limit")
        if self.hhi is not None:
            notes.append(f"HHI: {hhi_text(self.hhi)} points (0..10,000)")
        if self.hhi_over_limit is not None:
            above = f"HHI > {hhi_limit} points" if hhi_limit is not None else "HHI over its limit"
            notes.append(f"{above}: {'yes' if self.hhi_over_limit else 'no'}")
        return Display(columns, tuple(rows), tuple(notes))


class Concentration(Computation[ConcentrationRequest, ConcentrationPlan, ConcentrationOutcome]):
    """Concentration, as the gateway, the nodes and the receiver use it."""

    kind = "concentration"
    request_type = ConcentrationRequest
    plan_type = ConcentrationPlan
    outcome_type = ConcentrationOutcome
    lane = "long"
    outputs = ("over_limit", "hhi", "hhi_flag")

    def _layout(
        self, plan: ConcentrationPlan, schema: DatasetSchema, parties: int
    ) -> ConcentrationLayout:
        if plan.keys is not None:
            units = len(plan.keys)
        else:
            group = schema.columns.get(str(plan.group_by))
            if not isinstance(group, CategoricalColumn):
                raise InvalidQueryError(
                    f"concentration units need a categorical column, not {plan.group_by!r}"
                )
            units = len(group.domain)
        return concentration_layout(
            schema,
            parties,
            units,
            limit=plan.limit,
            hhi=plan.hhi,
            hhi_limit=plan.hhi_limit,
            column=plan.column,
        )

    def check(self, plan: ConcentrationPlan, schema: DatasetSchema, parties: int) -> None:
        plan.check_schema(schema)
        if plan.keys is not None:
            check_key_column(schema, plan.key_column)
            if plan.column != "exposure":  # per-entity sums come from the feature registry
                raise InvalidQueryError(
                    "concentration over entity keys sums 'exposure' (the total_exposure "
                    f"feature); {plan.column!r} can be summed per value of a group_by column"
                )
        self._layout(plan, schema, parties)

    def local_inputs(
        self, plan: ConcentrationPlan, step: dict[str, Any], data: LocalData
    ) -> ProgramCall:
        layout = self._layout(plan, data.schema, data.parties)
        gate = plan.known_entities(data.parties)
        if plan.keys is None or gate is None:
            exposures = local_group_exposures(
                data.cursor, data.schema, str(plan.group_by), plan.column, data.where
            )
            return ProgramCall("concentration:concentration", layout.program_args(exposures))
        exposures = local_entity_features(
            data.cursor,
            data.schema,
            plan.keys,
            ["total_exposure"],
            key_column=plan.key_column,
            where=data.where,
        )[:, 0]
        present = local_presence(
            data.cursor, data.schema, plan.keys, key_column=plan.key_column, where=data.where
        )
        args = {**layout.program_args(exposures), **gate.program_args(present)}
        return ProgramCall("concentration:concentration", args)

    def visible(self, plan: ConcentrationPlan) -> frozenset[str]:
        return frozenset() if plan.keys is None else frozenset({ENOUGH_KNOWN})

    def run(self, plan: ConcentrationPlan, execution: Execution) -> Blocks:
        gate = plan.known_entities(execution.parties)
        blocks = execution.run_step({})
        if gate is not None:
            gate.check(blocks)
        return {}

    def decode(
        self, plan: ConcentrationPlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> ConcentrationOutcome:
        layout = self._layout(plan, schema, parties)
        units = list(plan.keys or schema.categorical(str(plan.group_by)).domain)
        over = (
            bits(block(blocks, "over_limit", len(units)), "flags")
            if layout.limit is not None
            else []
        )
        hhi, flag = None, None
        if layout.hhi == "fraction":
            numerator, denominator = block(blocks, "hhi", 2)
            hhi = ConcentrationLayout.hhi_points(numerator, denominator)
        elif layout.hhi == "flag":
            flag = bits(block(blocks, "hhi_over_limit", 1), "flags")[0]
        return ConcentrationOutcome(units, over, hhi, flag)

    def request_from_proto(
        self, message: gateway_pb2.ConcentrationJob, common: dict[str, Any]
    ) -> ConcentrationRequest:
        return ConcentrationRequest(**fields_set(message), **common)

    def job_message(
        self,
        keys: Sequence[str] = (),
        group_by: str | None = None,
        key_column: str = "",
        column: str = "",
        limit: Decimal | str | None = None,
        hhi: str = "",
        hhi_limit: int | None = None,
    ) -> gateway_pb2.ConcentrationJob:
        """Empty values are left to the gateway's defaults (exposure, the HHI fraction)."""
        return gateway_pb2.ConcentrationJob(
            keys=keys,
            group_by=group_by or "",
            key_column=key_column,
            column=column,
            limit="" if limit is None else str(limit),
            hhi=hhi,
            hhi_limit=hhi_limit,
        )
