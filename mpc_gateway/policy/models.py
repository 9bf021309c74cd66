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
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mpc_gateway.canonical import canonical_hash
from mpc_gateway.pki.identity import ROLES
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.privacy.ledger import Charge

__all__ = [
    "USES",
    "AGGREGATE_FUNCS",
    "ColumnPolicy",
    "TrainingPolicy",
    "OutputControls",
    "ApprovalRule",
    "RiskPolicy",
    "PrivacyPolicy",
    "PseudonymPolicy",
    "OrganisationBudget",
    "EVERYONE",
    "DatasetPolicy",
    "Policy",
    "MAX_BATCH",
    "MAX_WATCHLIST",
    "normalise_purpose",
    "principal_matches",
]

Use = Literal["aggregate", "group_by", "filter", "secret_compare"]
USES: tuple[str, ...] = ("aggregate", "group_by", "filter", "secret_compare")
AggFunc = Literal["count", "sum", "mean", "var", "stddev", "min", "max"]
AGGREGATE_FUNCS: tuple[str, ...] = ("count", "sum", "mean", "var", "stddev", "min", "max")

MAX_BATCH = 100_000
"""Most entity keys one batch may carry (its shape is public and fixed)."""

MAX_WATCHLIST = 1_000_000
"""Most keys a watchlist overlap check may carry: its answer is one number, not one per key."""

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
QuantileLevel = Annotated[Decimal, Field(gt=0, lt=1)]


class RiskPolicy(_Frozen):
    """Which risk computations may run over the dataset. Without this section, none may.

    ``outputs`` are what a risk job may release (a scoring model's scores, decision
    bits or count; concentration flags, HHI or HHI flag; quantiles; histograms);
    ``features`` the cross-institution features a scoring model may use;
    ``model_owners`` whose registered models may score; ``keys`` the entity key
    columns batches may name entities by; ``columns`` the numeric
    columns whose quantiles, histograms or per-unit sums (concentration) may be
    computed; ``min_batch`` the fewest distinct entities a scoring or
    concentration batch may name (small batches single entities out);
    ``quantile_levels`` the lowest and highest quantile level (inclusive) a job
    may release of a column whose ``min`` and ``max`` aggregates are not both
    allowed (levels near 0 or 1 are the minimum and the maximum).
    """

    outputs: Annotated[tuple[RiskName, ...], AfterValidator(_unique)] = Field(min_length=1)
    features: Annotated[tuple[RiskName, ...], AfterValidator(_unique)] = ()
    model_owners: Annotated[tuple[Principal, ...], AfterValidator(_unique)] = ()
    keys: Annotated[tuple[str, ...], AfterValidator(_unique)] = ()
    columns: Annotated[tuple[str, ...], AfterValidator(_unique)] = ()
    min_batch: int = Field(default=100, ge=1, le=MAX_BATCH)
    quantile_levels: tuple[QuantileLevel, QuantileLevel] = (Decimal("0.05"), Decimal("0.95"))

    @model_validator(mode="after")
    def _level_range(self) -> RiskPolicy:
        low, high = self.quantile_levels
        if low > high:
            raise ValueError(f"quantile_levels: the lowest level {low} is above the highest {high}")
        return self


class TrainingPolicy(_Frozen):
    """Joint model training on a dataset: who, on which columns, releasing what.

    ``release_coefficients`` False: no training job may release its coefficients
    (the only release offered today, so it refuses training). ``iterates_to_nodes``:
    whether the nodes may learn the intermediate iterates (logistic regression's
    Newton steps need them). ``min_rows``/``min_institutions``: the least a job
    must require of the joint rows (enforced inside the MPC).
    """

    principals: Annotated[tuple[Principal, ...], AfterValidator(_unique)] = Field(min_length=1)
    families: Annotated[tuple[Literal["linear", "logistic"], ...], AfterValidator(_unique)] = (
        "linear",
        "logistic",
    )
    labels: Annotated[tuple[str, ...], AfterValidator(_unique)] = Field(min_length=1)
    features: Annotated[tuple[str, ...], AfterValidator(_unique)] = Field(min_length=1)
    release_coefficients: bool = True
    iterates_to_nodes: bool = False
    min_rows: int = Field(default=100, ge=1)
    min_institutions: int = Field(default=2, ge=1)


class OrganisationBudget(_Frozen):
    """A budget the analysts of one organisation share (those ``principals`` match)."""

    principals: Annotated[tuple[Principal, ...], AfterValidator(_unique)] = Field(min_length=1)
    rho: Decimal = Field(gt=0, le=10000)


EVERYONE = "*"
"""The holder of the budget every analyst shares."""


