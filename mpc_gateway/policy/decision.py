"""Policy decisions: every rule checked, and the decisions of several owners combined.

A :class:`PolicyDecision` is what :func:`~mpc_gateway.policy.evaluate.evaluate`
returns for one owner's policy and one query plan: each rule it checked, with a
sentence a person can act on, the output controls and the approval rule that
apply. :func:`combine` merges the decisions of the consortium and every node:
the query is allowed only if every policy allows it, the strictest output
controls apply, and every required approval is needed. :meth:`CombinedDecision.explain`
is the dry-run report: what was checked, what approvals are needed, and what
will be disclosed to whom.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mpc_gateway.canonical import canonical_hash
from mpc_gateway.errors import BudgetExhaustedError, PolicyDeniedError
from mpc_gateway.policy.models import ApprovalRule, OutputControls
from mpc_gateway.query.plan import QueryPlan
from mpc_gateway.risk.jobs import RiskPlan

AnyPlan = QueryPlan | RiskPlan

__all__ = [
    "RuleCheck",
    "PolicyDecision",
    "RequiredApproval",
    "CombinedDecision",
    "combine",
    "whose",
]

# The rule whose failure is a spent allowance rather than a prohibition.
_BUDGET_RULE = "dataset.daily_limit"


def whose(owner: str) -> str:
    """How a sentence names an owner's policy."""
    return "the consortium's policy" if owner == "consortium" else f"{owner}'s policy"


@dataclass(frozen=True)
class RuleCheck:
    """One rule applied to one query: its id, whether it passed, and why, in words."""

    rule: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "message": self.message}


