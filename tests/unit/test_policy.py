"""Policies: the format, every rule (pass and fail), default deny, combining, dry runs, ledgers."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import mpc_gateway
from mpc_gateway.computations.aggregate import (
    Aggregate,
    AggregatePlan,
    AggregateRequest,
    build_plan,
)
from mpc_gateway.errors import BudgetExhaustedError, ConfigurationError, PolicyDeniedError
from mpc_gateway.pki import Identity
from mpc_gateway.policy import (
    OutputControls,
    Policy,
    PolicyDecision,
    UsageLedger,
    combine,
    evaluate,
    load_policy,
)
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.query.where import parse_where

ROOT = Path(mpc_gateway.__file__).parent.parent
SCHEMA = load_schema(ROOT / "mpc_gateway" / "schemas" / "loans.toml")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALICE = Identity("analyst", "alice")
EXAMPLES = {
    "consortium": ROOT / "examples" / "consortium-policy.toml",
    "bank-a": ROOT / "nodes" / "bank-a" / "policy.toml",
    "bank-b": ROOT / "nodes" / "bank-b" / "policy.toml",
    "broker-c": ROOT / "nodes" / "broker-c" / "policy.toml",
}


def policy_data(**dataset: Any) -> dict[str, Any]:
    """A small valid policy of bank-a, with ``dataset`` overriding the rules for loans."""
    loans: dict[str, Any] = {
        "principals": ["analyst/alice", "analyst/bob"],
        "purposes": ["Risk monitoring", "supervisory review"],
        "expires": date(2027, 12, 31),
        "max_queries_per_day": 10,
        "columns": {
            "exposure": {"uses": ["aggregate", "filter"], "aggregates": ["sum", "mean"]},
            "sector": {"uses": ["group_by", "filter"]},
            "rating": {"uses": ["filter"]},
            "days_past_due": {"uses": ["secret_compare"]},
            "lgd": {"uses": []},
        },
        "output": {"min_cell_count": 10},
    }
    loans.update(dataset)
    return {"version": 1, "owner": "bank-a", "datasets": {"loans": loans}}


def make_policy(**dataset: Any) -> Policy:
    return Policy.model_validate(policy_data(**dataset))


def plan(
    *aggs: str,
    where: str = "",
    group_by: str | None = None,
    purpose: str = "risk monitoring",
    analyst: str = "analyst/alice",
    schema: DatasetSchema = SCHEMA,
) -> AggregatePlan:
    spec = AggregateRequest(
        dataset=schema.name,
        aggregates=tuple(
            Aggregate(func=a.partition(":")[0], column=a.partition(":")[2] or None)  # type: ignore[arg-type]
            for a in aggs
        ),
        filter=parse_where(where),
        group_by=group_by,
        purpose=purpose,
    )
    return build_plan(spec, schema, analyst)


def decide(
    query: AggregatePlan,
    policy: Policy | None = None,
    caller: Identity | str = ALICE,
    now: datetime = NOW,
    queries_today: int = 0,
) -> PolicyDecision:
    return evaluate(policy or make_policy(), query, caller, now, queries_today)


def failed(decision: PolicyDecision) -> list[tuple[str, str]]:
    return [(check.rule, check.message) for check in decision.failed]


def only_failure(decision: PolicyDecision) -> tuple[str, str]:
    failures = failed(decision)
    assert len(failures) == 1, failures
    return failures[0]


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
        "10 records and 2 institutions; suppressed cells are reported without values, "
        "with the rules they failed"
    )
    assert "joint counts and sums" in report["disclosure"][1]["text"]
    assert report["disclosure"][2]["to"] == "bank-a, bank-b"


def test_explain_without_output_controls_promises_no_suppression() -> None:
    combined = combine([decide(plan("count"), make_policy(output={}))])
    text = combined.explain()["disclosure"][0]["text"]
    assert text == "analyst/alice receives count over all matching rows (one cell) for every cell"


# --- the content hash ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"principals": ["analyst/alice"]},
        {"purposes": ["risk monitoring"]},
        {"expires": date(2027, 12, 30)},
        {"max_queries_per_day": 11},
        {"output": {"min_cell_count": 11}},
        {"output": {"min_cell_count": 10, "round_counts_to": 5}},
        {"columns": {"exposure": {"uses": ["aggregate"], "aggregates": ["sum", "mean"]}}},
        {"approval": {"approvers": ["approver/carol"]}},
    ],
)
def test_the_content_hash_changes_with_any_change(change: dict[str, Any]) -> None:
    assert make_policy(**change).version_hash != make_policy().version_hash


def test_the_content_hash_is_deterministic_and_independent_of_key_order() -> None:
    data = policy_data()
    loans = data["datasets"]["loans"]
    reordered = {"datasets": {"loans": dict(reversed(list(loans.items())))}, "owner": "bank-a"}
    assert Policy.model_validate(reordered).version_hash == make_policy().version_hash
    assert len(make_policy().version_hash) == 64
    other_owner = Policy.model_validate({**data, "owner": "bank-b"})
    assert other_owner.version_hash != make_policy().version_hash


# --- loading files ---------------------------------------------------------------------------


def _load_text(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path)


_GOOD = """
owner = "bank-a"
[datasets.loans]
principals = ["analyst/alice"]
purposes = ["risk monitoring"]
[datasets.loans.columns]
exposure = { uses = ["aggregate"], aggregates = ["sum"] }
"""


def test_load_reads_a_valid_file(tmp_path: Path) -> None:
    policy = _load_text(tmp_path, _GOOD)
    assert policy.owner == "bank-a"
    assert policy.datasets["loans"].columns["exposure"].aggregates == ("sum",)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            ("[datasets.loans]", "[datasets.loans]\nmax_querys_per_day = 3"),
            "datasets.loans.max_querys_per_day",
        ),
        (('"aggregate"]', '"agregate"]'), "datasets.loans.columns.exposure.uses.0"),
        (
            ('aggregates = ["sum"]', 'aggregates = ["median"]'),
            "datasets.loans.columns.exposure.aggregates.0",
        ),
        (('"analyst/alice"', '"alice"'), "datasets.loans.principals.0"),
        (('"analyst/alice"', '"wizard/alice"'), "datasets.loans.principals.0"),
        (('owner = "bank-a"', 'owner = "Bank A"'), "owner"),
        (('purposes = ["risk monitoring"]', "purposes = []"), "datasets.loans.purposes"),
        ((', aggregates = ["sum"]', ""), "datasets.loans.columns.exposure"),
        (
            ("[datasets.loans]", "[datasets.loans.output]\nmin_cell_count = -1\n[datasets.loans]"),
            "datasets.loans.output.min_cell_count",
        ),
    ],
)
def test_load_errors_name_the_field(tmp_path: Path, edit: tuple[str, str], field: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        _load_text(tmp_path, _GOOD.replace(*edit))
    assert f"is invalid: {field}: " in excinfo.value.public_message


def test_load_errors_for_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        _load_text(tmp_path, "owner = ")


def test_load_with_schemas_refuses_columns_the_schema_lacks_or_cannot_use(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    schemas = {"loans": SCHEMA}
    for text, message in (
        (_GOOD.replace("exposure =", "exposre ="), "datasets.loans.columns.exposre: dataset"),
        (_GOOD + 'sector = { uses = ["aggregate"], aggregates = ["sum"] }', "is categorical"),
        (_GOOD + 'lgd = { uses = ["group_by"] }', "is numeric and cannot be grouped by"),
        (_GOOD + 'counterparty_lei = { uses = ["filter"] }', "is an entity key"),
        (_GOOD.replace("datasets.loans", "datasets.trades"), "names dataset 'trades'"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigurationError, match=message):
            load_policy(path, schemas)


@pytest.mark.parametrize("owner", sorted(EXAMPLES))
def test_example_policies_load_against_the_loans_schema(owner: str) -> None:
    policy = load_policy(EXAMPLES[owner], {"loans": SCHEMA})
    assert policy.owner == owner
    assert "loans" in policy.datasets


def test_example_policies_allow_refuse_and_require_approval_as_documented() -> None:
    policies = [load_policy(path) for path in EXAMPLES.values()]

    def run(query: AggregatePlan) -> Any:
        return combine(evaluate(p, query, query.analyst, NOW, 0) for p in policies)

    allowed = run(plan("count", "mean:exposure", group_by="sector"))
    assert allowed.allowed and not allowed.approvals
    assert allowed.output == OutputControls(
        min_cell_count=20,
        min_institutions=2,
        dominance_percent=70,
        round_counts_to=5,
        sum_decimals=0,
    )
    by_region = run(plan("count", group_by="region"))
    assert [(d.owner, d.failed[0].rule) for d in by_region.decisions if not d.allowed] == [
        ("broker-c", "column.use")
    ]
    overdue = run(plan("count", where="days_past_due >= 90"))
    assert "only inside secret comparisons" in overdue.decisions[2].failed[0].message
    supervisory = run(plan("count", group_by="sector", purpose="supervisory review"))
    assert supervisory.allowed
    assert [need.owner for need in supervisory.approvals] == ["bank-b"]


# --- the usage ledger ------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_ledger_counts_per_analyst_per_utc_day() -> None:
    clock = _Clock()
    ledger = UsageLedger(clock=clock)
    assert ledger.count("analyst/alice") == 0
    assert ledger.record("analyst/alice") == 1
    assert ledger.record("analyst/alice") == 2
    ledger.record("analyst/bob")
    assert ledger.count("analyst/alice") == 2
    assert ledger.count("analyst/alice", date(2026, 11, 23)) == 0
    clock.now = NOW + timedelta(hours=12)
    assert ledger.today() == date(2026, 11, 25)
    assert ledger.count("analyst/alice") == 0
    assert ledger.count("analyst/alice", date(2026, 11, 24)) == 2


def test_ledger_record_if_below_checks_and_counts_in_one_step() -> None:
    ledger = UsageLedger(clock=_Clock())
    assert [ledger.record_if_below("analyst/alice", 2) for _ in range(3)] == [True, True, False]
    assert ledger.count("analyst/alice") == 2
    assert ledger.record_if_below("analyst/alice", None)


@pytest.mark.parametrize("persistent", [False, True])
def test_ledger_is_thread_safe(tmp_path: Path, persistent: bool) -> None:
    with UsageLedger(tmp_path / "usage.sqlite" if persistent else None, clock=_Clock()) as ledger:
        taken: list[bool] = []

        def work() -> None:
            for _ in range(50):
                taken.append(ledger.record_if_below("analyst/alice", 120))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert ledger.count("analyst/alice") == 120
        assert taken.count(True) == 120


def test_ledger_persists_in_sqlite_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "var" / "usage.sqlite"
    with UsageLedger(path, clock=_Clock()) as ledger:
        ledger.record("analyst/alice")
        ledger.record("analyst/alice")
    with UsageLedger(path, clock=_Clock()) as ledger:
        assert ledger.count("analyst/alice") == 2
        assert ledger.record("analyst/alice") == 3
    ledger.close()
    with pytest.raises(RuntimeError, match="closed"):
        ledger.count("analyst/alice")


def test_the_documented_example_is_a_valid_policy(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "policy.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = _load_text(tmp_path, example)
    assert policy.owner == "bank-b"
    assert policy.datasets["loans"].columns["customer_name"].identifying
