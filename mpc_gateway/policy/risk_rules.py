"""The rules of a dataset's ``risk`` section, on what a risk computation declares."""

from __future__ import annotations

from mpc_gateway.policy.context import Context, check, may
from mpc_gateway.policy.decision import RuleCheck
from mpc_gateway.policy.declaration import RiskUse
from mpc_gateway.policy.models import RiskPolicy
from mpc_gateway.policy.models import principal_matches as _matches

__all__ = ["risk_checks"]


def risk_checks(ctx: Context, declared: RiskUse) -> list[RuleCheck]:
    """The dataset's risk section: outputs, features, model owner, columns, levels, keys, batch."""
    rules = ctx.rules.risk
    if rules is None:
        return [
            check("risk.allowed", False, f"{ctx.who} allows no risk computation on {ctx.dataset!r}")
        ]
    checks = [may(ctx, "risk.allowed", True, "allow", f"risk computations on {ctx.dataset!r}")]
    allowed = ", ".join(rules.outputs)
    checks += [
        may(
            ctx,
            "risk.output",
            out in rules.outputs,
            "allow",
            f"releasing {out!r} (allowed: {allowed})",
        )
        for out in declared.outputs
    ]
    checks += [
        may(ctx, "risk.feature", name in rules.features, "let", f"a model use the feature {name!r}")
        for name in declared.features
    ]
    if declared.model_owner is not None:
        owner = declared.model_owner
        known = any(_matches(p, owner) for p in rules.model_owners)
        checks.append(may(ctx, "risk.model_owner", known, "run", f"models registered by {owner}"))
    checks += [
        may(
            ctx,
            "risk.column",
            column in rules.columns,
            "let",
            f"risk computations use the column {column!r}",
        )
        for column in declared.columns
    ]
    checks += _level_checks(ctx, declared, rules)
    batch = declared.batch
    if batch is not None:
        checks.append(
            may(
                ctx,
                "risk.key_column",
                batch.key_column in rules.keys,
                "let",
                f"batches name entities by {batch.key_column!r}",
            )
        )
        checks.append(
            check(
                "risk.batch",
                batch.size >= rules.min_batch,
                f"{ctx.who} needs batches of at least {rules.min_batch} distinct "
                f"entities; this one names {batch.size}",
            )
        )
    return checks


def _level_checks(ctx: Context, declared: RiskUse, rules: RiskPolicy) -> list[RuleCheck]:
    """Levels of a column's distribution: any where min and max are allowed, else in the range.

    A level near 0 or 1 releases the column's minimum or maximum (or the nearest
    values to it), so it needs the same column uses as those aggregates.
    """
    low, high = rules.quantile_levels
    checks = []
    for column in declared.columns:
        policy = ctx.rules.columns.get(column)
        extremes = policy is not None and {"min", "max"} <= set(policy.aggregates)
        for level in declared.levels:
            if extremes:
                what = f"quantiles of {column!r} at any level, here {level} (it allows min and max)"
                checks.append(may(ctx, "risk.quantile_level", True, "allow", what))
                continue
            what = (
                f"quantiles of {column!r} at level {level} (allowed: {low} to {high}, "
                f"as it does not allow both min and max of {column!r})"
            )
            checks.append(may(ctx, "risk.quantile_level", low <= level <= high, "allow", what))
    return checks