@dataclass(frozen=True)
class PolicyDecision:
    """One owner's verdict on one query plan."""

    owner: str
    policy_hash: str
    plan: AnyPlan
    checks: tuple[RuleCheck, ...]
    output: OutputControls
    approval: ApprovalRule | None

    @property
    def allowed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[RuleCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def raise_if_denied(self) -> None:
        """Raise for the first failed rule, naming it.

        A spent daily allowance is a :class:`BudgetExhaustedError` (RESOURCE_EXHAUSTED);
        any other failure is a :class:`PolicyDeniedError` (PERMISSION_DENIED).
        """
        if self.allowed:
            return
        first = self.failed[0]
        message = f"refused by rule {first.rule}: {first.message}"
        if first.rule == _BUDGET_RULE:
            raise BudgetExhaustedError(message)
        raise PolicyDeniedError(message)


@dataclass(frozen=True)
class RequiredApproval:
    """An approval one owner's policy requires before the query may run."""

    owner: str
    rule: ApprovalRule

    def describe(self, plan_hash: str) -> str:
        approvers = self.rule.approvers
        if len(approvers) == 1:
            who = approvers[0]
        else:
            count = "all" if self.rule.quorum == len(approvers) else str(self.rule.quorum)
            who = f"{count} of {', '.join(approvers)}"
        return (
            f"{whose(self.owner)} requires {who} to approve query {plan_hash} "
            f"(an approval counts for {self.rule.valid_for_hours} h)"
        )


@dataclass(frozen=True)
class CombinedDecision:
    """The decisions of every policy that governs one query, merged."""

    decisions: tuple[PolicyDecision, ...]
    output: OutputControls
    approvals: tuple[RequiredApproval, ...]

    @property
    def allowed(self) -> bool:
        return all(decision.allowed for decision in self.decisions)

    @cached_property
    def plan(self) -> AnyPlan:
        """The plan to dispatch: the evaluated plan with the combined output controls.

        Its hash is what approvers sign and what the nodes check their policies against.
        """
        evaluated = self.decisions[0].plan
        controls = evaluated.controls.stricter(self.output)
        return type(evaluated).model_validate(
            {**evaluated.model_dump(), "controls": controls.model_dump()}
        )

    def raise_if_denied(self) -> None:
        for decision in self.decisions:
            decision.raise_if_denied()

    def explain(self) -> dict[str, Any]:
        """The dry-run report, JSON-able: rules per owner, approvals, disclosure."""
        plan = self.plan
        return {
            "allowed": self.allowed,
            "dataset": plan.dataset,
            "analyst": plan.analyst,
            "purpose": plan.purpose,
            "plan_hash": plan.plan_hash,
            "refusals": [
                {"owner": d.owner, **check.as_dict()} for d in self.decisions for check in d.failed
            ],
            "policies": [
                {
                    "owner": d.owner,
                    "policy_hash": d.policy_hash,
                    "allowed": d.allowed,
                    "rules": [check.as_dict() for check in d.checks],
                }
                for d in self.decisions
            ],
            "output_controls": self.output.model_dump(),
            "approvals": [
                {
                    "owner": need.owner,
                    "approvers": list(need.rule.approvers),
                    "quorum": need.rule.quorum,
                    "valid_for_hours": need.rule.valid_for_hours,
                    "message": need.describe(plan.plan_hash),
                }
                for need in self.approvals
            ],
            "disclosure": disclosure(plan, self.output, self._institutions()),
        }

    def _institutions(self) -> list[str]:
        return [d.owner for d in self.decisions if d.owner != "consortium"]


def _query_key(plan: AnyPlan) -> str:
    """The plan's identity apart from its output controls (the gateway sets those last)."""
    return canonical_hash({**plan.model_dump(mode="json"), "controls": None})


def combine(decisions: Iterable[PolicyDecision]) -> CombinedDecision:
    """Merge the decisions of every governing policy on one plan.

    Raises ValueError for no decisions or decisions on different queries.
    """
    merged = tuple(decisions)
    if not merged:
        raise ValueError("nothing to combine: a query needs at least one policy decision")
    if len({_query_key(d.plan) for d in merged}) != 1:
        raise ValueError("decisions are about different queries")
    output = merged[0].output
    for decision in merged[1:]:
        output = output.stricter(decision.output)
    approvals = tuple(
        RequiredApproval(d.owner, d.approval) for d in merged if d.approval is not None
    )
    return CombinedDecision(decisions=merged, output=output, approvals=approvals)


# --- what is disclosed, in words -------------------------------------------------------------


def _cells(plan: QueryPlan) -> str:
    return f"per {plan.group_by}" if plan.group_by else "over all matching rows (one cell)"


def _conditions(output: OutputControls) -> str:
    parts = []
    if output.min_cell_count > 1:
        parts.append(f"at least {output.min_cell_count} records")
    if output.min_institutions > 1:
        parts.append(f"{output.min_institutions} institutions")
    text = "for cells with " + " and ".join(parts) if parts else "for every cell"
    if output.dominance_percent is not None:
        text += f" where no institution makes up more than {output.dominance_percent}% of a sum"
    return text


def _rounding(output: OutputControls) -> str:
    parts = []
    if output.round_counts_to > 1:
        parts.append(f"counts rounded to a multiple of {output.round_counts_to}")
    if output.sum_decimals is not None:
        places = output.sum_decimals
        parts.append(
            "sums rounded to whole units" if places == 0 else f"sums rounded to {places} decimals"
        )
    return f" ({'; '.join(parts)})" if parts else ""


def _gateway_learns(plan: QueryPlan) -> str:
    funcs = {agg.func for agg in plan.aggregates}
    extra = []
    if funcs & {"mean", "var", "stddev"}:
        extra.append("the joint counts and sums")
    if funcs & {"var", "stddev"}:
        extra.append("sums of squares")
    base = "the gateway learns the released cells before rounding"
    return base + (f", including {' and '.join(extra)} they are computed from" if extra else "")


def _risk_disclosure(plan: RiskPlan, output: OutputControls) -> tuple[str, str]:
    """(what the analyst receives, what the gateway learns) for a risk plan."""
    job, released = plan.job, " and ".join(plan.outputs)
    if job.kind == "score":
        what = f"{released} of model {job.model.name!r} for {plan.batch_size} entities"
    elif job.kind == "concentration":
        units = f"{plan.batch_size} counterparties" if job.keys else f"each {job.group_by}"
        what = f"{released} over the joint {job.column} of {units}"
    elif job.kind == "quantile":
        levels = ", ".join(str(q) for q in job.levels)
        what = f"the exact joint quantiles {levels} of {job.column}"
    else:
        what = f"joint counts of {job.column} in {len(job.edges) - 1} bins"
    if job.kind in ("quantile", "histogram") and output.min_cell_count > 1:
        what += f" (suppressed below {output.min_cell_count} values)"
    return what, "the gateway learns the same released values"


def disclosure(
    plan: AnyPlan, output: OutputControls, institutions: list[str]
) -> list[dict[str, str]]:
    """Who learns what, one short generic sentence each."""
    nodes = ", ".join(institutions) or "the nodes"
    if isinstance(plan, RiskPlan):
        what, gateway = _risk_disclosure(plan, output)
        return [
            {"to": plan.analyst, "text": f"{plan.analyst} receives {what}"},
            {"to": "gateway", "text": gateway + "; it learns no institution's contribution"},
            {"to": nodes, "text": f"{nodes} learn the request, including any entity keys, "
             + ("and the search path, hence the quantiles, " if plan.job.kind == "quantile"
                else "not the result, ") + "not each other's inputs"},
        ]  # fmt: skip
    labels = ", ".join(agg.label for agg in plan.aggregates)
    analyst = f"{plan.analyst} receives {labels} {_cells(plan)} {_conditions(output)}"
    analyst += _rounding(output)
    if output.evaluated_in_mpc:
        analyst += "; suppressed cells are reported without values, with the rules they failed"
    gateway = _gateway_learns(plan) + "; it learns no institution's contribution"
    return [
        {"to": plan.analyst, "text": analyst},
        {"to": "gateway", "text": gateway},
        {
            "to": nodes,
            "text": f"{nodes} learn the query (it is in the signed order) and its timing, "
            "not the result nor each other's inputs",
        },
    ]
