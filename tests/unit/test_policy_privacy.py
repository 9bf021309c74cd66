"""A dataset's privacy section: the controls it requires, its budgets, and its two rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mpc_gateway.errors import BudgetExhaustedError, PolicyDeniedError
from mpc_gateway.policy import OutputControls, Policy, combine, evaluate, privacy_charges
from tests.unit.policy_cases import NOW, make_policy, plan, policy_data

PRIVACY: dict[str, Any] = {
    "rho_per_query": "0.1",
    "rho_per_analyst": "0.5",
    "rho_total": "2",
    "period": "day",
    "organisations": {"supervisors": {"principals": ["analyst/alice"], "rho": "0.8"}},
}


def _private(**privacy: Any) -> Policy:
    return make_policy(privacy={**PRIVACY, **privacy})


def _checks(policy: Policy, query: Any, spent: dict[str, Decimal] | None = None) -> dict[str, bool]:
    decision = evaluate(policy, query, query.analyst, NOW, 0, privacy_spent=spent)
    return {c.rule + ":" + c.message: c.passed for c in decision.checks if "privacy" in c.rule}


def test_a_privacy_section_puts_its_cost_per_query_into_the_required_controls() -> None:
    rules = _private().datasets["loans"]
    assert rules.required_controls.dp_rho == Decimal("0.1")
    assert rules.required_controls.min_cell_count == 10  # the output section still applies
    assert make_policy().datasets["loans"].required_controls.dp_rho is None


def test_the_strictest_controls_take_the_smallest_cost_and_report_rules_only_if_all_opt_in() -> (
    None
):
    a = OutputControls(dp_rho=Decimal("0.1"), report_rules=True)
    b = OutputControls(dp_rho=Decimal("0.05"))
    assert a.stricter(b) == OutputControls(dp_rho=Decimal("0.05"), report_rules=False)
    assert a.stricter(OutputControls()).dp_rho == Decimal("0.1")  # DP if any policy says so
    assert not a.at_least_as_strict_as(b) and b.at_least_as_strict_as(a.stricter(b))


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"rho_per_query": "1", "rho_per_analyst": "0.5"}, "more than an analyst's whole budget"),
        ({"rho_total": "0.2"}, "less than one analyst's budget"),
        ({"organisations": {"x": {"principals": ["analyst/*"], "rho": "0.01"}}}, "less than one"),
        ({"rho_per_query": "0"}, "greater than 0"),
        ({"period": "year"}, "day"),
    ],
)
def test_a_privacy_section_that_cannot_work_is_refused_when_loaded(
    privacy: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(policy_data(privacy={**PRIVACY, **privacy}))


def test_the_cost_per_query_is_set_in_the_privacy_section_only() -> None:
    with pytest.raises(ValidationError, match="privacy section"):
        make_policy(output={"min_cell_count": 10, "dp_rho": "0.1"})


def test_a_query_spends_from_every_budget_that_covers_its_analyst() -> None:
    policy = _private()
    query = plan("count").with_controls(OutputControls(dp_rho=Decimal("0.1")))
    alice = {c.holder: c for c in privacy_charges([policy], query, "analyst/alice")}
    assert set(alice) == {"analyst/alice", "organisation:supervisors", "*"}
    assert alice["organisation:supervisors"].budget == Decimal("0.8")
    assert all(c.cost == Decimal("0.1") and c.period == "day" for c in alice.values())
    bob = {c.holder for c in privacy_charges([policy], query, "analyst/bob")}
    assert bob == {"analyst/bob", "*"}  # not one of the supervisors
    assert privacy_charges([policy], plan("count"), "analyst/alice") == []  # no DP: no cost


def test_noise_that_cannot_protect_a_release_is_refused_by_privacy_mechanism() -> None:
    policy = make_policy(
        privacy=PRIVACY,
        columns={"exposure": {"uses": ["aggregate"], "aggregates": ["sum", "max"]}},
    )
    exact = _checks(policy, plan("sum:exposure"))
    assert list(exact.values()) == [True]
    extreme = _checks(policy, plan("max:exposure"))
    assert [ok for rule, ok in extreme.items() if rule.startswith("privacy.mechanism")] == [False]
    assert any("single values" in rule for rule in extreme)
    decision = evaluate(policy, plan("max:exposure"), "analyst/alice", NOW, 0)
    with pytest.raises(PolicyDeniedError, match="privacy.mechanism"):
        decision.raise_if_denied()


def test_the_budget_rule_passes_while_every_budget_can_pay_and_names_the_one_that_cannot() -> None:
    policy = _private()
    query = plan("count").with_controls(OutputControls(dp_rho=Decimal("0.1"), min_cell_count=10))
    fine = _checks(policy, query, {"analyst/alice": Decimal("0.3"), "*": Decimal("1")})
    assert all(fine.values()) and sum("privacy.budget" in r for r in fine) == 3
    spent = {"organisation:supervisors": Decimal("0.75")}
    short = _checks(policy, query, spent)
    (failed,) = [rule for rule, ok in short.items() if not ok]
    assert "the analysts of supervisors" in failed and "0.05 is left" in failed
    decision = combine([evaluate(policy, query, "analyst/alice", NOW, 0, privacy_spent=spent)])
    with pytest.raises(BudgetExhaustedError) as caught:
        decision.raise_if_denied()
    assert caught.value.rule == "privacy.budget"
