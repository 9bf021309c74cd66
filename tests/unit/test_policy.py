"""Policies: every rule (pass and fail), default deny, output controls, combining, dry runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mpc_gateway.errors import BudgetExhaustedError, PolicyDeniedError
from mpc_gateway.pki import Identity
from mpc_gateway.policy import OutputControls, Policy, combine, evaluate
from tests.unit.policy_cases import (
    ALICE,
    NOW,
    decide,
    failed,
    make_policy,
    only_failure,
    plan,
    policy_data,
)

# --- the allowed case, and every rule failing on its own -------------------------------------


def test_a_query_within_every_rule_is_allowed_with_a_passing_check_per_rule() -> None:
    decision = decide(plan("count", "mean:exposure", where="rating = 'CCC'", group_by="sector"))
    assert decision.allowed
    decision.raise_if_denied()
    rules = {check.rule for check in decision.checks}
    assert {
        "dataset.listed",
        "dataset.principal",
        "dataset.purpose",
        "dataset.expired",
        "dataset.daily_limit",
        "column.use",
        "column.aggregate",
        "filter.identifying",
    } <= rules
    assert decision.output == OutputControls(min_cell_count=10)
    assert decision.owner == "bank-a"
    assert decision.policy_hash == make_policy().version_hash


def test_a_dataset_the_policy_does_not_mention_is_refused() -> None:
    policy = Policy(owner="bank-a", datasets={})
    decision = decide(plan("count"), policy)
    assert only_failure(decision) == (
        "dataset.listed",
        "bank-a's policy does not share dataset 'loans'",
    )


def test_a_principal_not_listed_is_refused() -> None:
    decision = decide(plan("count", analyst="analyst/carl"), caller="analyst/carl")
    assert only_failure(decision) == (
        "dataset.principal",
        "bank-a's policy does not let analyst/carl query 'loans'",
    )
    with pytest.raises(PolicyDeniedError, match="refused by rule dataset.principal: bank-a's"):
        decision.raise_if_denied()


def test_a_role_wildcard_admits_every_name_of_that_role_only() -> None:
    policy = make_policy(principals=["analyst/*"])
    assert decide(plan("count", analyst="analyst/zoe"), policy, "analyst/zoe").allowed
    refused = decide(plan("count", analyst="auditor/zoe"), policy, Identity("auditor", "zoe"))
    assert only_failure(refused)[0] == "dataset.principal"


def test_a_plan_built_for_someone_else_is_refused() -> None:
    decision = decide(plan("count", analyst="analyst/bob"), caller=ALICE)
    assert only_failure(decision)[0] == "query.caller"


def test_purpose_must_be_declared_ignoring_case_and_spacing() -> None:
    assert decide(plan("count", purpose="  RISK   Monitoring ")).allowed
    rule, message = only_failure(decide(plan("count", purpose="marketing")))
    assert rule == "dataset.purpose"
    assert message == (
        "bank-a's policy shares 'loans' only for these purposes: Risk monitoring; "
        "supervisory review; the query's purpose is 'marketing'"
    )
    assert "states no purpose" in only_failure(decide(plan("count", purpose="")))[1]


def test_a_date_expiry_is_valid_through_that_day_utc() -> None:
    policy = make_policy(expires=date(2026, 11, 24))
    assert decide(plan("count"), policy, now=datetime(2026, 11, 24, 23, 59, tzinfo=UTC)).allowed
    late = decide(plan("count"), policy, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert only_failure(late) == (
        "dataset.expired",
        "bank-a's policy for 'loans' expired at 2026-11-25T00:00:00Z: the owner must renew it",
    )


def test_a_datetime_expiry_is_an_instant_and_a_naive_one_is_utc() -> None:
    policy = make_policy(expires=datetime(2026, 11, 24, 12, 0))
    assert decide(plan("count"), policy, now=NOW - timedelta(seconds=1)).allowed
    assert only_failure(decide(plan("count"), policy, now=NOW))[0] == "dataset.expired"
    assert make_policy(expires=None).datasets["loans"].expires_at is None


def test_the_daily_limit_counts_queries_already_run_today() -> None:
    assert decide(plan("count"), queries_today=9).allowed
    decision = decide(plan("count"), queries_today=10)
    assert only_failure(decision) == (
        "dataset.daily_limit",
        "bank-a's policy allows analyst/alice at most 10 queries a day on 'loans'; "
        "10 already ran today (UTC)",
    )
    with pytest.raises(BudgetExhaustedError, match="dataset.daily_limit"):
        decision.raise_if_denied()
    assert decide(plan("count"), make_policy(max_queries_per_day=None), queries_today=10**6).allowed


def test_a_column_the_policy_does_not_mention_cannot_be_used() -> None:
    rule, message = only_failure(decide(plan("count", group_by="region")))
    assert (rule, message) == (
        "column.use",
        "bank-a's policy does not mention column 'region', so it cannot be used to group by",
    )
    assert only_failure(decide(plan("mean:defaulted")))[0] == "column.use"
    assert only_failure(decide(plan("count", where="region = 'north'")))[0] == "column.use"


def test_each_use_of_a_column_needs_its_own_permission() -> None:
    assert only_failure(decide(plan("count", group_by="rating"))) == (
        "column.use",
        "bank-a's policy lets column 'rating' be used only as a filter, not to group by",
    )
    assert decide(plan("count", where="exposure > 1000", group_by="sector")).allowed
    assert only_failure(decide(plan("count", where="lgd > 0.5"))) == (
        "column.use",
        "bank-a's policy allows no use of column 'lgd', not even as a filter",
    )


def test_secret_compare_is_not_a_filter_nor_an_aggregate() -> None:
    assert only_failure(decide(plan("count", where="days_past_due >= 90"))) == (
        "column.use",
        "bank-a's policy lets column 'days_past_due' be used only inside secret comparisons, "
        "not as a filter",
    )
    assert only_failure(decide(plan("max:days_past_due")))[0] == "column.use"


def test_only_the_listed_aggregates_of_a_column_are_allowed() -> None:
    decision = decide(plan("count", "sum:exposure", "max:exposure"))
    assert only_failure(decision) == (
        "column.aggregate",
        "bank-a's policy allows only sum, mean of column 'exposure', not max",
    )


def test_count_needs_no_column_permission() -> None:
    policy = make_policy(columns={})
    assert decide(plan("count"), policy).allowed


def test_filters_that_single_out_an_identifying_column_are_refused() -> None:
    columns = {
        "sector": {"uses": ["filter"], "identifying": True},
        "exposure": {"uses": ["aggregate", "filter"], "aggregates": ["sum"], "identifying": True},
    }
    policy = make_policy(columns=columns)
    for where, how in (
        ("sector = 'energy'", "select named values of it (=)"),
        ("sector IN ('energy', 'retail')", "select named values of it (IN)"),
        ("sector != 'energy'", "exclude named values of it (!=)"),
        ("sector NOT IN ('energy')", "exclude named values of it (NOT IN)"),
        ("exposure >= 7", "narrow it with a range (>=), which can single out one entity"),
    ):
        rule, message = only_failure(decide(plan("count", where=where), policy))
        assert rule == "filter.identifying"
        assert message.startswith("bank-a's policy marks column ")
        assert message.endswith(f"as identifying: a filter may not {how}")
    assert decide(plan("sum:exposure"), policy).allowed


def test_an_identifying_column_cannot_be_grouped_by() -> None:
    with pytest.raises(ValueError, match="identifying column cannot allow group_by"):
        make_policy(columns={"sector": {"uses": ["group_by"], "identifying": True}})


def test_every_failed_rule_is_reported_and_the_first_is_raised() -> None:
    decision = decide(
        plan("max:exposure", group_by="region", purpose="x", analyst="analyst/carl"),
        caller="analyst/carl",
        queries_today=99,
    )
    assert [rule for rule, _ in failed(decision)] == [
        "dataset.principal",
        "dataset.purpose",
        "dataset.daily_limit",
        "column.use",
        "column.aggregate",
    ]
    with pytest.raises(PolicyDeniedError, match="dataset.principal"):
        decision.raise_if_denied()


def test_evaluate_needs_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(plan("count"), now=datetime(2026, 1, 1))


# --- the plan's output controls, as a node checks them ---------------------------------------


def test_a_node_refuses_an_order_whose_controls_are_weaker_than_its_policy() -> None:
    query = plan("count", group_by="sector")
    weak = evaluate(make_policy(), query, ALICE, NOW, 0, check_plan_controls=True)
    assert only_failure(weak) == (
        "output.controls",
        "the plan's output controls are weaker than bank-a's policy requires: min_cell_count",
    )
    dispatched = combine([decide(query)]).plan
    assert dispatched.controls.min_cell_count == 10
    node = evaluate(make_policy(), dispatched, ALICE, NOW, 0, check_plan_controls=True)
    assert node.allowed


# --- combining several owners' decisions -----------------------------------------------------


def _owner(owner: str, **dataset: Any) -> Policy:
    data = policy_data(**dataset)
    data["owner"] = owner
    return Policy.model_validate(data)


def test_combine_takes_the_strictest_controls_and_needs_every_approval() -> None:
    query = plan("count", "sum:exposure", group_by="sector", purpose="supervisory review")
    approval = {"approvers": ["approver/carol"], "purposes": ["Supervisory Review"]}
    policies = [
        _owner("consortium", output={"min_cell_count": 5, "min_institutions": 2}),
        _owner("bank-a", output={"min_cell_count": 10, "dominance_percent": 80}),
        _owner(
            "bank-b",
            output={"dominance_percent": 70, "round_counts_to": 5, "sum_decimals": 2},
            approval=approval,
        ),
        _owner("broker-c", output={"round_counts_to": 10, "sum_decimals": 0}),
    ]
    combined = combine(decide(query, p) for p in policies)
    assert combined.allowed
    assert combined.output == OutputControls(
        min_cell_count=10,
        min_institutions=2,
        dominance_percent=70,
        round_counts_to=10,
        sum_decimals=0,
    )
    assert [(need.owner, need.rule.approvers) for need in combined.approvals] == [
        ("bank-b", ("approver/carol",))
    ]
    controls = combined.plan.controls
    assert (controls.min_cell_count, controls.min_institutions) == (10, 2)
    assert (controls.dominance_percent, controls.round_counts_to) == (70, 10)
    assert combined.plan.plan_hash != query.plan_hash


def test_an_approval_rule_for_other_purposes_does_not_apply() -> None:
    policy = make_policy(approval={"approvers": ["approver/carol"], "purposes": ["audit"]})
    assert decide(plan("count"), policy).approval is None
    always = make_policy(approval={"approvers": ["approver/carol"]})
    assert decide(plan("count"), always).approval is not None
    off = make_policy(approval={"required": False, "approvers": ["approver/carol"]})
    assert decide(plan("count"), off).approval is None


def test_combined_is_allowed_only_if_every_policy_allows() -> None:
    query = plan("count", group_by="sector")
    refusing = _owner("broker-c", columns={})
    combined = combine([decide(query), decide(query, refusing)])
    assert not combined.allowed
    with pytest.raises(PolicyDeniedError, match="broker-c's policy does not mention column"):
        combined.raise_if_denied()


def test_combine_refuses_nothing_or_decisions_on_different_queries() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine([])
    with pytest.raises(ValueError, match="different queries"):
        combine([decide(plan("count")), decide(plan("count", group_by="sector"))])


def test_explain_reports_every_rule_approvals_and_disclosure() -> None:
    query = plan("count", "mean:exposure", group_by="sector", purpose="supervisory review")
    policies = [
        _owner("consortium", output={"min_cell_count": 5, "min_institutions": 2}),
        _owner("bank-a", approval={"approvers": ["approver/carol", "approver/dave"]}),
        _owner("bank-b", columns={}),
    ]
    combined = combine(decide(query, p) for p in policies)
    report = combined.explain()
    assert json.loads(json.dumps(report)) == report
    assert report["allowed"] is False
    assert report["plan_hash"] == combined.plan.plan_hash
    assert [p["owner"] for p in report["policies"]] == ["consortium", "bank-a", "bank-b"]
    assert all(rule["passed"] for rule in report["policies"][0]["rules"])
    assert report["refusals"] == [
        {
            "owner": "bank-b",
            "rule": "column.use",
            "passed": False,
            "message": "bank-b's policy does not mention column 'exposure', "
            "so it cannot be used in an aggregate",
        },
        {
            "owner": "bank-b",
            "rule": "column.use",
            "passed": False,
            "message": "bank-b's policy does not mention column 'sector', "
            "so it cannot be used to group by",
        },
    ]
    (approval,) = report["approvals"]
    assert approval["owner"] == "bank-a"
    assert approval["approvers"] == ["approver/carol", "approver/dave"]
    assert "1 of approver/carol, approver/dave" in approval["message"]
    to_analyst = report["disclosure"][0]
    assert to_analyst["to"] == "analyst/alice"
    assert to_analyst["text"] == (
        "analyst/alice receives count, mean(exposure) per sector for cells with at least "
        "10 records and 2 institutions; suppressed cells are reported as withheld, "
        "without values"
    )
    assert "sealed to analyst/alice's key" in report["disclosure"][1]["text"]
    assert "not its values" in report["disclosure"][1]["text"]
    assert report["disclosure"][2]["to"] == "bank-a, bank-b"


def test_explain_without_output_controls_promises_no_suppression() -> None:
    combined = combine([decide(plan("count"), make_policy(output={}))])
    text = combined.explain()["disclosure"][0]["text"]
    assert text == "analyst/alice receives count over all matching rows (one cell) for every cell"
