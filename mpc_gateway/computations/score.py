"""Entity scores: a registered scoring model over a batch of entity keys, across institutions.

An analyst names a registered :class:`~mpc_gateway.computations.scoring.ScoringModel`
and a batch of entity keys (LEIs or person pseudonyms). Every node computes
its local features of those entities (zeros for entities it does not know),
the MPC program (``score:entity_scores``) combines them across institutions,
scores them with public or secret-shared weights, and releases only what the
model declares: the integer scores, the decision bits ``score >= threshold``,
or the number of positive decisions, and only if at least
``controls.min_entities`` of the batch's entities are known to the
institutions (decided inside the MPC, :mod:`~mpc_gateway.computations.known_entities`).

Under differential privacy only the count can be released: every node adds a
full-scale discrete Gaussian sample to it and to the count of known entities
it is checked against (one loan changes one entity's features, so at most one
decision and one "known" bit; a key listed r times moves the count by r).
Scores and decisions (one value per entity) declare a ``dp_blocker``.

Disclosure: the receiver learns that output for the batch; nodes learn the
request, including the keys (never the features of another institution, the
combined features, or secret weights).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mpc_gateway.computations.base import (
    Blocks,
    Computation,
    Display,
    Execution,
    LocalData,
    Outcome,
    Plan,
    Planning,
    ProgramCall,
    Request,
)
from mpc_gateway.computations.features import local_entity_features, local_presence
from mpc_gateway.computations.known_entities import ENOUGH_KNOWN, KnownEntities, known_entities
from mpc_gateway.computations.scoring import ScoringModel, open_weight_share, score_layout
from mpc_gateway.computations.shared import (
    DEFAULT_KEY_COLUMN,
    Keys,
    bits,
    block,
    check_key_column,
    released_count,
    risk_disclosure,
    without_keys,
)
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.pki.sealing import SealedWeights
from mpc_gateway.policy.declaration import Declaration, EntityBatch, RiskUse
from mpc_gateway.privacy import MAX_SCALE, NoisyRelease, calibrate, sample
from mpc_gateway.privacy.noise import TAIL
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import ColumnName, DatasetSchema

__all__ = ["ScoreRequest", "ScorePlan", "ScoreOutcome", "Scores"]

_MODEL_ID = r"^[0-9a-f]{64}$"


class _Batch(BaseModel):
    """What a scoring request and its plan both say: the model and the batch of keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(pattern=_MODEL_ID)
    keys: Keys
    key_column: ColumnName = DEFAULT_KEY_COLUMN

    def audit_view(self) -> dict[str, Any]:
        return without_keys(self.model_dump(mode="json"))


class ScoreRequest(_Batch, Request):
    """Score a batch of entities with a registered model (by its id)."""

    kind: Literal["score"] = "score"


class ScorePlan(_Batch, Plan):
    """A scoring job as nodes execute it: the registered model travels with the plan."""

    kind: Literal["score"] = "score"
    model: ScoringModel

    @model_validator(mode="after")
    def _model_matches(self) -> ScorePlan:
        if self.model.model_id != self.model_id:
            raise ValueError("the model does not hash to the job's model id")
        return self

    @property
    def batch_size(self) -> int:
        return len(set(self.keys))

    @property
    def noisy(self) -> bool:
        """Under DP: the count (the only output noise can protect) is released with noise."""
        return self.controls.dp_rho is not None and self.model.output == "count"

    def declaration(self) -> Declaration:
        output = self.model.output
        return Declaration(
            risk=RiskUse(
                outputs=(output,),
                features=tuple(f.name for f in self.model.features),
                model_owner=self.model.owner,
                batch=EntityBatch(self.key_column, self.batch_size),
            ),
            dp_blocker=None
            if output == "count"
            else f"{output} release one value per entity, which noise cannot protect",
        )

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        gate = _gate(self, len(institutions))
        what = (
            f"{self.model.output} of model {self.model.name!r} for {self.batch_size} "
            f"entities, {gate.describe()}"
        )
        if self.noisy:
            what += (
                "; the count carries discrete Gaussian noise drawn inside the MPC, and the "
                f"query costs ρ {self.controls.dp_rho} (zCDP) of the privacy budgets"
            )
        return risk_disclosure(self.analyst, what, institutions)


