"""Quantiles under policies: levels near 0 or 1 are min and max, and no noise covers a quantile."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.computations import VOCABULARY, Plan, build
from mpc_gateway.computations.histogram import HistogramRequest
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.devnet.localnet import REPO, schema_path
from mpc_gateway.errors import ConfigurationError, PolicyDeniedError
from mpc_gateway.policy import Policy, evaluate, load_policy
from mpc_gateway.query.schema import load_schema

SCHEMA = load_schema(schema_path())
NOW = datetime(2026, 11, 24, tzinfo=UTC)
EXTREMES = {"uses": ["aggregate"], "aggregates": ["sum", "min", "max"]}
NO_EXTREMES = {"uses": ["aggregate"], "aggregates": ["sum", "mean"]}


def _quantiles(*levels: str, column: str = "exposure") -> Plan:
    request = QuantileRequest(
        dataset="loans",
        purpose="risk monitoring",
        column=column,
        levels=tuple(Decimal(q) for q in levels),
    )
    return build(request, SCHEMA, "analyst/alice", 3)


def _policy(columns: dict[str, Any], privacy: dict[str, str] | None = None, **risk: Any) -> Policy:
    dataset = {
        "principals": ["analyst/*"],
        "purposes": ["risk monitoring"],
        "columns": columns,
        "risk": {"outputs": ["quantile", "histogram"], "columns": ["exposure", "lgd"], **risk},
        "privacy": privacy,
    }
    return Policy.model_validate({"owner": "bank-b", "datasets": {"loans": dataset}})


def _failed(policy: Policy, plan: Plan) -> list[str]:
    decision = evaluate(policy, plan, "analyst/alice", NOW, 0)
    return [check.rule for check in decision.failed]


@pytest.mark.parametrize("level", ["1", "0.999", "0.000001", "0.01"])
def test_a_level_outside_the_range_is_refused_where_min_and_max_are_not_allowed(
    level: str,
) -> None:
    assert _failed(_policy({"exposure": NO_EXTREMES}), _quantiles(level)) == ["risk.quantile_level"]
    assert _failed(_policy({}), _quantiles(level)) == ["risk.quantile_level"]  # not listed


@pytest.mark.parametrize("level", ["0.05", "0.5", "0.95", "0.050"])
def test_a_level_inside_the_default_range_passes(level: str) -> None:
    assert _failed(_policy({"exposure": NO_EXTREMES}), _quantiles(level)) == []


@pytest.mark.parametrize("aggregates", [["sum", "max"], ["sum", "min"]])
def test_one_extreme_is_not_enough_for_levels_outside_the_range(aggregates: list[str]) -> None:
    columns = {"exposure": {"uses": ["aggregate"], "aggregates": aggregates}}
    assert _failed(_policy(columns), _quantiles("1")) == ["risk.quantile_level"]
    assert _failed(_policy(columns), _quantiles("0.000001")) == ["risk.quantile_level"]


def test_a_column_that_allows_min_and_max_allows_every_level() -> None:
    policy = _policy({"exposure": EXTREMES, "lgd": NO_EXTREMES})
    assert _failed(policy, _quantiles("0.000001", "0.5", "1")) == []
    assert _failed(policy, _quantiles("1", column="lgd")) == ["risk.quantile_level"]


def test_the_policy_may_declare_its_own_range() -> None:
    policy = _policy({}, quantile_levels=["0.01", "0.99"])
    assert _failed(policy, _quantiles("0.01", "0.99")) == []
    assert _failed(policy, _quantiles("0.5", "0.995")) == ["risk.quantile_level"]
    narrow = _policy({}, quantile_levels=["0.5", "0.5"])
    assert _failed(narrow, _quantiles("0.5")) == []
    assert _failed(narrow, _quantiles("0.25")) == ["risk.quantile_level"]


def test_every_level_is_checked_and_the_refusal_says_what_is_allowed() -> None:
    decision = evaluate(_policy({}), _quantiles("0.5", "1"), "analyst/alice", NOW, 0)
    levels = [c for c in decision.checks if c.rule == "risk.quantile_level"]
    assert [c.passed for c in levels] == [True, False]
    assert levels[1].message == (
        "bank-b's policy does not allow quantiles of 'exposure' at level 1 "
        "(allowed: 0.05 to 0.95, as it does not allow both min and max of 'exposure')"
    )
    with pytest.raises(PolicyDeniedError, match=r"risk\.quantile_level.*at level 1"):
        decision.raise_if_denied()


def test_a_computation_that_releases_no_level_is_not_checked_for_one() -> None:
    request = HistogramRequest(
        dataset="loans",
        purpose="risk monitoring",
        column="exposure",
        edges=(Decimal(0), Decimal(9)),
    )
    plan = build(request, SCHEMA, "analyst/alice", 3)
    decision = evaluate(_policy({}), plan, "analyst/alice", NOW, 0)
    assert "risk.quantile_level" not in [c.rule for c in decision.checks]


def test_a_quantile_is_refused_where_the_owner_requires_differential_privacy() -> None:
    plan = _quantiles("0.5")
    assert plan.declaration().dp_blocker is not None  # whatever the plan's controls
    private = _policy({}, privacy={"rho_per_query": "0.1", "rho_per_analyst": "1"})
    noisy = plan.with_controls(private.datasets["loans"].required_controls)
    assert noisy.controls.dp_rho == Decimal("0.1")
    decision = evaluate(private, noisy, "analyst/alice", NOW, 0, check_plan_controls=True)
    assert [c.rule for c in decision.failed] == ["privacy.mechanism"]
    assert "quantiles of 'exposure' are single values" in decision.failed[0].message
    assert "privacy.mechanism" not in _failed(_policy({}), plan)  # no privacy section: no rule


# --- the setting in policy files ---------------------------------------------------------------


def _load(tmp_path: Path, setting: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(
        'version = 1\nowner = "bank-a"\n[datasets.loans]\nprincipals = ["analyst/*"]\n'
        f'purposes = ["x"]\n[datasets.loans.risk]\noutputs = ["quantile"]\n{setting}\n'
    )
    return load_policy(path, {"loans": SCHEMA}, VOCABULARY)


def test_the_range_defaults_to_5_to_95_percent_and_reads_strings_or_numbers(
    tmp_path: Path,
) -> None:
    default = _load(tmp_path, "").datasets["loans"].risk
    assert default is not None
    assert default.quantile_levels == (Decimal("0.05"), Decimal("0.95"))
    for setting in ('quantile_levels = ["0.01", "0.99"]', "quantile_levels = [0.01, 0.99]"):
        risk = _load(tmp_path, setting).datasets["loans"].risk
        assert risk is not None and risk.quantile_levels == (Decimal("0.01"), Decimal("0.99"))
    other = _load(tmp_path, 'quantile_levels = ["0.1", "0.9"]')
    assert other.version_hash != _load(tmp_path, "").version_hash


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('quantile_levels = ["0", "0.5"]', r"quantile_levels\.0: Input should be greater than 0"),
        ('quantile_levels = ["0.5", "1"]', r"quantile_levels\.1: Input should be less than 1"),
        ('quantile_levels = ["0.9", "0.1"]', "the lowest level 0.9 is above the highest 0.1"),
        ('quantile_levels = ["0.05"]', r"quantile_levels\.1: Field required"),
        ('quantile_levels = ["0.05", "0.5", "0.95"]', "quantile_levels"),
        ('quantile_levels = ["low", "0.95"]', r"quantile_levels\.0"),
        ('quantile_level = ["0.05", "0.95"]', "quantile_level: Extra inputs"),
    ],
)
def test_a_bad_range_is_a_configuration_error_naming_the_field(
    tmp_path: Path, setting: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _load(tmp_path, setting)


def test_the_example_policies_keep_levels_near_0_and_1_from_columns_without_min_and_max() -> None:
    load = {
        name: load_policy(REPO / "nodes" / name / "policy.toml")
        for name in ("bank-a", "bank-b", "broker-c")
    }
    consortium = load_policy(REPO / "examples" / "consortium-policy.toml")
    for level in ("1", "0.000001"):
        assert "risk.quantile_level" in _failed(load["bank-b"], _quantiles(level))
        assert "risk.quantile_level" in _failed(load["bank-a"], _quantiles(level, column="lgd"))
        assert "risk.quantile_level" in _failed(load["broker-c"], _quantiles(level, column="lgd"))
        assert "risk.quantile_level" not in _failed(load["bank-a"], _quantiles(level))
        assert "risk.quantile_level" not in _failed(consortium, _quantiles(level))
    demo = _quantiles("0.5", "0.99")  # the demo's median and 99th percentile of exposure
    assert all("risk.quantile_level" not in _failed(p, demo) for p in [*load.values(), consortium])
