"""The rules of a dataset's ``privacy`` section: the mechanism, and what the budgets have left.

A plan declares, through its computation, whether noise can cover what it
releases (``dp_blocker``); its controls carry the cost per query. The budgets a
query spends from are the policy's (:meth:`PrivacyPolicy.charges`); what they
already spent comes from the caller's ledger, so the rules stay pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from mpc_gateway.policy.context import Context, check
from mpc_gateway.policy.decision import RuleCheck
from mpc_gateway.policy.declaration import Governed
from mpc_gateway.policy.models import Policy
from mpc_gateway.privacy.ledger import Charge

__all__ = ["privacy_checks", "privacy_charges"]


def privacy_checks(ctx: Context, spent: Mapping[str, Decimal] | None) -> list[RuleCheck]:
    """Whether the plan can be released with noise, and whether the budgets can pay for it."""
    rules = ctx.rules.privacy
    if rules is None:
        return []
    blocker = ctx.declared.dp_blocker
    requires = f"{ctx.who} requires differential privacy on {ctx.dataset!r}"
    checks = [
        check(
            "privacy.mechanism",
            blocker is None,
            f"{requires}, which this computation supports"
            if blocker is None
            else f"{requires}, and {blocker}",
        )
    ]
    cost = ctx.plan.controls.dp_rho
    if spent is None or cost is None:  # the cost is known once the plan's controls are set
        return checks
    for charge in rules.charges(ctx.owner, ctx.dataset, ctx.caller, cost):
        left = max(charge.budget - spent.get(charge.holder, Decimal(0)), Decimal(0))
        message = (
            f"{ctx.who} gives {charge.who} a budget of ρ {charge.budget} per "
            f"{rules.period} on {ctx.dataset!r}; {left} is left and the query costs {cost}"
        )
        checks.append(check("privacy.budget", cost <= left, message))
    return checks


def privacy_charges(policies: Iterable[Policy], plan: Governed, analyst: str) -> list[Charge]:
    """What ``plan`` spends of every budget these policies set for its dataset and analyst."""
    cost = plan.controls.dp_rho
    if cost is None:
        return []
    return [
        charge
        for policy in policies
        if (rules := policy.datasets.get(plan.dataset)) is not None and rules.privacy is not None
        for charge in rules.privacy.charges(policy.owner, plan.dataset, analyst, cost)
    ]