def _noise(plan: ScorePlan) -> dict[str, NoisyRelease]:
    """Under DP, the count's and the known-entity count's releases (scales from public inputs)."""
    if not plan.noisy or plan.controls.dp_rho is None:
        return {}
    repeats = max(Counter(plan.keys).values())  # one loan moves each copy of its entity's decision
    releases = calibrate(plan.controls.dp_rho, {"count": repeats, "known": 1})
    if any(r.scale > MAX_SCALE for r in releases.values()):
        raise InvalidQueryError("the privacy budget per query is too small for a noisy count")
    return releases


def _gate(plan: ScorePlan, parties: int) -> KnownEntities:
    return known_entities(plan.keys, plan.controls, parties, _noise(plan).get("known"))


def _noise_args(plan: ScorePlan, parties: int, bits: int, noisy: bool = True) -> dict[str, Any]:
    """This node's noise samples (full scale σ each) and a bit length that holds them all.

    A helper (``noisy`` False) inputs zeros of the same shape: it has no row to protect.
    """
    releases = _noise(plan)
    if not releases:
        return {}
    count, known = releases["count"], releases["known"]
    samples = [int(sample(r.scale, 1)[0]) if noisy else 0 for r in (count, known)]
    bound = len(plan.keys) + parties * TAIL * math.ceil(count.scale)  # count + every node's noise
    return {
        "noise_local": np.array(samples, dtype=object),
        "bits": max(bits, bound.bit_length() + 1),
    }


@dataclass(frozen=True)
class ScoreOutcome(Outcome):
    """What a scoring job released: scores, decision bits or a count (only what it declares)."""

    kind = "score"

    model_id: str
    scores: list[int] = field(default_factory=list)  # integer scores S; real = S / denominator
    denominator: int = 1
    probabilities: list[float] = field(default_factory=list)  # logistic: sigmoid(S / D)
    decisions: list[bool] = field(default_factory=list)
    count: int | None = None

    def released(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model_id": self.model_id,
            "scores": [str(s) for s in self.scores],
            "denominator": str(self.denominator),
            "decisions": self.decisions,
            "count": self.count,
        }

    def withheld(self) -> list[dict[str, Any]]:
        return []

    def _rows(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"decision": d} for d in self.decisions]
        for i, s in enumerate(self.scores):
            row: dict[str, Any] = {
                "score": str(Decimal(s) / Decimal(self.denominator)),
                "integer_score": str(s),
            }
            if self.probabilities:
                row["probability"] = self.probabilities[i]
            rows.append(row)
        return [{"key": k, **r} for k, r in zip(keys, rows)] if keys else rows

    def records(self) -> list[dict[str, Any]]:
        return self._rows(()) if self.count is None else [{"count": self.count}]

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "model_id": self.model_id}
        if self.scores:
            data["denominator"] = str(self.denominator)  # score = integer_score / denominator
        rows = self._rows(_keys(request))
        if rows:
            data["rows"] = rows
        if self.count is not None:
            data["count"] = self.count
        return data

    def display(self, request: Request | None = None) -> Display:
        keys = _keys(request)
        about = f"model {self.model_id[:8]}"
        if self.count is not None:
            of = f" of {len(keys)}" if keys else ""
            return Display(
                (), (), (f"{self.count:,}{of} entities at or above the model's threshold",), about
            )
        columns = ["key"]
        if self.scores:
            columns += ["score", "probability"] if self.probabilities else ["score"]
        if self.decisions:
            columns.append("decision (score ≥ threshold)")
        rows = []
        for i in range(max(len(self.scores), len(self.decisions))):
            cells = [keys[i] if i < len(keys) else str(i + 1)]
            if self.scores:
                cells.append(f"{float(Fraction(self.scores[i], self.denominator)):.6g}")
                if self.probabilities:
                    cells.append(f"{self.probabilities[i]:.6f}")
            if self.decisions:
                cells.append("yes" if self.decisions[i] else "no")
            rows.append(tuple(cells))
        notes: tuple[str, ...] = ()
        if self.decisions:
            notes = (
                f"{sum(self.decisions):,} of {len(self.decisions):,} at or above the threshold",
            )
        return Display(tuple(columns), tuple(rows), notes, about)


