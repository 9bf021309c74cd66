"""Joint model training: ridge and logistic regression fitted inside the MPC.

An analyst names a label, features and a family: ``linear`` (ridge, closed form
from the summed Gram matrix) or ``logistic`` (Newton/IRLS for a fixed number of
steps, stated in the plan). Each node reads its own rows into its MPC worker,
which inputs only fixed-shape local statistics (moments, Gram matrices,
Hessians and working responses at the current iterate) scaled to exact
integers; the MPC sums them and solves each step exactly over a prime field
(:mod:`mpc_gateway.mpc.programs.train`, layout in
:mod:`~mpc_gateway.computations.train_layout`). Nothing runs unless the joint
rows reach the job's ``min_rows`` from at least ``min_institutions`` nodes
(decided inside the MPC; the gateway learns that bit only).

Objective: the sum over rows of the loss (half squared error, or the negative
log-likelihood) plus ``(l2/2) * sum_j (sigma_j * beta_j)**2`` over every
non-intercept column, sigma_j its joint population deviation: the L2 penalty on
standardised features, intercept unpenalised. Coefficients are in the features'
units (a dummy per level but the first).

Disclosure: the receiver learns the coefficients (exact rationals, rounded to
25 digits for display) and the last iterate before them (logistic: to check
convergence); logistic's nodes learn the T - 1 iterates before the last, as
their MPC workers need them for the local statistics (a policy choice: the
training section's ``iterates_to_nodes``); no one learns the joint means or
deviations. The variant that keeps the iterates secret (a secure logistic
function per row) is not offered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from fractions import Fraction
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
)
from mpc_gateway.computations.shared import bits, block, fields_set, risk_disclosure
from mpc_gateway.computations.train_layout import (
    VALIDATION_BINS,
    TrainLayout,
    local_rows,
    train_layout,
)
from mpc_gateway.computations.train_validation import Validation, split_rows, validation
from mpc_gateway.errors import InvalidQueryError, PolicyDeniedError
from mpc_gateway.policy.declaration import Declaration, TrainingUse
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import CategoricalColumn, ColumnName, DatasetSchema

__all__ = ["TrainRequest", "TrainPlan", "TrainOutcome", "Training", "CONVERGED", "sigmoid"]

ENOUGH = "enough"
CONVERGED = 1e-6
"""Logistic: converged when no coefficient moved by more than this (relative) in the last step."""

_DIGITS = Context(prec=25)


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: ColumnName
    features: tuple[ColumnName, ...] = Field(min_length=1, max_length=32)
    family: Literal["linear", "logistic"] = "logistic"
    l2: Decimal = Field(default=Decimal(1), ge=0, le=10**6, decimal_places=6)
    iterations: int = Field(default=12, ge=1, le=50)
    min_rows: int = Field(default=1000, ge=1, le=10**9)
    min_institutions: int = Field(default=2, ge=1, le=64)
    holdout: Decimal = Field(default=Decimal(0), ge=0, le=Decimal("0.5"), decimal_places=4)
    seed: int = Field(default=0, ge=0, lt=2**63)


class TrainRequest(_Job, Request):
    """Train a model of ``label`` on ``features`` across the institutions."""

    kind: Literal["train"] = "train"


class TrainPlan(_Job, Plan):
    kind: Literal["train"] = "train"

    @property
    def steps_disclosed(self) -> int:
        """How many iterates the nodes learn (logistic: all but the released one)."""
        return self.iterations - 1 if self.family == "logistic" else 0

    @property
    def validated(self) -> bool:
        """A held-out split is validated: the nodes learn the final coefficients too."""
        return self.holdout > 0

    def declaration(self) -> Declaration:
        use = TrainingUse(
            family=self.family,
            label=self.label,
            features=self.features,
            releases_coefficients=True,
            iterates_to_nodes=self.steps_disclosed > 0 or self.validated,
            min_rows=self.min_rows,
            min_institutions=self.min_institutions,
        )
        blocker = "trained coefficients are released without noise"
        return Declaration(training=use, dp_blocker=blocker)

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        how = (
            f"logistic regression, {self.iterations} Newton steps"
            if self.family == "logistic"
            else "ridge regression (closed form)"
        )
        what = (
            f"the coefficients of a {how} of {self.label} on {', '.join(self.features)} "
            f"with l2 = {self.l2} (standardised features, intercept unpenalised), "
            f"only if the joint rows number at least {self.min_rows} from at least "
            f"{self.min_institutions} institutions"
        )
        if self.family == "logistic":
            what += "; with the last iterate before them (to check convergence)"
        nodes_see = "the request, and whether the minimums were met"
        if self.steps_disclosed:
            nodes_see += (
                f", and the {self.steps_disclosed} iterates before the released coefficients "
                f"({self.steps_disclosed} x {len(self.features)}+ numbers, functions of the "
                "pooled rows: their workers need them for the local gradients)"
            )
        if self.validated:
            what += (
                f"; the joint histogram of the held-out rows ({self.holdout} of each node's, "
                "seeded) per label and predicted-probability bin, hence AUC, Gini and confusion"
            )
            nodes_see += ", and the released coefficients (to score their held-out rows)"
        gateway = "whether the minimums were met (one bit), never an iterate"
        return risk_disclosure(self.analyst, what, institutions, nodes_see, gateway)


@dataclass(frozen=True)
class TrainOutcome(Outcome):
    """A trained model: one coefficient per design column, and how the fit ended."""

    kind = "train"

    family: str
    columns: list[str] = field(default_factory=list)
    coefficients: list[Fraction] = field(default_factory=list)
    last_step: float = 0.0  # largest relative change of a coefficient in the last step
    singular: bool = False
    steps: int = 1
    validation: Validation | None = None
    features: list[str] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)  # categorical features' domains

    @property
    def converged(self) -> bool:
        return not self.singular and (self.family == "linear" or self.last_step <= CONVERGED)

    def scores(self, rows: Iterable[Mapping[str, object]]) -> list[Fraction]:
        """Each row's linear predictor, exactly, from its features' values in their units.

        A numeric feature is a number or a decimal string (EUR, not cents); a
        categorical one a level of its declared domain. Extra keys are ignored.
        """
        if self.singular or not self.coefficients:
            raise InvalidQueryError("there is no model to score with: the system was singular")
        weight = dict(zip(self.columns, self.coefficients))
        scores = []
        for i, row in enumerate(rows):
            score = weight["intercept"]
            for name in self.features:
                if name not in row:
                    raise InvalidQueryError(f"row {i} has no value of the feature {name!r}")
                value = row[name]
                if name in self.levels:
                    if not isinstance(value, str) or value not in self.levels[name]:
                        known = ", ".join(self.levels[name])
                        raise InvalidQueryError(f"row {i}: {name} = {value!r}: not one of {known}")
                    score += weight.get(f"{name}={value}", 0)  # the first level: none
                else:
                    score += weight[name] * _number(value, f"row {i}: {name}")
            scores.append(score)
        return scores

    def predict(self, rows: Iterable[Mapping[str, object]]) -> list[float]:
        """Each row's prediction: the linear model's value, or the logistic model's probability."""
        scores = self.scores(rows)
        if self.family == "logistic":
            return [sigmoid(s) for s in scores]
        return [float(s) for s in scores]

    def values(self) -> list[float]:
        return [float(c) for c in self.coefficients]

    def released(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "family": self.family,
            "columns": self.columns,
            "coefficients": [str(_decimal(c)) for c in self.coefficients],
            "singular": self.singular,
            "validation": None if self.validation is None else self.validation.to_json(),
        }

    def withheld(self) -> list[dict[str, Any]]:
        return [{"model": "singular system"}] if self.singular else []

    def records(self) -> list[dict[str, Any]]:
        pairs = zip(self.columns, self.coefficients)
        return [{"column": n, "coefficient": float(c)} for n, c in pairs]

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        return {
            **self.released(),
            "steps": self.steps,
            "last_step": self.last_step,
            "converged": self.converged,
        }

    def display(self, request: Request | None = None) -> Display:
        if self.singular:
            note = "the system was singular (collinear features without a penalty): no model"
            return Display((), (), (note,), self.family)
        rows = tuple((n, f"{float(c):.10g}") for n, c in zip(self.columns, self.coefficients))
        state = "converged" if self.converged else "NOT converged"
        notes = [f"{self.family}, {self.steps} step(s), {state} (last step {self.last_step:.2e})"]
        v = self.validation
        if v is not None and v.auc is not None and v.gini is not None:
            notes.append(f"held out: AUC {v.auc:.4f}, Gini {v.gini:.4f}, at 0.5: {v.confusion()}")
            notes.extend(_calibration_notes(v))
        return Display(("column", "coefficient"), rows, tuple(notes), self.family)


