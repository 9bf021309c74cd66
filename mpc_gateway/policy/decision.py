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
from typing import Any, Generic, TypeVar

from mpc_gateway.errors import BudgetExhaustedError, PolicyDeniedError
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.policy.declaration import Governed
from mpc_gateway.policy.models import ApprovalRule

__all__ = [
    "RuleCheck",
    "PolicyDecision",
    "RequiredApproval",
    "CombinedDecision",
    "combine",
    "whose",
]

G = TypeVar("G", bound=Governed)

# The rule whose failure is a spent allowance rather than a prohibition.
_ALLOWANCES = ("dataset.daily_limit", "privacy.budget")


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
class PolicyDecision(Generic[G]):
    """One owner's verdict on one query plan."""

    owner: str
    policy_hash: str
    plan: G
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

        A spent allowance (daily queries, privacy budget) is a
        :class:`BudgetExhaustedError` (RESOURCE_EXHAUSTED);
        any other failure is a :class:`PolicyDeniedError` (PERMISSION_DENIED).
        """
        if self.allowed:
            return
        first = self.failed[0]
        message = f"refused by rule {first.rule}: {first.message}"
        if first.rule in _ALLOWANCES:
            raise BudgetExhaustedError(message, rule=first.rule)
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
class CombinedDecision(Generic[G]):
    """The decisions of every policy that governs one query, merged."""

    decisions: tuple[PolicyDecision[G], ...]
    output: OutputControls
    approvals: tuple[RequiredApproval, ...]

    @property
    def allowed(self) -> bool:
        return all(decision.allowed for decision in self.decisions)

    @cached_property
    def plan(self) -> G:
        """The plan to dispatch: the evaluated plan with the combined output controls.

        Its hash is what approvers sign and what the nodes check their policies against.
        The controls are exactly the strictest of every policy's: an option a policy
        must opt into (``report_rules``) holds only if every policy opts in.
        """
        return self.decisions[0].plan.with_controls(self.output)

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
            "output_controls": self.output.model_dump(mode="json"),
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
            "disclosure": plan.disclosure(self._institutions()),
        }

    def _institutions(self) -> list[str]:
        return [d.owner for d in self.decisions if d.owner != "consortium"]


def combine(decisions: Iterable[PolicyDecision[G]]) -> CombinedDecision[G]:
    """Merge the decisions of every governing policy on one plan.

    Raises ValueError for no decisions or decisions on different queries.
    """
    merged = tuple(decisions)
    if not merged:
        raise ValueError("nothing to combine: a query needs at least one policy decision")
    if len({d.plan.identity_key() for d in merged}) != 1:
        raise ValueError("decisions are about different queries")
    output = merged[0].output
    for decision in merged[1:]:
        output = output.stricter(decision.output)
    approvals = tuple(
        RequiredApproval(d.owner, d.approval) for d in merged if d.approval is not None
    )
    return CombinedDecision(decisions=merged, output=output, approvals=approvals)
