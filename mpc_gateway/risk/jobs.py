"""Risk queries as the gateway plans them and every node re-derives them.

A :class:`RiskPlan` is to a risk computation what a
:class:`~mpc_gateway.query.plan.QueryPlan` is to a joint aggregate: the
validated request with everything the nodes must agree on, whose canonical hash
approvers sign, the audit log records and policies are checked against. Its
``job`` is one of

* :class:`ScoreJob` -- a registered scoring model over a batch of entity keys;
  releases the model's declared output (scores, decision bits or a count);
* :class:`ConcentrationJob` -- joint exposure per unit (a batch of distinct
  counterparties, or the values of a categorical column), releasing large-exposure
  flags and/or the Herfindahl-Hirschman index (or only the flag HHI > limit);
* :class:`QuantileJob` -- exact joint quantiles of a numeric column, by a
  batched secure search of a public number of rounds;
* :class:`HistogramJob` -- joint counts over declared bins.

:func:`mpc_plan` turns a plan into its MPC plan (shape, bounds, bit lengths);
the gateway and every node call it with the same public inputs, so they agree
on the job without exchanging anything else. :func:`local_program_args` is a
node's side: its fixed-shape local inputs, read with DuckDB. :func:`decode`
is the receiver's side: the released blocks as a :class:`RiskOutcome`.
Nothing here imports mpyc.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal, get_args

import duckdb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import IntegrityError, InvalidQueryError
from mpc_gateway.query.models import Filter, validate_filter
from mpc_gateway.query.plan import OutputControls, SignedPlan
from mpc_gateway.query.results import rounded
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn
from mpc_gateway.risk.features import MAX_BATCH, local_entity_features
from mpc_gateway.risk.model import ScorePlan, ScoringModel, plan_scores
from mpc_gateway.risk.portfolio import (
    ConcentrationPlan,
    HistogramPlan,
    local_group_exposures,
    local_histogram,
    plan_concentration,
    plan_histogram,
)
from mpc_gateway.risk.quantile import (
    QuantilePlan,
    QuantileSearch,
    local_cumulative_counts,
    plan_quantiles,
)
from mpc_gateway.risk.sealed import SealedWeights

__all__ = [
    "ScoreJob",
    "ConcentrationJob",
    "QuantileJob",
    "HistogramJob",
    "RiskPlan",
    "ScoreRequest",
    "RiskRequest",
    "build_risk_plan",
    "key_batch_hash",
    "RiskOrder",
    "RISK_OUTPUTS",
    "RiskOutput",
    "MpcPlan",
    "mpc_plan",
    "quantile_search",
    "local_program_args",
    "RiskOutcome",
    "decode",
    "search_quantiles",
]

RiskOutput = Literal[
    "scores", "decisions", "count", "over_limit", "hhi", "hhi_flag", "quantile", "histogram"
]
"""What a risk job can release, as policies name it."""
RISK_OUTPUTS: tuple[str, ...] = get_args(RiskOutput)

Keys = Annotated[
    tuple[Annotated[str, Field(min_length=1, max_length=128)], ...],
    Field(min_length=1, max_length=MAX_BATCH),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScoreJob(_Frozen):
    """Score a batch of entities with a registered model (the model travels with the plan)."""

    kind: Literal["score"] = "score"
    model_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    model: ScoringModel
    keys: Keys
    key_column: str = "counterparty_lei"

    @model_validator(mode="after")
    def _model_matches(self) -> ScoreJob:
        if self.model.model_id != self.model_id:
            raise ValueError("the model does not hash to the job's model id")
        return self


class ConcentrationJob(_Frozen):
    """Joint exposure per unit: a batch of distinct entity keys, or a categorical column's values."""

    kind: Literal["concentration"] = "concentration"
    keys: Keys | None = None
    key_column: str = "counterparty_lei"
    group_by: str | None = None
    column: str = "exposure"
    limit: Decimal | None = None
    hhi: Literal["none", "fraction", "flag"] = "fraction"
    hhi_limit: int | None = Field(default=None, ge=0, le=10000)

    @model_validator(mode="after")
    def _units(self) -> ConcentrationJob:
        if (self.keys is None) == (self.group_by is None):
            raise ValueError("a concentration job has either entity keys or a group_by column")
        if self.keys is not None and len(set(self.keys)) != len(self.keys):
            raise ValueError("concentration units must be distinct: a key is listed twice")
        return self


class QuantileJob(_Frozen):
    """Exact joint quantiles of a numeric column, at its declared precision."""

    kind: Literal["quantile"] = "quantile"
    column: str
    levels: tuple[Decimal, ...] = Field(min_length=1, max_length=64)
    grid_size: int = Field(default=64, ge=2, le=4096)