def _calibration_notes(v: Validation) -> list[str]:
    """The calibration table, one line per band that holds rows."""
    lines = ["calibration (band: rows, positives, observed rate, mean predicted):"]
    for b in v.calibration():
        if b.rows and b.observed is not None and b.predicted is not None:
            lines.append(
                f"  [{b.low:.1f}, {b.high:.1f}): {b.rows} rows, {b.positives} positive, "
                f"observed {b.observed:.4f}, predicted {b.predicted:.4f}"
            )
    return lines


def sigmoid(score: Fraction | float) -> float:
    """The logistic function, without overflow for scores of any size."""
    x = float(score)
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _number(value: object, what: str) -> Fraction:
    """``value`` exactly: an int, a finite float (as printed), a Decimal or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InvalidQueryError(f"{what} is not a number: {value!r}")
    try:
        number = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidQueryError(f"{what} is not a finite number: {value!r}") from None
    return number


def _decimal(value: Fraction) -> Decimal:
    return _DIGITS.divide(Decimal(value.numerator), Decimal(value.denominator))


class Training(Computation[TrainRequest, TrainPlan, TrainOutcome]):
    """Joint training, as the gateway, the nodes and the receiver use it."""

    kind = "train"
    request_type = TrainRequest
    plan_type = TrainPlan
    outcome_type = TrainOutcome
    lane = "long"

    def layout(self, plan: TrainPlan, schema: DatasetSchema, parties: int) -> TrainLayout:
        minimum = max(plan.min_institutions, plan.controls.min_institutions)
        return train_layout(
            schema,
            parties,
            plan.label,
            plan.features,
            plan.family == "logistic",
            plan.l2,
            plan.iterations,
            max(plan.min_rows, plan.controls.min_cell_count),
            minimum,
        )

    def check(self, plan: TrainPlan, schema: DatasetSchema, parties: int) -> None:
        plan.check_schema(schema)
        self.layout(plan, schema, parties)
        if plan.validated and plan.family != "logistic":
            raise InvalidQueryError("a held-out validation (AUC, confusion) needs a logistic model")

    def local_inputs(self, plan: TrainPlan, step: dict[str, Any], data: LocalData) -> ProgramCall:
        layout = self.layout(plan, data.schema, data.parties)
        design, label = local_rows(data.cursor, layout, data.where)
        if not plan.validated:
            return ProgramCall("train:fit", layout.program_args(design, label))
        held = split_rows(len(label), plan.holdout, plan.seed)
        args = layout.program_args(
            design[~held], label[~held], (design[held], label[held]), plan.controls.round_counts_to
        )
        return ProgramCall("train:fit", args)

    def visible(self, plan: TrainPlan) -> frozenset[str]:
        return frozenset({ENOUGH})

    def run(self, plan: TrainPlan, execution: Execution) -> Blocks:
        blocks = execution.run_step({})
        if not bits(block(blocks, ENOUGH, 1), "minimums check")[0]:
            raise PolicyDeniedError(
                f"refused by rule training.min_rows: fewer than {plan.min_rows} joint rows, or "
                f"rows from fewer than {plan.min_institutions} institutions; nothing was released"
            )
        return {}

    def decode(
        self, plan: TrainPlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> TrainOutcome:
        layout = self.layout(plan, schema, parties)
        d = len(layout.columns)
        singular = bits(block(blocks, "singular", 1), "singular flag")[0]
        levels = {
            name: list(spec.domain)
            for name in plan.features
            if isinstance(spec := schema.columns.get(name), CategoricalColumn)
        }
        features = list(plan.features)
        if singular:
            return TrainOutcome(
                plan.family, list(layout.columns), singular=True, features=features, levels=levels
            )
        beta = layout.coefficients(block(blocks, "coefficients", d))
        last = layout.coefficients(block(blocks, "previous", d))
        step = max(float(abs(b - a)) / (1 + float(abs(b))) for a, b in zip(last, beta))
        checked = None
        if plan.validated:
            checked = validation(block(blocks, "histogram", 2 * VALIDATION_BINS))
        return TrainOutcome(
            plan.family,
            list(layout.columns),
            beta,
            step,
            False,
            layout.iterations,
            checked,
            features,
            levels,
        )

    def request_from_proto(
        self, message: gateway_pb2.TrainJob, common: dict[str, Any]
    ) -> TrainRequest:
        return TrainRequest(**fields_set(message), **common)

    def job_message(
        self,
        label: str = "",
        features: Sequence[str] = (),
        family: str = "",
        l2: Decimal | str | None = None,
        iterations: int | None = None,
        min_rows: int | None = None,
        min_institutions: int | None = None,
        holdout: Decimal | str | None = None,
        seed: int | None = None,
    ) -> gateway_pb2.TrainJob:
        return gateway_pb2.TrainJob(
            label=label,
            features=list(features),
            family=family or None,
            l2=None if l2 is None else str(l2),
            iterations=iterations,
            min_rows=min_rows,
            min_institutions=min_institutions,
            holdout=None if holdout is None else str(holdout),
            seed=seed,
        )
