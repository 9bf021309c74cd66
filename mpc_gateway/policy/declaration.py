"""What a plan declares for policies to check: the vocabulary between computations and policy.

The policy engine knows no computation by name. Every plan declares, in these
terms, how it uses the dataset's columns and what it releases; the engine checks
those declarations against an owner's rules. A computation that reads a column
in a new way declares it here, and the policy rules apply to it unchanged.

* :class:`ColumnUse` -- a column used in an aggregate (with its function), to
  group by, or to filter (filters are declared by the plan's filter tree itself);
* :class:`RiskUse` -- a risk computation, governed by the dataset's ``risk``
  section: what it releases (``outputs``), the entity features and the model
  owner a scoring model brings, the numeric columns it reads, the levels of
  their distribution it releases (quantiles), and the entity batch it names;
* :class:`TrainingUse` -- a model trained on the dataset, governed by its
  ``training`` section: the label, the features, the model family, what the
  result releases and what the nodes learn on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, Self

if TYPE_CHECKING:
    from mpc_gateway.policy.controls import OutputControls
    from mpc_gateway.query.filters import FilterNode

__all__ = [
    "ColumnUse",
    "EntityBatch",
    "RiskUse",
    "TrainingUse",
    "Declaration",
    "Governed",
    "Vocabulary",
]

Use = Literal["aggregate", "group_by", "filter"]


@dataclass(frozen=True)
class ColumnUse:
    """One column used one way; ``function`` names the aggregate of an ``aggregate`` use."""

    column: str
    use: Use
    function: str | None = None

    @property
    def label(self) -> str:
        return f"{self.function}({self.column})"


@dataclass(frozen=True)
class EntityBatch:
    """A batch of entity keys: the key column it names them by, and how many distinct keys."""

    key_column: str
    size: int


@dataclass(frozen=True)
class RiskUse:
    """What a risk computation brings to the dataset's ``risk`` rules.

    ``levels`` are the levels in (0, 1] of the distribution of ``columns`` it
    releases (a quantile's): near 0 or 1 they are the column's minimum or maximum.
    """

    outputs: tuple[str, ...]
    features: tuple[str, ...] = ()
    model_owner: str | None = None
    columns: tuple[str, ...] = ()
    batch: EntityBatch | None = None
    levels: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class TrainingUse:
    """A model trained on the dataset's rows.

    ``releases_coefficients``: the receiver learns the coefficients;
    ``iterates_to_nodes``: every node learns the intermediate iterates (Newton steps);
    ``min_rows``/``min_institutions``: the minimums the MPC enforces before it trains.
    """

    family: str
    label: str
    features: tuple[str, ...]
    releases_coefficients: bool
    iterates_to_nodes: bool
    min_rows: int
    min_institutions: int


@dataclass(frozen=True)
class Declaration:
    """Every column use (filters aside) and, for a risk computation, its risk use.

    ``dp_blocker`` says why differential privacy cannot cover what the plan
    releases (single values, one output per entity), or is None when it can.
    """

    uses: tuple[ColumnUse, ...] = ()
    risk: RiskUse | None = None
    dp_blocker: str | None = None
    training: TrainingUse | None = None


@dataclass(frozen=True)
class Vocabulary:
    """The names a policy file may use for risk outputs and features (from the computations)."""

    outputs: frozenset[str]
    features: frozenset[str]


class Governed(Protocol):
    """A plan as policies see it: who asks, for what, with which controls, declaring what."""

    @property
    def analyst(self) -> str: ...

    @property
    def dataset(self) -> str: ...

    @property
    def purpose(self) -> str: ...

    @property
    def filter(self) -> FilterNode | None: ...

    @property
    def controls(self) -> OutputControls: ...

    @property
    def plan_hash(self) -> str: ...

    def declaration(self) -> Declaration: ...

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        """Who learns what, one sentence each: the dry run's disclosure section."""
        ...

    def with_controls(self, controls: OutputControls) -> Self: ...

    def identity_key(self) -> str:
        """The plan's identity apart from its output controls (the gateway sets those last)."""
        ...