class HistogramJob(_Frozen):
    """Joint counts per bin ``[e_i, e_{i+1})`` (the last bin closed) of a numeric column."""

    kind: Literal["histogram"] = "histogram"
    column: str
    edges: tuple[Decimal, ...] = Field(min_length=2, max_length=1001)


RiskJob = Annotated[
    ScoreJob | ConcentrationJob | QuantileJob | HistogramJob, Field(discriminator="kind")
]


class RiskPlan(SignedPlan):
    """A validated risk query in the form nodes execute and approvers sign."""

    version: Literal[1] = 1
    kind: Literal["risk"] = "risk"
    analyst: str
    dataset: str
    schema_hash: str
    job: RiskJob
    filter: Filter | None = None
    purpose: str = ""
    controls: OutputControls = OutputControls()

    @property
    def outputs(self) -> tuple[str, ...]:
        """The outputs this plan releases, by their policy names."""
        job = self.job
        if isinstance(job, ScoreJob):
            return (job.model.output,)
        if isinstance(job, ConcentrationJob):
            flags = ("over_limit",) if job.limit is not None else ()
            hhi = {"none": (), "fraction": ("hhi",), "flag": ("hhi_flag",)}[job.hhi]
            return flags + hhi
        return (job.kind,)

    @property
    def batch_size(self) -> int | None:
        """Distinct entity keys in the batch (None: the job has no key batch)."""
        keys = getattr(self.job, "keys", None)
        return None if keys is None else len(set(keys))

    def audit_view(self) -> dict[str, Any]:
        """The plan as the audit log records it: a key batch by its size and SHA-256."""
        return _without_keys(self.model_dump(mode="json"))


def key_batch_hash(keys: Sequence[str]) -> str:
    """SHA-256 of a key batch (canonical JSON list): the audit log's record of the batch."""
    return hashlib.sha256(canonical_bytes(list(keys))).hexdigest()


def _without_keys(view: dict[str, Any]) -> dict[str, Any]:
    keys = view["job"].get("keys")
    if keys is not None:
        view["job"]["keys"] = {"count": len(keys), "sha256": key_batch_hash(keys)}
    return view


class ScoreRequest(_Frozen):
    """An analyst's scoring request: a registered model (by id) over a batch of keys."""

    kind: Literal["score"] = "score"
    model_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    keys: Keys
    key_column: str = "counterparty_lei"


class RiskRequest(_Frozen):
    """What an analyst asks for; :func:`build_risk_plan` turns it into a :class:`RiskPlan`."""

    dataset: str
    job: Annotated[
        ScoreRequest | ConcentrationJob | QuantileJob | HistogramJob, Field(discriminator="kind")
    ]
    filter: Filter | None = None
    purpose: str = Field(default="", max_length=500)

    def audit_view(self) -> dict[str, Any]:
        """The request as the audit log records it: a key batch by its size and SHA-256."""
        return _without_keys(self.model_dump(mode="json"))


def build_risk_plan(
    request: RiskRequest,
    schema: DatasetSchema,
    analyst: str,
    parties: int,
    model: ScoringModel | None = None,
) -> RiskPlan:
    """Validate ``request`` against ``schema`` (and the registered ``model`` of a scoring job)."""
    job: Any = request.job
    if isinstance(job, ScoreRequest):
        if model is None or model.model_id != job.model_id:
            raise InvalidQueryError(f"no registered model {job.model_id}")
        job = ScoreJob(model_id=job.model_id, model=model, keys=job.keys,
                       key_column=job.key_column)  # fmt: skip
    plan = RiskPlan(analyst=analyst, dataset=schema.name, schema_hash=schema.schema_hash,
                    job=job, filter=request.filter, purpose=request.purpose)  # fmt: skip
    mpc_plan(plan, schema, parties)
    return plan


class RiskOrder(_Frozen):
    """What an execution order carries beside a risk plan, per dispatch.

    ``sealed`` holds a secret-weight model's sealed shares (each node opens only
    its own); ``path`` the bracket indices released by a quantile search's
    earlier rounds, from which every node derives this round's grid itself.
    """

    sealed: SealedWeights | None = None
    path: tuple[tuple[int, ...], ...] = ()


# --- the MPC plan both sides derive -----------------------------------------------------------

MpcPlan = ScorePlan | ConcentrationPlan | QuantilePlan | HistogramPlan


def _key_column(schema: DatasetSchema, name: str) -> None:
    if not isinstance(schema.columns.get(name), KeyColumn):
        raise InvalidQueryError(f"{name!r} is not an entity key column of {schema.name!r}")


