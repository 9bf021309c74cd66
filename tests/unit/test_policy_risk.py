"""Policies on risk plans: the [risk] section's rules, one by one, and its validation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.computations import VOCABULARY, Plan, build
from mpc_gateway.computations.check import CheckRequest
from mpc_gateway.computations.concentration import ConcentrationRequest
from mpc_gateway.computations.histogram import HistogramRequest
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.computations.score import ScoreRequest
from mpc_gateway.computations.scoring import ModelCatalog, ModelFeature, ScoringModel
from mpc_gateway.devnet.localnet import REPO, schema_path
from mpc_gateway.errors import ConfigurationError, PolicyDeniedError
from mpc_gateway.policy import Policy, evaluate, load_policy
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.where import parse_where
from tests.unit.policy_cases import EXAMPLE_SCHEMAS

SCHEMA = load_schema(schema_path())
NOW = datetime(2026, 11, 24, tzinfo=UTC)
KEYS = tuple(f"LEI{i:05d}" for i in range(120))


def _model(owner: str = "analyst/alice", output: str = "decisions", *features: str) -> ScoringModel:
    names = features or ("total_exposure", "lenders")
    return ScoringModel(
        owner=owner,
        name="m",
        kind="linear",
        features=tuple(ModelFeature(name=n) for n in names),
        weights=tuple(1 for _ in names),
        intercept=0,
        threshold=Decimal(1),
        output=output,
    )  # type: ignore[arg-type]


def _score(
    model: ScoringModel,
    keys: tuple[str, ...] = KEYS,
    key_column: str = "counterparty_lei",
    where: str = "",
) -> Plan:
    request = ScoreRequest(
        dataset="loans",
        model_id=model.model_id,
        keys=keys,
        key_column=key_column,
        purpose="risk monitoring",
        filter=parse_where(where),
    )
    return build(request, SCHEMA, "analyst/alice", 3, ModelCatalog(model))


def _plan(kind: Any, **job: Any) -> Plan:
    request = kind(dataset="loans", purpose="risk monitoring", **job)
    return build(request, SCHEMA, "analyst/alice", 3)


def _policy(risk: dict[str, Any] | None, **columns: Any) -> Policy:
    dataset: dict[str, Any] = {
        "principals": ["analyst/*"],
        "purposes": ["risk monitoring"],
        "columns": columns,
    }
    if risk is not None:
        dataset["risk"] = risk
    return Policy.model_validate({"owner": "bank-a", "datasets": {"loans": dataset}})


RISK = {
    "outputs": ["decisions", "count", "hhi", "quantile", "histogram"],
    "features": ["total_exposure", "lenders"],
    "model_owners": ["analyst/alice"],
    "keys": ["counterparty_lei"],
    "columns": ["exposure"],
    "min_batch": 100,
}


def _failed(policy: Policy, plan: Plan) -> list[str]:
    """The rules a node refuses ``plan`` by, with the controls a gateway gives it for ``policy``."""
    rules = policy.datasets.get(plan.dataset)
    governed = plan if rules is None else plan.with_controls(rules.required_controls)
    decision = evaluate(policy, governed, "analyst/alice", NOW, 0, check_plan_controls=True)
    return [check.rule for check in decision.failed]


def test_a_plan_within_every_rule_passes() -> None:
    policy = _policy(RISK)
    assert _failed(policy, _score(_model())) == []
    assert (
        _failed(policy, _plan(QuantileRequest, column="exposure", levels=(Decimal("0.5"),))) == []
    )
    assert (
        _failed(policy, _plan(HistogramRequest, column="exposure", edges=(Decimal(0), Decimal(9))))
        == []
    )
    assert _failed(policy, _plan(ConcentrationRequest, group_by="sector")) == [
        "column.use"
    ]  # no group_by


def test_without_a_risk_section_nothing_runs() -> None:
    decision = evaluate(_policy(None), _score(_model()), "analyst/alice", NOW, 0)
    assert [c.rule for c in decision.failed] == ["risk.allowed"]
    with pytest.raises(PolicyDeniedError, match="allows no risk computation on 'loans'"):
        decision.raise_if_denied()


@pytest.mark.parametrize(
    ("plan", "rule"),
    [
        (_score(_model(output="scores")), "risk.output"),
        (
            _score(_model("analyst/alice", "decisions", "total_exposure", "max_days_past_due")),
            "risk.feature",
        ),
        (_score(_model(owner="analyst/bob")), "risk.model_owner"),
        (_score(_model(), key_column="guarantor_pseudonym"), "risk.key_column"),
        (_score(_model(), keys=KEYS[:99]), "risk.batch"),
        (_score(_model(), keys=KEYS[:99] * 2), "risk.batch"),  # repeats do not count
        (_plan(QuantileRequest, column="lgd", levels=(Decimal("0.5"),)), "risk.column"),
        (_plan(ConcentrationRequest, keys=KEYS[:10]), "risk.batch"),
        (_plan(ConcentrationRequest, keys=KEYS, limit=Decimal(5), hhi="none"), "risk.output"),
    ],
)
def test_each_risk_rule_refuses_what_it_guards(plan: Plan, rule: str) -> None:
    assert _failed(_policy(RISK), plan) == [rule]


def test_filter_columns_of_risk_plans_follow_the_column_rules() -> None:
    plan = _score(_model(), where="sector = 'energy'")
    assert _failed(_policy(RISK), plan) == ["column.use"]
    assert _failed(_policy(RISK, sector={"uses": ["filter"]}), plan) == []


def test_the_plan_hash_binds_the_batch_and_the_model() -> None:
    base = _score(_model())
    assert _score(_model(), keys=(*KEYS[1:], KEYS[0])).plan_hash != base.plan_hash
    assert _score(_model(output="count")).plan_hash != base.plan_hash
    assert _score(_model()).plan_hash == base.plan_hash


def _write(tmp_path: Path, risk: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(
        'version = 1\nowner = "bank-a"\n[datasets.loans]\nprincipals = ["analyst/*"]\n'
        f'purposes = ["x"]\n[datasets.loans.risk]\n{risk}\n'
    )
    return path


@pytest.mark.parametrize(
    ("risk", "message"),
    [
        (
            'outputs = ["decisions"]\nfeatures = ["salary_total"]',
            "unknown risk feature 'salary_total'",
        ),
        ('outputs = ["leaks"]', "outputs"),
        ('outputs = ["histogram"]\ncolumns = ["sector"]', "'sector' is not a numeric column"),
        ('outputs = ["count"]\nkeys = ["exposure"]', "'exposure' is not an entity key column"),
        ("outputs = []", "outputs"),
    ],
)
def test_a_bad_risk_section_is_a_configuration_error(
    tmp_path: Path, risk: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_policy(_write(tmp_path, risk), {"loans": SCHEMA}, VOCABULARY)


def test_the_example_policies_differ_as_documented() -> None:
    load = {
        name: load_policy(REPO / "nodes" / name / "policy.toml", EXAMPLE_SCHEMAS, VOCABULARY)
        for name in ("bank-a", "bank-b", "broker-c")
    }
    secret_free = _score(_model("analyst/alice", "scores"))
    assert "risk.output" in _failed(load["bank-a"], secret_free)
    assert "risk.output" not in _failed(load["broker-c"], secret_free)
    dpd = _score(_model("analyst/alice", "decisions", "total_exposure", "max_days_past_due"))
    assert "risk.feature" in _failed(load["bank-b"], dpd)
    assert "risk.feature" not in _failed(load["bank-a"], dpd)


def _check(dataset: str, key_column: str = "counterparty_lei", where: str = "", **job: Any) -> Plan:
    request = CheckRequest(
        dataset=dataset,
        keys=KEYS[:1],
        key_column=key_column,
        filter=parse_where(where),
        purpose="aml screening",
        **job,
    )
    return build(request, load_schema(schema_path(dataset)), "analyst/alice", 3)


@pytest.mark.parametrize("owner", ["bank-a", "bank-b", "broker-c", "helper"])
def test_the_example_policies_allow_point_checks_of_alerts_and_nothing_more(owner: str) -> None:
    """One key at a time on alerts, by kind and age; never on the loan books, nor by amount."""
    policy = load_policy(REPO / "nodes" / owner / "policy.toml", EXAMPLE_SCHEMAS, VOCABULARY)
    assert _failed(policy, _check("alerts", where="kind = 'aml' AND raised_day >= 20000")) == []
    members = _check("alerts", "person_pseudonym", question="members")
    assert _failed(policy, members) == []
    assert "column.use" in _failed(policy, _check("alerts", where="amount > 1000"))
    on_loans = _failed(policy, _check("loans"))
    assert {"risk.output", "risk.batch"} <= set(on_loans)  # no check output; min_batch 50+
