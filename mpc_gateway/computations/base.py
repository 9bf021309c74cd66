"""What every computation owns, and the shapes the rest of the system asks it in.

A computation is one kind of joint question: an aggregate table, entity scores,
concentration, quantiles, a histogram. Its module owns everything about it:

* its :class:`Request` (what an analyst asks) and its :class:`Plan` (the
  validated, canonical form that approvers sign, nodes execute and the audit
  log records), with the column uses and outputs the plan declares to policies
  (:meth:`Plan.declaration`) and what it discloses to whom (:meth:`Plan.disclosure`);
* a node's side: :meth:`Computation.check` re-derives the plan from the node's
  own schema, :meth:`Computation.local_inputs` computes the node's fixed-shape
  inputs with SQL over its table ``data`` and names the MPC program;
* the driver's side (the gateway): :meth:`Computation.run` runs one or more MPC
  steps, opening only the blocks :meth:`Computation.visible` names (checks and
  search brackets that steer it); every other block is sealed to the receiver;
* the receiver's side (the analyst's client): :meth:`Computation.decode` turns the
  opened result blocks into an :class:`Outcome`;
* its wire form: protobuf messages in both directions.

The gateway, dispatcher, node, policy engine, client and CLI only ever call
these methods; none of them tells computations apart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar, cast

from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.canonical import canonical_bytes, canonical_hash
from mpc_gateway.computations.scoring import ModelBook
from mpc_gateway.errors import IntegrityError
from mpc_gateway.lanes import Lane
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.policy.declaration import Declaration
from mpc_gateway.privacy import NoisyRelease
from mpc_gateway.query.filters import Filter, validate_filter
from mpc_gateway.query.schema import DatasetName, DatasetSchema
from mpc_gateway.query.sql import QueryCursor, Where

__all__ = [
    "MAX_STATEMENT_CHARS",
    "Lane",
    "Request",
    "Plan",
    "Outcome",
    "Display",
    "Planning",
    "LocalData",
    "ProgramCall",
    "Execution",
    "Released",
    "Computation",
    "Blocks",
    "format_value",
]

Blocks = dict[str, list[int]]
"""What one MPC step released: named blocks of signed integers."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


MAX_STATEMENT_CHARS = 20_000
"""The longest SQL statement a request may be read from (it is kept in the audit log)."""


class Request(_Frozen):
    """What an analyst asks; the computation's ``build`` turns it into a :class:`Plan`.

    ``statement`` is the SQL text the request was read from, as submitted (empty for a
    flag query): the audit log keeps it beside the plan, and nothing else reads it, so
    a statement and the equivalent flag query have the same plan.
    """

    kind: str
    dataset: DatasetName
    filter: Filter | None = None
    purpose: str = Field(default="", max_length=500)
    statement: str = Field(default="", max_length=MAX_STATEMENT_CHARS)

    def audit_view(self) -> dict[str, Any]:
        """The request as the audit log records it (the statement only when there is one)."""
        return self.model_dump(mode="json", exclude=set() if self.statement else {"statement"})