def mpc_plan(plan: RiskPlan, schema: DatasetSchema, parties: int) -> MpcPlan:
    """The job's MPC plan; an InvalidQueryError naming what does not fit the schema."""
    if plan.dataset != schema.name or plan.schema_hash != schema.schema_hash:
        raise IntegrityError(f"the plan is not for this schema of {schema.name!r}")
    if plan.filter is not None:
        validate_filter(schema, plan.filter)
    job = plan.job
    if isinstance(job, ScoreJob):
        _key_column(schema, job.key_column)
        return plan_scores(job.model, schema, parties)
    if isinstance(job, ConcentrationJob):
        if job.keys is not None:
            _key_column(schema, job.key_column)
            if job.column != "exposure":  # per-entity sums come from the feature registry
                raise InvalidQueryError(
                    "concentration over entity keys sums 'exposure' (the total_exposure "
                    f"feature); {job.column!r} can be summed per value of a group_by column"
                )
            units = len(job.keys)
        else:
            group = schema.columns.get(str(job.group_by))
            if not isinstance(group, CategoricalColumn):
                raise InvalidQueryError(
                    f"concentration units need a categorical column, not {job.group_by!r}"
                )
            units = len(group.domain)
        return plan_concentration(schema, parties, units, limit=job.limit, hhi=job.hhi,
                                  hhi_limit=job.hhi_limit, column=job.column)  # fmt: skip
    min_count = plan.controls.min_cell_count
    if isinstance(job, QuantileJob):
        return plan_quantiles(schema, parties, job.column, job.levels, job.grid_size,
                              min_count=min_count)  # fmt: skip
    return plan_histogram(schema, parties, job.column, job.edges, min_count=min_count)


def quantile_search(plan: QuantilePlan, path: Sequence[Sequence[int]]) -> QuantileSearch:
    """The search after the rounds in ``path`` (public: every node replays it)."""
    search = plan.search()
    if len(path) > search.rounds:
        raise IntegrityError("the quantile path is longer than the search")
    for brackets in path:
        search.advance(list(brackets))
    return search


# --- a node's side ----------------------------------------------------------------------------


