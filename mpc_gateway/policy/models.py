"""Policy files: what an institution (or the consortium) lets others compute on its data.

A :class:`Policy` is one owner's rules, per dataset: who may query it, for which
purposes, until when, how often, which columns may be used how, which output
controls every released cell must pass, and whether a person must approve each
query. Everything not allowed is denied: a dataset or a column the policy does
not mention cannot be used at all.

Policies are TOML files validated by pydantic models that forbid unknown keys, so
a typo is a :class:`~mpc_gateway.errors.ConfigurationError` naming the field.
A policy is identified by :attr:`Policy.version_hash`, the canonical hash of its
validated content. See ``docs/policy.md`` for the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mpc_gateway.canonical import canonical_hash
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.pki.identity import ROLES
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.policy.declaration import Vocabulary
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn, NumericColumn

__all__ = [
    "USES",
    "AGGREGATE_FUNCS",
    "ColumnPolicy",
    "OutputControls",
    "ApprovalRule",
    "RiskPolicy",
    "DatasetPolicy",
    "Policy",
    "load_policy",
    "check_against_schema",
    "MAX_BATCH",
    "normalise_purpose",
    "principal_matches",
]

Use = Literal["aggregate", "group_by", "filter", "secret_compare"]
USES: tuple[str, ...] = ("aggregate", "group_by", "filter", "secret_compare")
AggFunc = Literal["count", "sum", "mean", "var", "stddev", "min", "max"]
AGGREGATE_FUNCS: tuple[str, ...] = ("count", "sum", "mean", "var", "stddev", "min", "max")

MAX_BATCH = 100_000
"""Most entity keys one batch may carry (its shape is public and fixed)."""

_NAME = r"[a-z0-9][a-z0-9._-]{0,62}"
_OWNER = re.compile(_NAME)
_PRINCIPAL = re.compile(rf"(?P<role>[a-z]+)/(?P<name>{_NAME}|\*)")
_APPROVER = re.compile(rf"approver/{_NAME}")


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


def _principal(text: str) -> str:
    match = _PRINCIPAL.fullmatch(text)
    if not match or match["role"] not in ROLES:
        raise ValueError(
            f"{text!r} is not a principal: use 'role/name' or 'role/*' with a role of {ROLES}"
        )
    return text


def _approver(text: str) -> str:
    if not _APPROVER.fullmatch(text):
        raise ValueError(f"{text!r} is not an approver identity: use 'approver/<name>'")
    return text


def normalise_purpose(text: str) -> str:
    """A purpose as compared: trimmed, inner whitespace collapsed, case-folded."""
    return " ".join(text.split()).casefold()


def _purpose(text: str) -> str:
    if not normalise_purpose(text):
        raise ValueError("a purpose must not be empty")
    return text


def _distinct_purposes(values: tuple[str, ...]) -> tuple[str, ...]:
    if len({normalise_purpose(p) for p in values}) != len(values):
        raise ValueError("purposes must not repeat (compared ignoring case and spacing)")
    return values


Principal = Annotated[str, AfterValidator(_principal)]
Approver = Annotated[str, AfterValidator(_approver)]
Purpose = Annotated[str, Field(max_length=200), AfterValidator(_purpose)]
Purposes = Annotated[tuple[Purpose, ...], AfterValidator(_distinct_purposes)]


def principal_matches(pattern: str, identity: str) -> bool:
    """Whether ``identity`` ("role/name") is covered by ``pattern`` ("role/name" or "role/*")."""
    role, _, name = pattern.partition("/")
    their_role, _, their_name = identity.partition("/")
    return role == their_role and name in ("*", their_name)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnPolicy(_Frozen):
    """How one column may be used. A column a policy does not list cannot be used."""

    uses: Annotated[tuple[Use, ...], AfterValidator(_unique)] = ()
    aggregates: Annotated[tuple[AggFunc, ...], AfterValidator(_unique)] = ()
    identifying: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ColumnPolicy:
        if "aggregate" in self.uses and not self.aggregates:
            raise ValueError("uses include 'aggregate': list the allowed aggregates too")
        if self.aggregates and "aggregate" not in self.uses:
            raise ValueError("aggregates are listed but uses do not include 'aggregate'")
        if self.identifying and "group_by" in self.uses:
            raise ValueError("an identifying column cannot allow group_by (one cell per entity)")
        return self


class ApprovalRule(_Frozen):
    """Queries on the dataset wait for ``quorum`` of ``approvers`` to sign their plan hash.

    With ``purposes`` set, only queries for one of those purposes need approval.
    An approval counts for at most ``valid_for_hours`` after it was issued.
    """

    required: bool = True
    approvers: Annotated[tuple[Approver, ...], AfterValidator(_unique)] = Field(min_length=1)
    quorum: int = Field(default=1, ge=1)
    valid_for_hours: int = Field(default=24, ge=1, le=24 * 365)
    purposes: Purposes | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _reachable(self) -> ApprovalRule:
        if self.quorum > len(self.approvers):
            raise ValueError(
                f"quorum {self.quorum} is more than the {len(self.approvers)} approvers listed"
            )
        return self

    def applies_to(self, purpose: str) -> bool:
        if not self.required:
            return False
        if self.purposes is None:
            return True
        return normalise_purpose(purpose) in {normalise_purpose(p) for p in self.purposes}


RiskName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class RiskPolicy(_Frozen):
    """Which risk computations may run over the dataset. Without this section, none may.

    ``outputs`` are what a risk job may release (a scoring model's scores, decision
    bits or count; concentration flags, HHI or HHI flag; quantiles; histograms);
    ``features`` the cross-institution features a scoring model may use;
    ``model_owners`` whose registered models may score; ``keys`` the entity key
    columns batches may name entities by; ``columns`` the numeric
    columns whose quantiles, histograms or per-unit sums (concentration) may be
    computed; ``min_batch`` the fewest distinct entities a scoring or
    concentration batch may name (small batches single entities out).
    """

    outputs: Annotated[tuple[RiskName, ...], AfterValidator(_unique)] = Field(min_length=1)
    features: Annotated[tuple[RiskName, ...], AfterValidator(_unique)] = ()
    model_owners: Annotated[tuple[Principal, ...], AfterValidator(_unique)] = ()
    keys: Annotated[tuple[str, ...], AfterValidator(_unique)] = ()
    columns: Annotated[tuple[str, ...], AfterValidator(_unique)] = ()
    min_batch: int = Field(default=100, ge=1, le=MAX_BATCH)


class DatasetPolicy(_Frozen):
    """The rules for one dataset."""

    principals: Annotated[tuple[Principal, ...], AfterValidator(_unique)] = Field(min_length=1)
    purposes: Purposes = Field(min_length=1)
    expires: date | datetime | None = None
    max_queries_per_day: int | None = Field(default=None, ge=1)
    columns: dict[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")], ColumnPolicy] = {}
    output: OutputControls = OutputControls()
    approval: ApprovalRule | None = None
    risk: RiskPolicy | None = None

    @field_validator("expires")
    @classmethod
    def _utc(cls, value: date | datetime | None) -> date | datetime | None:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    @property
    def expires_at(self) -> datetime | None:
        """The first instant the policy no longer applies (a date is valid all that day, UTC)."""
        if self.expires is None or isinstance(self.expires, datetime):
            return self.expires
        return datetime.combine(self.expires + timedelta(days=1), time(), tzinfo=UTC)

    def allows_purpose(self, purpose: str) -> bool:
        return normalise_purpose(purpose) in {normalise_purpose(p) for p in self.purposes}


class Policy(_Frozen):
    """One owner's policy: an institution's (its node's) or the consortium's."""

    version: Literal[1] = 1
    owner: str = Field(pattern=rf"^{_NAME}$")
    datasets: dict[str, DatasetPolicy] = {}

    @cached_property
    def version_hash(self) -> str:
        """Hex SHA-256 of the canonical validated content: changes with any change."""
        return canonical_hash(self.model_dump(mode="json"))


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _explain(err: ValidationError) -> str:
    return "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in err.errors())


def _misuse(column: Any, policy: ColumnPolicy) -> str | None:
    if isinstance(column, KeyColumn) and policy.uses:
        return "is an entity key and cannot be aggregated, filtered on or grouped by"
    if isinstance(column, CategoricalColumn) and "aggregate" in policy.uses:
        return "is categorical and cannot be aggregated (count needs no column)"
    if isinstance(column, NumericColumn) and "group_by" in policy.uses:
        return "is numeric and cannot be grouped by"
    return None


def _check_vocabulary(where: str, risk: RiskPolicy, vocabulary: Vocabulary) -> None:
    for output in risk.outputs:
        if output not in vocabulary.outputs:
            known = ", ".join(sorted(vocabulary.outputs))
            raise ConfigurationError(
                f"{where}.outputs: unknown risk output {output!r}; known: {known}"
            )
    for feature in risk.features:
        if feature not in vocabulary.features:
            known = ", ".join(sorted(vocabulary.features))
            raise ConfigurationError(
                f"{where}.features: unknown risk feature {feature!r}; known: {known}"
            )


def check_against_schema(
    policy: Policy, schemas: Mapping[str, DatasetSchema], vocabulary: Vocabulary | None = None
) -> None:
    """Raise ConfigurationError if ``policy`` names a dataset, column, output or feature
    that the schemas (or the computations' ``vocabulary``) lack.

    A policy that mentions an unknown column would silently deny (default deny);
    checking at load time turns a typo into an error instead.
    """
    for dataset, rules in policy.datasets.items():
        if dataset not in schemas:
            raise ConfigurationError(
                f"{policy.owner}'s policy names dataset {dataset!r}, which has no schema"
            )
        columns = schemas[dataset].columns
        for name, column_policy in rules.columns.items():
            where = f"datasets.{dataset}.columns.{name}"
            if name not in columns:
                raise ConfigurationError(f"{where}: dataset {dataset!r} has no column {name!r}")
            problem = _misuse(columns[name], column_policy)
            if problem:
                raise ConfigurationError(f"{where}: column {name!r} {problem}")
        for name in rules.risk.columns if rules.risk else ():
            if not isinstance(columns.get(name), NumericColumn):
                raise ConfigurationError(
                    f"datasets.{dataset}.risk.columns: {name!r} is not a numeric column"
                )
        for name in rules.risk.keys if rules.risk else ():
            if not isinstance(columns.get(name), KeyColumn):
                raise ConfigurationError(
                    f"datasets.{dataset}.risk.keys: {name!r} is not an entity key column"
                )
        if rules.risk is not None and vocabulary is not None:
            _check_vocabulary(f"datasets.{dataset}.risk", rules.risk, vocabulary)


def load_policy(
    path: Path,
    schemas: Mapping[str, DatasetSchema] | None = None,
    vocabulary: Vocabulary | None = None,
) -> Policy:
    """Read a policy TOML file; any mistake is a ConfigurationError naming the field.

    With ``schemas`` (dataset name to schema), also :func:`check_against_schema`,
    with the risk outputs and features the computations know (``vocabulary``).
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"policy file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"policy file {path} is not valid TOML: {err}") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise ConfigurationError(f"policy file {path} is invalid: {_explain(err)}") from None
    if schemas is not None:
        try:
            check_against_schema(policy, schemas, vocabulary)
        except ConfigurationError as err:
            raise ConfigurationError(f"policy file {path}: {err.public_message}") from None
    return policy