class PrivacyPolicy(_Frozen):
    """Differential privacy the owner requires on a dataset, and its budgets (zCDP ρ).

    Every query's released numbers carry noise calibrated so that the query costs
    at most ``rho_per_query``. Per ``period`` (UTC), an analyst may spend
    ``rho_per_analyst``, the analysts of each listed organisation together that
    organisation's ``rho``, and all analysts together ``rho_total`` (if set); a
    query spends from every budget that covers its analyst. Costs add up (zCDP
    composes by adding); ``docs/privacy.md`` says what a budget protects.
    """

    rho_per_query: Decimal = Field(gt=0, le=10)
    rho_per_analyst: Decimal = Field(gt=0, le=1000)
    rho_total: Decimal | None = Field(default=None, gt=0, le=10000)
    organisations: dict[str, OrganisationBudget] = {}
    period: Literal["day", "week", "month"] = "month"

    @model_validator(mode="after")
    def _affordable(self) -> PrivacyPolicy:
        if self.rho_per_query > self.rho_per_analyst:
            raise ValueError("rho_per_query is more than an analyst's whole budget")
        if self.rho_total is not None and self.rho_total < self.rho_per_analyst:
            raise ValueError("rho_total is less than one analyst's budget")
        for name, org in self.organisations.items():
            if org.rho < self.rho_per_query:
                raise ValueError(f"organisation {name!r}'s budget is less than one query")
        return self

    def charges(self, owner: str, dataset: str, analyst: str, cost: Decimal) -> list[Charge]:
        """Every budget a query by ``analyst`` that costs ``cost`` spends from."""
        holders = [(analyst, analyst, self.rho_per_analyst)]
        holders += [
            (f"organisation:{name}", f"the analysts of {name}", org.rho)
            for name, org in sorted(self.organisations.items())
            if any(principal_matches(p, analyst) for p in org.principals)
        ]
        if self.rho_total is not None:
            holders.append((EVERYONE, "all analysts together", self.rho_total))
        return [
            Charge(owner, dataset, holder, who, self.period, rho, cost)
            for holder, who, rho in holders
        ]


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
    privacy: PrivacyPolicy | None = None
    training: TrainingPolicy | None = None

    @property
    def required_controls(self) -> OutputControls:
        """The controls every plan must carry: ``output``, the minimum batch, the privacy cost.

        ``min_entities`` is the risk section's ``min_batch`` (entities the nodes
        know, counted inside the MPC); ``dp_rho`` the privacy section's cost per query.
        """
        update: dict[str, object] = {}
        if self.risk is not None:
            update["min_entities"] = self.risk.min_batch
        if self.privacy is not None:
            update["dp_rho"] = self.privacy.rho_per_query
        return self.output.model_copy(update=update) if update else self.output

    @field_validator("output")
    @classmethod
    def _privacy_in_its_section(cls, value: OutputControls) -> OutputControls:
        if value.dp_rho is not None:
            raise ValueError("set differential privacy in the dataset's privacy section")
        if value.min_entities != 1:
            raise ValueError("set the minimum batch in the dataset's risk section (min_batch)")
        return value

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


class PseudonymPolicy(_Frozen):
    """Who may have national ids pseudonymised under the nodes' joint key, why, how many a day.

    Every evaluation is one guess at a national id for whoever asks, so the daily
    allowance is what bounds an attempt to enumerate national ids through the nodes.
    A policy without this section allows no evaluations.
    """

    principals: Annotated[tuple[Principal, ...], AfterValidator(_unique)] = Field(min_length=1)
    purposes: Purposes = Field(min_length=1)
    max_per_day: int = Field(default=10_000, ge=1, le=100_000_000)
    # a principal's own allowance (an institution loading its customers as its node)
    max_per_day_for: dict[Principal, Annotated[int, Field(ge=1, le=100_000_000)]] = {}

    def limit(self, who: str) -> int:
        """How many ids a day ``who`` may have evaluated: its own allowance, or the default."""
        own = [n for p, n in self.max_per_day_for.items() if principal_matches(p, who)]
        return min(own, default=self.max_per_day)

    def refusal(self, owner: str, who: str, purpose: str) -> str | None:
        """Why ``owner``'s policy refuses ``who`` evaluations for ``purpose``; None if it allows."""
        if not any(principal_matches(p, who) for p in self.principals):
            return (
                f"refused by rule pseudonyms.principals: {owner}'s policy allows {who} no "
                "pseudonym evaluations"
            )
        if normalise_purpose(purpose) not in {normalise_purpose(p) for p in self.purposes}:
            return (
                f"refused by rule pseudonyms.purpose: {owner}'s policy allows pseudonym "
                f"evaluations for {', '.join(self.purposes)}, not for {purpose[:100]!r}"
            )
        return None


class Policy(_Frozen):
    """One owner's policy: an institution's (its node's) or the consortium's."""

    version: Literal[1] = 1
    owner: str = Field(pattern=rf"^{_NAME}$")
    datasets: dict[str, DatasetPolicy] = {}
    pseudonyms: PseudonymPolicy | None = None

    def pseudonym_refusal(self, who: str, purpose: str) -> str | None:
        """Why this policy refuses ``who`` pseudonym evaluations for ``purpose``, or None."""
        if self.pseudonyms is None:
            return f"refused by rule pseudonyms.allowed: {self.owner}'s policy allows none"
        return self.pseudonyms.refusal(self.owner, who, purpose)

    @cached_property
    def version_hash(self) -> str:
        """Hex SHA-256 of the canonical validated content: changes with any change."""
        return canonical_hash(self.model_dump(mode="json"))