def local_program_args(
    plan: RiskPlan,
    job_plan: MpcPlan,
    cursor: duckdb.DuckDBPyConnection,
    schema: DatasetSchema,
    where: tuple[str, list[Any]] | None,
    order: RiskOrder,
    weight_share: Sequence[int] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(program, args)`` of this node's part of the job, from its table ``data``."""
    job = plan.job
    if isinstance(job, ScoreJob) and isinstance(job_plan, ScorePlan):
        local = local_entity_features(cursor, schema, job.keys, job_plan.features,
                                      key_column=job.key_column, where=where)  # fmt: skip
        return "entity_scores", job_plan.program_args(local, weight_share)
    if isinstance(job, ConcentrationJob) and isinstance(job_plan, ConcentrationPlan):
        if job.keys is not None:
            exposures = local_entity_features(cursor, schema, job.keys, ["total_exposure"],
                                              key_column=job.key_column, where=where)[:, 0]  # fmt: skip
        else:
            exposures = local_group_exposures(cursor, schema, str(job.group_by), job.column, where)
        return "concentration", job_plan.program_args(exposures)
    if isinstance(job, QuantileJob) and isinstance(job_plan, QuantilePlan):
        search = quantile_search(job_plan, order.path)
        if search.done:
            raise IntegrityError("the quantile search has no rounds left")
        counts, totals = local_cumulative_counts(cursor, job.column, search.grids(), where)
        return "quantile_round", job_plan.program_args(counts, totals)
    if isinstance(job, HistogramJob) and isinstance(job_plan, HistogramPlan):
        return "histogram", job_plan.program_args(local_histogram(cursor, schema, job_plan, where))
    raise IntegrityError("the job and its MPC plan do not match")


# --- the receiver's side ----------------------------------------------------------------------


@dataclass
class RiskOutcome:
    """A released risk result, decoded (only what the plan declares)."""

    kind: str
    scores: list[int] = field(default_factory=list)  # integer scores S; real = S / denominator
    denominator: int = 1
    probabilities: list[float] = field(default_factory=list)  # logistic scores: sigmoid(S / D)
    decisions: list[bool] = field(default_factory=list)
    count: int | None = None
    units: list[str] = field(default_factory=list)
    over_limit: list[bool] = field(default_factory=list)
    hhi: Fraction | None = None  # points, 0..10000; None: not released or no exposure
    hhi_over_limit: bool | None = None
    quantiles: list[tuple[Decimal, Decimal | None]] = field(default_factory=list)
    bins: list[tuple[Decimal, Decimal, int | None]] = field(default_factory=list)
    rounds: int = 1

    def released(self) -> dict[str, Any]:
        """Everything released, JSON-able (the audit log records its SHA-256)."""
        return {
            "kind": self.kind,
            "scores": [str(s) for s in self.scores],
            "denominator": str(self.denominator),
            "decisions": self.decisions,
            "count": self.count,
            "units": self.units,
            "over_limit": self.over_limit,
            "hhi": None if self.hhi is None else str(self.hhi),
            "hhi_over_limit": self.hhi_over_limit,
            "quantiles": [[str(q), None if v is None else str(v)] for q, v in self.quantiles],
            "bins": [[str(lo), str(hi), c] for lo, hi, c in self.bins],
        }

    def suppressed(self) -> list[dict[str, Any]]:
        """What was withheld (too few values, or none): for the audit log and the analyst."""
        gone = [{"quantile": str(q)} for q, v in self.quantiles if v is None]
        return gone + [{"bin": [str(lo), str(hi)]} for lo, hi, c in self.bins if c is None]

    def digest(self) -> str:
        return hashlib.sha256(canonical_bytes(self.released())).hexdigest()


def _bits(values: Sequence[int], name: str) -> list[bool]:
    if any(v not in (0, 1) for v in values):
        raise IntegrityError(f"the released {name} are not bits")
    return [bool(v) for v in values]


def _block(blocks: dict[str, list[int]], name: str, size: int) -> list[int]:
    values = blocks.get(name)
    if values is None or len(values) != size:
        raise IntegrityError(f"the nodes released no {name!r} block of {size} values")
    return values


def _count(value: int, plan: RiskPlan) -> int:
    """A released count after the controls' rounding (as for aggregate counts)."""
    return int(rounded(value, "count", plan.controls))  # type: ignore[arg-type]


def decode(
    plan: RiskPlan, schema: DatasetSchema, job_plan: MpcPlan, blocks: dict[str, list[int]]
) -> RiskOutcome:
    """A one-shot job's released blocks (scores, concentration, histogram) as a result."""
    job = plan.job
    if isinstance(job, ScoreJob) and isinstance(job_plan, ScorePlan):
        n, out = len(job.keys), RiskOutcome("score", denominator=job_plan.denominator)
        if job_plan.output == "scores":
            out.scores = _block(blocks, "scores", n)
            if job_plan.kind == "logistic":
                out.probabilities = [job_plan.probability(s) for s in out.scores]
        elif job_plan.output == "decisions":
            out.decisions = _bits(_block(blocks, "decisions", n), "decisions")
        else:
            out.count = _count(_block(blocks, "count", 1)[0], plan)
        return out
    if isinstance(job, ConcentrationJob) and isinstance(job_plan, ConcentrationPlan):
        units = list(job.keys or schema.categorical(str(job.group_by)).domain)
        out = RiskOutcome("concentration", units=units)
        if job_plan.limit is not None:
            out.over_limit = _bits(_block(blocks, "over_limit", len(units)), "flags")
        if job_plan.hhi == "fraction":
            numerator, denominator = _block(blocks, "hhi", 2)
            out.hhi = ConcentrationPlan.hhi_points(numerator, denominator)
        elif job_plan.hhi == "flag":
            out.hhi_over_limit = _bits(_block(blocks, "hhi_over_limit", 1), "flags")[0]
        return out
    if isinstance(job, HistogramJob) and isinstance(job_plan, HistogramPlan):
        counts = _block(blocks, "counts", len(job.edges) - 1)
        hidden = blocks.get("suppressed", [0] * len(counts))
        edges = list(job.edges)
        return RiskOutcome("histogram", bins=[
            (lo, hi, None if gone else _count(c, plan))
            for lo, hi, c, gone in zip(edges, edges[1:], counts, _bits(hidden, "flags"))
        ])  # fmt: skip
    raise IntegrityError("decode() does not take quantile rounds: drive the search instead")


def search_quantiles(
    job: QuantileJob,
    job_plan: QuantilePlan,
    run_round: Callable[[tuple[tuple[int, ...], ...]], dict[str, list[int]]],
) -> RiskOutcome:
    """Drive the search: ``run_round(path)`` runs one MPC job and returns its released blocks.

    ``path`` is the bracket indices released so far; every node replays it to
    derive the round's grid, so the driver cannot choose grid points of its own.
    """
    search = job_plan.search()
    path: tuple[tuple[int, ...], ...] = ()
    while not search.done:
        brackets = tuple(_block(run_round(path), "bracket", len(job.levels)))
        search.advance(brackets)
        path = (*path, brackets)
    values = search.results()
    return RiskOutcome("quantile", rounds=search.rounds,
                       quantiles=[(q, job_plan.decode(v)) for q, v in zip(job.levels, values)])  # fmt: skip
