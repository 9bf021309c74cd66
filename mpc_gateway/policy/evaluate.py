"""Evaluate one owner's policy on one query plan: pure, deterministic, no I/O.

:func:`evaluate` checks every rule of the policy (see ``docs/policy.md`` for the
rule ids) and returns a :class:`~mpc_gateway.policy.decision.PolicyDecision`
listing each check with a sentence. Everything not allowed is denied: a dataset
or column the policy does not mention fails its check. The caller supplies the
clock (``now``) and how many queries the analyst already ran today
(:class:`~mpc_gateway.policy.ledger.UsageLedger`), so the result depends on its
arguments only.

The gateway evaluates the consortium's and every node's policy on the plan it
built, then :func:`~mpc_gateway.policy.decision.combine` fixes the output
controls; a node re-evaluates its own policy on the signed order with
``check_plan_controls=True``, so an order carrying weaker controls than the
node's policy requires is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from mpc_gateway.pki.identity import Identity
from mpc_gateway.policy.context import Context, check
from mpc_gateway.policy.decision import PolicyDecision, RuleCheck, whose
from mpc_gateway.policy.declaration import ColumnUse, Governed
from mpc_gateway.policy.models import ColumnPolicy, OutputControls, Policy
from mpc_gateway.policy.models import principal_matches as _matches
from mpc_gateway.policy.privacy_rules import privacy_checks
from mpc_gateway.policy.risk_rules import risk_checks
from mpc_gateway.policy.training_rules import training_checks
from mpc_gateway.query.filters import InList, filter_leaves

__all__ = ["evaluate"]

G = TypeVar("G", bound=Governed)

_AS = {
    "aggregate": "in an aggregate",
    "group_by": "to group by",
    "filter": "as a filter",
}
_ONLY = {
    "aggregate": "in aggregates",
    "group_by": "to group by",
    "filter": "as a filter",
    "secret_compare": "inside secret comparisons",
}


def _caller(ctx: Context) -> RuleCheck:
    if ctx.plan.analyst == ctx.caller:
        return check("query.caller", True, f"the plan was built for {ctx.caller}")
    return check(
        "query.caller",
        False,
        f"the plan was built for {ctx.plan.analyst}, not for the caller {ctx.caller}",
    )


def _principal(ctx: Context) -> RuleCheck:
    matched = [p for p in ctx.rules.principals if _matches(p, ctx.caller)]
    if matched:
        return check(
            "dataset.principal",
            True,
            f"{ctx.who} lets {ctx.caller} query {ctx.dataset!r} (as {matched[0]})",
        )
    return check(
        "dataset.principal", False, f"{ctx.who} does not let {ctx.caller} query {ctx.dataset!r}"
    )


def _purpose(ctx: Context) -> RuleCheck:
    allowed = "; ".join(ctx.rules.purposes)
    if ctx.rules.allows_purpose(ctx.plan.purpose):
        return check(
            "dataset.purpose",
            True,
            f"{ctx.who} shares {ctx.dataset!r} for the purpose {ctx.plan.purpose.strip()!r}",
        )
    stated = (
        f"the query's purpose is {ctx.plan.purpose.strip()!r}"
        if ctx.plan.purpose.strip()
        else "the query states no purpose"
    )
    return check(
        "dataset.purpose",
        False,
        f"{ctx.who} shares {ctx.dataset!r} only for these purposes: {allowed}; {stated}",
    )


def _expiry(ctx: Context, now: datetime) -> RuleCheck:
    end = ctx.rules.expires_at
    if end is None:
        return check("dataset.expired", True, f"{ctx.who} for {ctx.dataset!r} does not expire")
    shown = end.isoformat().replace("+00:00", "Z")
    if now < end:
        return check(
            "dataset.expired", True, f"{ctx.who} for {ctx.dataset!r} is valid until {shown}"
        )
    return check(
        "dataset.expired",
        False,
        f"{ctx.who} for {ctx.dataset!r} expired at {shown}: the owner must renew it",
    )


def _daily_limit(ctx: Context, queries_today: int) -> RuleCheck:
    limit = ctx.rules.max_queries_per_day
    if limit is None:
        return check(
            "dataset.daily_limit", True, f"{ctx.who} sets no daily limit on {ctx.dataset!r}"
        )
    message = (
        f"{ctx.who} allows {ctx.caller} at most {limit} queries a day on {ctx.dataset!r}; "
        f"{queries_today} already ran today (UTC)"
    )
    return check("dataset.daily_limit", queries_today < limit, message)


def _uses(ctx: Context) -> list[tuple[str, str]]:
    """Every (column, use) the plan makes, in order, without repeats (filters last)."""
    pairs = [(use.column, use.use) for use in ctx.declared.uses]
    pairs += [(leaf.column, "filter") for leaf in filter_leaves(ctx.plan.filter)]
    return list(dict.fromkeys(pairs))


def _column_use(ctx: Context, column: str, use: str) -> RuleCheck:
    policy = ctx.rules.columns.get(column)
    if policy is None:
        message = f"{ctx.who} does not mention column {column!r}, so it cannot be used {_AS[use]}"
        return check("column.use", False, message)
    if use in policy.uses:
        return check("column.use", True, f"{ctx.who} lets column {column!r} be used {_AS[use]}")
    if not policy.uses:
        message = f"{ctx.who} allows no use of column {column!r}, not even {_AS[use]}"
        return check("column.use", False, message)
    only = " or ".join(_ONLY[u] for u in policy.uses)
    return check(
        "column.use",
        False,
        f"{ctx.who} lets column {column!r} be used only {only}, not {_AS[use]}",
    )


def _column_aggregates(ctx: Context) -> Iterator[RuleCheck]:
    aggregated: list[ColumnUse] = [u for u in ctx.declared.uses if u.use == "aggregate"]
    for use in aggregated:
        policy = ctx.rules.columns.get(use.column)
        if policy is None or "aggregate" not in policy.uses:
            continue  # column.use already failed for it
        allowed = ", ".join(policy.aggregates)
        if use.function in policy.aggregates:
            yield check("column.aggregate", True, f"{ctx.who} allows {use.label}")
        else:
            message = (
                f"{ctx.who} allows only {allowed} of column {use.column!r}, not {use.function}"
            )
            yield check("column.aggregate", False, message)


def _identifying(ctx: Context) -> Iterator[RuleCheck]:
    if ctx.plan.filter is None:
        return
    found = False
    for leaf in filter_leaves(ctx.plan.filter):
        policy: ColumnPolicy | None = ctx.rules.columns.get(leaf.column)
        if policy is None or not policy.identifying:
            continue
        found = True
        if isinstance(leaf, InList):
            how = (
                "exclude named values of it (NOT IN)"
                if leaf.negate
                else "select named values of it (IN)"
            )
        elif leaf.op in ("=", "!="):
            how = f"{'select' if leaf.op == '=' else 'exclude'} named values of it ({leaf.op})"
        else:
            how = f"narrow it with a range ({leaf.op}), which can single out one entity"
        message = f"{ctx.who} marks column {leaf.column!r} as identifying: a filter may not {how}"
        yield check("filter.identifying", False, message)
    if not found:
        message = f"the filter does not single out values of a column {ctx.who} marks identifying"
        yield check("filter.identifying", True, message)


def _plan_controls(ctx: Context) -> RuleCheck:
    required = ctx.rules.required_controls
    carried = ctx.plan.controls
    weaker = [
        name
        for name, value in carried.stricter(required).model_dump().items()
        if getattr(carried, name) != value
    ]
    if not weaker:
        message = f"the plan's output controls are at least as strict as {ctx.who} requires"
        return check("output.controls", True, message)
    return check(
        "output.controls",
        False,
        f"the plan's output controls are weaker than {ctx.who} requires: {', '.join(weaker)}",
    )


def _all_checks(
    ctx: Context,
    now: datetime,
    queries_today: int,
    check_plan_controls: bool,
    privacy_spent: Mapping[str, Decimal] | None,
) -> list[RuleCheck]:
    checks = [
        check("dataset.listed", True, f"{ctx.who} shares dataset {ctx.dataset!r}"),
        _caller(ctx),
        _principal(ctx),
        _purpose(ctx),
        _expiry(ctx, now),
        _daily_limit(ctx, queries_today),
    ]
    checks += [_column_use(ctx, column, use) for column, use in _uses(ctx)]
    checks += _column_aggregates(ctx)
    checks += _identifying(ctx)
    if ctx.declared.risk is not None:
        checks += risk_checks(ctx, ctx.declared.risk)
    if ctx.declared.training is not None:
        checks += training_checks(ctx, ctx.declared.training)
    checks += privacy_checks(ctx, privacy_spent)
    if check_plan_controls:
        checks.append(_plan_controls(ctx))
    return checks


def evaluate(
    policy: Policy,
    plan: G,
    caller: Identity | str,
    now: datetime,
    queries_today: int,
    *,
    check_plan_controls: bool = False,
    privacy_spent: Mapping[str, Decimal] | None = None,
) -> PolicyDecision[G]:
    """Check ``plan``, asked by ``caller`` at ``now``, against ``policy``.

    ``queries_today`` is how many queries ``caller`` already ran today (UTC) before
    this one. With ``check_plan_controls`` (at a node, on a signed order), also
    require the plan's output controls to be at least as strict as this policy's.
    ``privacy_spent`` is what each of this policy's privacy budgets for the
    dataset (by holder, :meth:`PrivacyPolicy.charges`) spent this period;
    with it, a plan's noise cost is checked against what is left.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rules = policy.datasets.get(plan.dataset)
    if rules is None:
        refusal = check(
            "dataset.listed",
            False,
            f"{whose(policy.owner)} does not share dataset {plan.dataset!r}",
        )
        return PolicyDecision(
            policy.owner, policy.version_hash, plan, (refusal,), OutputControls(), None
        )
    ctx = Context(policy, rules, plan, str(caller))
    checks = _all_checks(ctx, now, queries_today, check_plan_controls, privacy_spent)
    approval = (
        rules.approval if rules.approval and rules.approval.applies_to(plan.purpose) else None
    )
    return PolicyDecision(
        owner=policy.owner,
        policy_hash=policy.version_hash,
        plan=plan,
        checks=tuple(checks),
        output=rules.required_controls,
        approval=approval,
    )