class Plan(_Frozen, ABC):
    """A validated request in the form nodes execute and approvers sign.

    Its canonical JSON bytes are what the gateway signs; :attr:`plan_hash`
    identifies exactly this computation (approvals and audit entries name it).
    """

    version: Literal[1] = 1
    kind: str
    analyst: str
    dataset: DatasetName
    schema_hash: str
    filter: Filter | None = None
    purpose: str = ""
    controls: OutputControls = OutputControls()

    def canonical(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json"))

    @cached_property
    def plan_hash(self) -> str:
        return canonical_hash(self.model_dump(mode="json"))

    def identity_key(self) -> str:
        """The plan's identity apart from its output controls (the gateway sets those last)."""
        return canonical_hash({**self.model_dump(mode="json"), "controls": None})

    def with_controls(self, controls: OutputControls) -> Self:
        return type(self).model_validate({**self.model_dump(), "controls": controls.model_dump()})

    def audit_view(self) -> dict[str, Any]:
        """The plan as the audit log records it."""
        return self.model_dump(mode="json")

    def check_schema(self, schema: DatasetSchema) -> None:
        """Refuse a plan for another dataset or schema, or whose filter does not fit."""
        if self.dataset != schema.name or self.schema_hash != schema.schema_hash:
            raise IntegrityError(f"the plan is not for this schema of {schema.name!r}")
        if self.filter is not None:
            validate_filter(schema, self.filter)

    @abstractmethod
    def declaration(self) -> Declaration:
        """How the plan uses columns and what it releases, for policies to check."""

    @abstractmethod
    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        """Who learns what, one sentence each (the dry run's disclosure section)."""


@dataclass(frozen=True)
class Display:
    """A released outcome as a table a person reads: every cell already text."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()  # lines printed after the table (or alone, without columns)
    about: str = ""  # what to add to the title, e.g. "model ab12cd34"


class Outcome(ABC):
    """A released result, decoded: exactly what the plan declares, nothing else."""

    kind: ClassVar[str]

    @abstractmethod
    def released(self) -> dict[str, Any]:
        """Everything released, canonical JSON (exact values as text)."""

    @abstractmethod
    def withheld(self) -> list[dict[str, Any]]:
        """What the output controls withheld, for the audit log and the analyst."""

    @abstractmethod
    def records(self) -> list[dict[str, Any]]:
        """One dict per released row (a group, an entity, a level, a bin)."""

    @abstractmethod
    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        """Structured data a script can compare (numbers, lists, objects; exact values as text)."""

    @abstractmethod
    def display(self, request: Request | None = None) -> Display:
        """The outcome as a table; ``request`` (when the caller has it) adds labels."""

    def to_pandas(self) -> Any:
        """:meth:`records` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.records())


@dataclass(frozen=True)
class Released:
    """A released outcome with its query's identity, timing and the controls it passed."""

    query_id: str
    plan_hash: str
    dataset: str
    outcome: Outcome
    sequence: int
    rounds: int
    total_ms: float
    mpc_ms: float
    local_ms: float
    controls: OutputControls
    request: Request | None = None  # what was asked, when the receiver has it
    lane: Lane = "short"  # the MPC lane it ran in: ``sequence`` counts in that lane

    @property
    def kind(self) -> str:
        return self.outcome.kind

    def records(self) -> list[dict[str, Any]]:
        return self.outcome.records()

    def to_pandas(self) -> Any:
        return self.outcome.to_pandas()

    def to_json(self) -> dict[str, Any]:
        """The outcome as structured data, with the query's identity and timing."""
        return {
            "query_id": self.query_id,
            "plan_hash": self.plan_hash,
            "dataset": self.dataset,
            **self.outcome.to_json(self.request),
            "controls": self.controls.model_dump(),
            "total_ms": self.total_ms,
        }


@dataclass(frozen=True)
class Planning:
    """What the gateway knows when it plans a request."""

    analyst: str
    parties: int
    models: ModelBook


@dataclass(frozen=True)
class LocalData:
    """A node's view for one order: its table ``data`` (integer encoding) and its key.

    ``holds_data`` is False at a helper node: its table is empty, so its inputs are
    zeros and it is present nowhere; it adds no noise under DP either (it has no row to
    protect), so its zeros stay exact and never count as an institution. ``opened``
    holds, per earlier step of the same query, the blocks its MPC opened to the nodes
    only (a search's brackets): the node kept them, the driver never saw them.
    """

    cursor: QueryCursor
    schema: DatasetSchema
    where: Where  # the plan's filter over ``data``
    parties: int
    node: str
    node_key_pem: bytes
    holds_data: bool = True
    opened: tuple[Blocks, ...] = ()


@dataclass(frozen=True)
class ProgramCall:
    """An MPC program of :mod:`mpc_gateway.mpc.programs` (``module:function``) and its arguments."""

    program: str
    args: dict[str, Any]


