"""The rules of a dataset's ``training`` section, on what a training job declares."""

from __future__ import annotations

from mpc_gateway.policy.context import Context, check, may
from mpc_gateway.policy.decision import RuleCheck
from mpc_gateway.policy.declaration import TrainingUse
from mpc_gateway.policy.models import TrainingPolicy
from mpc_gateway.policy.models import principal_matches as _matches

__all__ = ["training_checks"]


def training_checks(ctx: Context, declared: TrainingUse) -> list[RuleCheck]:
    """Who trains, the family, the label and features, the release, the iterates, minimums."""
    rules = ctx.rules.training
    if rules is None:
        return [
            check("training.allowed", False, f"{ctx.who} allows no training on {ctx.dataset!r}")
        ]
    trainer = any(_matches(p, ctx.plan.analyst) for p in rules.principals)
    checks = [
        may(ctx, "training.allowed", True, "allow", f"training models on {ctx.dataset!r}"),
        may(ctx, "training.principal", trainer, "let", f"{ctx.plan.analyst} train models"),
        may(
            ctx,
            "training.family",
            declared.family in rules.families,
            "allow",
            f"{declared.family} models (allowed: {', '.join(rules.families)})",
        ),
        may(
            ctx,
            "training.label",
            declared.label in rules.labels,
            "let",
            f"{declared.label!r} be a label (allowed: {', '.join(rules.labels)})",
        ),
    ]
    checks += [
        may(ctx, "training.feature", name in rules.features, "let", f"{name!r} be a feature")
        for name in declared.features
    ]
    return checks + _release_checks(ctx, declared, rules)


def _release_checks(ctx: Context, declared: TrainingUse, rules: TrainingPolicy) -> list[RuleCheck]:
    checks = []
    if declared.releases_coefficients:
        checks.append(
            may(
                ctx,
                "training.release",
                rules.release_coefficients,
                "allow",
                "releasing a trained model's coefficients",
            )
        )
    if declared.iterates_to_nodes:
        checks.append(
            may(
                ctx,
                "training.iterates",
                rules.iterates_to_nodes,
                "let",
                "the nodes learn the iterates of the training (its Newton steps)",
            )
        )
    checks.append(
        check(
            "training.min_rows",
            declared.min_rows >= rules.min_rows,
            f"{ctx.who} needs training on at least {rules.min_rows} joint rows; "
            f"the job requires {declared.min_rows}",
        )
    )
    checks.append(
        check(
            "training.min_institutions",
            declared.min_institutions >= rules.min_institutions,
            f"{ctx.who} needs rows from at least {rules.min_institutions} institutions; "
            f"the job requires {declared.min_institutions}",
        )
    )
    return checks
