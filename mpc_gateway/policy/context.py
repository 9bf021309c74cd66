"""What every rule of one policy evaluation sees, and how a rule reports its check."""

from __future__ import annotations

from mpc_gateway.policy.decision import RuleCheck, whose
from mpc_gateway.policy.declaration import Declaration, Governed
from mpc_gateway.policy.models import DatasetPolicy, Policy

__all__ = ["Context", "check", "may"]


class Context:
    """What every rule of one evaluation needs."""

    def __init__(self, policy: Policy, rules: DatasetPolicy, plan: Governed, caller: str):
        self.who = whose(policy.owner)
        self.owner = policy.owner
        self.rules = rules
        self.plan = plan
        self.declared: Declaration = plan.declaration()
        self.caller = caller
        self.dataset = plan.dataset


def _check(rule: str, passed: bool, message: str) -> RuleCheck:
    return RuleCheck(rule=rule, passed=passed, message=message)


def check(rule: str, passed: bool, message: str) -> RuleCheck:
    return RuleCheck(rule=rule, passed=passed, message=message)


def may(ctx: Context, rule: str, passed: bool, verb: str, what: str) -> RuleCheck:
    """'<policy> <verb>s <what>', or '<policy> does not <verb> <what>'."""
    return check(rule, passed, f"{ctx.who} {verb + 's' if passed else 'does not ' + verb} {what}")
