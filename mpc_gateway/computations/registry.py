"""The registry of computations: every one by its kind, and building plans from requests.

Imported on first use through :mod:`mpc_gateway.computations` (whose names it
defines), so an MPC worker that needs one layout module does not load every
computation and its models.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from mpc_gateway.computations.aggregate import AggregatePlan, AggregateRequest, Aggregates
from mpc_gateway.computations.base import (
    MAX_STATEMENT_CHARS,
    Blocks,
    Computation,
    Execution,
    LocalData,
    Outcome,
    Plan,
    Planning,
    ProgramCall,
    Released,
    Request,
)
from mpc_gateway.computations.check import Checks
from mpc_gateway.computations.concentration import Concentration
from mpc_gateway.computations.features import FEATURES
from mpc_gateway.computations.histogram import Histograms
from mpc_gateway.computations.quantile import Quantiles
from mpc_gateway.computations.score import Scores
from mpc_gateway.computations.scoring import ModelBook
from mpc_gateway.computations.train import Training
from mpc_gateway.errors import IntegrityError, InvalidQueryError
from mpc_gateway.policy.declaration import Vocabulary
from mpc_gateway.query.schema import DatasetSchema

__all__ = [
    "COMPUTATIONS",
    "VOCABULARY",
    "Blocks",
    "Computation",
    "Execution",
    "LocalData",
    "Outcome",
    "Plan",
    "Planning",
    "ProgramCall",
    "MAX_STATEMENT_CHARS",
    "Released",
    "Request",
    "AggregatePlan",
    "AggregateRequest",
    "computation",
    "computation_of",
    "plan_from_dict",
    "plan_from_json",
    "build",
    "NoModels",
]

AnyComputation = Computation[Any, Any, Any]

COMPUTATIONS: dict[str, AnyComputation] = {
    c.kind: c
    for c in (
        Aggregates(),
        Scores(),
        Concentration(),
        Quantiles(),
        Histograms(),
        Checks(),
        Training(),
    )
}
"""Every computation, by its kind (also its name on the wire)."""

VOCABULARY = Vocabulary(
    outputs=frozenset(o for c in COMPUTATIONS.values() for o in c.outputs),
    features=frozenset(FEATURES),
)
"""The risk outputs and features a policy file may name."""


def computation(kind: str) -> AnyComputation:
    """The computation of ``kind``; an InvalidQueryError naming the known ones otherwise."""
    try:
        return COMPUTATIONS[kind]
    except KeyError:
        known = ", ".join(COMPUTATIONS)
        raise InvalidQueryError(f"unknown computation {kind!r}; known: {known}") from None


def computation_of(item: Request | Plan) -> AnyComputation:
    """The computation a request or plan belongs to."""
    return computation(item.kind)


def plan_from_dict(data: Any) -> Plan:
    """A plan from its JSON form, as the computation its ``kind`` names defines it."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise IntegrityError("a plan is a JSON object with a string 'kind'")
    try:
        return computation(data["kind"]).plan_type.model_validate(data)
    except ValidationError as err:
        raise IntegrityError(
            f"the {data['kind']} plan is malformed: {err.errors()[0]['msg']}"
        ) from None


def plan_from_json(text: str | bytes) -> Plan:
    try:
        data = json.loads(text)
    except ValueError:
        raise IntegrityError("the plan is not JSON") from None
    return plan_from_dict(data)


class NoModels:
    """A model book without models (planning computations that need none)."""

    def model(self, model_id: str) -> Any:
        raise InvalidQueryError(f"no registered model {model_id}")

    def sealed(self, model_id: str) -> Any:
        return None


def build(
    request: Request,
    schema: DatasetSchema,
    analyst: str,
    parties: int,
    models: ModelBook | None = None,
) -> Plan:
    """Plan ``request`` for ``analyst`` over ``schema`` with ``parties`` nodes."""
    planning = Planning(analyst, parties, models or NoModels())
    plan: Plan = computation_of(request).build(request, schema, planning)
    return plan
