"""Policy files: the content hash, loading and validating them, the example and documented ones."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.computations import VOCABULARY
from mpc_gateway.computations.aggregate import AggregatePlan
from mpc_gateway.devnet.localnet import DATASETS, schema_path
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.policy import OutputControls, Policy, combine, evaluate, load_policy
from mpc_gateway.query.schema import load_schema
from tests.unit.policy_cases import NOW, ROOT, SCHEMA, make_policy, plan, policy_data

EXAMPLES = {
    "consortium": ROOT / "examples" / "consortium-policy.toml",
    "bank-a": ROOT / "nodes" / "bank-a" / "policy.toml",
    "bank-b": ROOT / "nodes" / "bank-b" / "policy.toml",
    "broker-c": ROOT / "nodes" / "broker-c" / "policy.toml",
}


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
def test_example_policies_load_against_the_loans_schemas(owner: str) -> None:
    schemas = {name: load_schema(schema_path(name)) for name in DATASETS}
    policy = load_policy(EXAMPLES[owner], schemas, VOCABULARY)
    assert policy.owner == owner
    assert set(policy.datasets) == set(DATASETS)
    assert policy.datasets["loans"].privacy is None  # exact, under the output controls
    private = policy.datasets["loans_dp"]
    assert owner == "broker-c" or private.privacy is not None
    assert not any({"min", "max"} & set(c.aggregates) for c in private.columns.values())


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
        min_entities=100,  # the largest min_batch of the risk sections
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


def test_the_documented_example_is_a_valid_policy(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "policy.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = _load_text(tmp_path, example)
    assert policy.owner == "bank-b"
    assert policy.datasets["loans"].columns["customer_name"].identifying