def _keys(request: Request | None) -> tuple[str, ...]:
    return tuple(getattr(request, "keys", None) or ())


class Scores(Computation[ScoreRequest, ScorePlan, ScoreOutcome]):
    """Entity scoring, as the gateway, the nodes and the receiver use it."""

    kind = "score"
    request_type = ScoreRequest
    plan_type = ScorePlan
    outcome_type = ScoreOutcome
    lane = "long"
    outputs = ("scores", "decisions", "count")

    def build(self, request: ScoreRequest, schema: DatasetSchema, planning: Planning) -> ScorePlan:
        model = planning.models.model(request.model_id)
        plan = ScorePlan(
            analyst=planning.analyst,
            dataset=schema.name,
            schema_hash=schema.schema_hash,
            model_id=request.model_id,
            model=model,
            keys=request.keys,
            key_column=request.key_column,
            filter=request.filter,
            purpose=request.purpose,
        )
        self.check(plan, schema, planning.parties)
        return plan

    def check(self, plan: ScorePlan, schema: DatasetSchema, parties: int) -> None:
        plan.check_schema(schema)
        check_key_column(schema, plan.key_column)
        score_layout(plan.model, schema, parties)
        _noise(plan)

    def noise(self, plan: ScorePlan, schema: DatasetSchema, parties: int) -> list[NoisyRelease]:
        return list(_noise(plan).values())

    def local_inputs(self, plan: ScorePlan, step: dict[str, Any], data: LocalData) -> ProgramCall:
        layout = score_layout(plan.model, data.schema, data.parties)
        share = None
        if plan.model.weights_secret:
            if "sealed" not in step:
                raise InvalidQueryError("the order carries no sealed weights for its secret model")
            sealed = SealedWeights.model_validate(step["sealed"])
            share = open_weight_share(plan.model, sealed, data.node, data.node_key_pem)
        local = local_entity_features(
            data.cursor,
            data.schema,
            plan.keys,
            layout.features,
            key_column=plan.key_column,
            where=data.where,
        )
        present = local_presence(
            data.cursor, data.schema, plan.keys, key_column=plan.key_column, where=data.where
        )
        args = {
            **layout.program_args(local, share),
            **_gate(plan, data.parties).program_args(present),
        }
        args.update(_noise_args(plan, data.parties, args["bits"], data.holds_data))
        if plan.controls.dp_rho is None:  # rounded inside the MPC (under DP, noise protects)
            args["round_to"] = plan.controls.round_counts_to
        return ProgramCall("score:entity_scores", args)

    def visible(self, plan: ScorePlan) -> frozenset[str]:
        return frozenset({ENOUGH_KNOWN})

    def run(self, plan: ScorePlan, execution: Execution) -> Blocks:
        sealed = execution.models.sealed(plan.model_id)
        step = {} if sealed is None else {"sealed": sealed.model_dump(mode="json")}
        _gate(plan, execution.parties).check(execution.run_step(step))
        return {}

    def decode(
        self, plan: ScorePlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> ScoreOutcome:
        layout = score_layout(plan.model, schema, parties)
        n = len(plan.keys)
        if layout.output == "scores":
            scores = block(blocks, "scores", n)
            probabilities = (
                [layout.probability(s) for s in scores] if layout.kind == "logistic" else []
            )
            return ScoreOutcome(plan.model_id, scores, layout.denominator, probabilities)
        if layout.output == "decisions":
            decisions = bits(block(blocks, "decisions", n), "decisions")
            return ScoreOutcome(plan.model_id, denominator=layout.denominator, decisions=decisions)
        count = released_count(block(blocks, "count", 1)[0], plan.controls)
        return ScoreOutcome(plan.model_id, denominator=layout.denominator, count=count)

    def request_from_proto(
        self, message: gateway_pb2.ScoreJob, common: dict[str, Any]
    ) -> ScoreRequest:
        return ScoreRequest(
            model_id=message.model_id,
            keys=tuple(message.keys),
            key_column=message.key_column or DEFAULT_KEY_COLUMN,
            **common,
        )

    def job_message(
        self, model_id: str = "", keys: Sequence[str] = (), key_column: str = ""
    ) -> gateway_pb2.ScoreJob:
        return gateway_pb2.ScoreJob(model_id=model_id, keys=keys, key_column=key_column)