StepRunner = Callable[[dict[str, Any]], Blocks]
"""Runs one MPC step (one order at every node, with this step's ``step`` data).

It returns the step's visible blocks (:meth:`Computation.visible`), opened; the
others stay sealed to the receiver."""


@dataclass(frozen=True)
class Execution:
    """What the driver of a plan has: the schema, the parties, the models, and the MPC."""

    schema: DatasetSchema
    parties: int
    models: ModelBook
    run_step: StepRunner


R = TypeVar("R", bound=Request)
P = TypeVar("P", bound=Plan)
Out = TypeVar("Out", bound=Outcome)


class Computation(ABC, Generic[R, P, Out]):
    """One kind of joint question, end to end (see the module docstring)."""

    kind: ClassVar[str]
    request_type: ClassVar[type[Request]]
    plan_type: ClassVar[type[Plan]]
    outcome_type: ClassVar[type[Outcome]]
    lane: ClassVar[Lane] = "short"
    outputs: ClassVar[tuple[str, ...]] = ()
    """The risk outputs its plans may declare (the policy files' vocabulary)."""

    def build(self, request: R, schema: DatasetSchema, planning: Planning) -> P:
        """Validate ``request`` against ``schema``; InvalidQueryError naming what does not fit.

        By default the plan is the request's fields with the analyst and the schema's
        hash, checked as every node will check it; a computation whose plan holds more
        (a group domain, a registered model) builds its own.
        """
        fields = request.model_dump(exclude={"kind", "statement"})
        given = {**fields, "analyst": planning.analyst, "schema_hash": schema.schema_hash}
        plan = cast(P, self.plan_type.model_validate(given))
        self.check(plan, schema, planning.parties)
        return plan

    @abstractmethod
    def check(self, plan: P, schema: DatasetSchema, parties: int) -> None:
        """At a node: refuse a plan that this node does not derive from its own schema."""

    @abstractmethod
    def local_inputs(self, plan: P, step: dict[str, Any], data: LocalData) -> ProgramCall:
        """At a node: its fixed-shape inputs for this step, and the program to run."""

    def visible(self, plan: P) -> frozenset[str]:
        """The blocks the driver opens to steer the plan; all others are sealed to the receiver.

        Only what a computation must see to go on (a policy check's bit, a search's
        brackets) may be named here: the gateway learns these values.
        """
        return frozenset()

    def run(self, plan: P, execution: Execution) -> Blocks:
        """At the gateway: drive the plan's MPC step(s).

        Returns the public blocks :meth:`decode` needs besides the sealed result (by
        default none: one step, whose blocks are all sealed to the receiver).
        """
        execution.run_step({})
        return {}

    @abstractmethod
    def decode(self, plan: P, blocks: Blocks, schema: DatasetSchema, parties: int) -> Out:
        """At the receiver: the outcome from the opened result and the driver's public blocks."""

    def noise(self, plan: P, schema: DatasetSchema, parties: int) -> list[NoisyRelease]:
        """What the plan releases with noise under differential privacy (none without)."""
        return []

    def steps(self, plan: P, schema: DatasetSchema, parties: int) -> int:
        """How many MPC steps (orders at every node) the plan takes; each counts on daily limits."""
        return 1

    @abstractmethod
    def request_from_proto(self, message: Any, common: dict[str, Any]) -> R:
        """The request from its job message; ``common`` holds dataset, filter and purpose."""

    @abstractmethod
    def job_message(self, *args: Any, **fields: Any) -> Message:
        """The job message from plain values, as a client sends them (the gateway validates).

        Dataset, filter and purpose travel beside it in the request.
        """


def format_value(value: Any) -> str:
    """A released value as a person reads it: ``-`` for none, thousands separated."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"
    if isinstance(value, Decimal | int):
        return f"{value:,}"
    return str(value)
