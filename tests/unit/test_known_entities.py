"""The minimum batch of known entities: in the plan's controls, in the policies, at the receiver.

What the MPC computes is checked by real parties in tests/mpc/test_risk_batch.py;
here: the controls every node enforces, which risk outputs differential privacy
can cover, what the disclosure says, the noise scales, and how the receiver
reads the released bit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mpc_gateway.computations import Plan, build
from mpc_gateway.computations.base import Blocks, Execution
from mpc_gateway.computations.concentration import (
    Concentration,
    ConcentrationPlan,
    ConcentrationRequest,
)
from mpc_gateway.computations.score import ScorePlan, ScoreRequest, Scores
from mpc_gateway.computations.scoring import ModelCatalog, ModelFeature, ScoringModel
from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.errors import IntegrityError, PolicyDeniedError
from mpc_gateway.policy import OutputControls, Policy, evaluate
from mpc_gateway.policy.models import DatasetPolicy
from mpc_gateway.privacy import calibrate
from mpc_gateway.query.schema import load_schema

SCHEMA = load_schema(schema_path())
NOW = datetime(2026, 11, 24, tzinfo=UTC)
KEYS = tuple(f"LEI{i:05d}" for i in range(120))
RHO = Decimal("0.1")
RISK: dict[str, Any] = {
    "outputs": ["scores", "decisions", "count", "over_limit", "hhi", "hhi_flag"],
    "features": ["total_exposure", "lenders"],
    "model_owners": ["analyst/alice"],
    "keys": ["counterparty_lei"],
    "columns": ["exposure"],
    "min_batch": 100,
}
PRIVACY = {"rho_per_query": str(RHO), "rho_per_analyst": "1"}


def _model(output: str = "count") -> ScoringModel:
    return ScoringModel(
        owner="analyst/alice",
        name="m",
        kind="linear",
        features=(ModelFeature(name="total_exposure"), ModelFeature(name="lenders")),
        weights=(1, 1),
        intercept=0,
        threshold=Decimal(1) if output != "scores" else None,
        output=output,
    )


def _score(output: str = "count", keys: tuple[str, ...] = KEYS, **controls: Any) -> ScorePlan:
    model = _model(output)
    request = ScoreRequest(
        dataset="loans", model_id=model.model_id, keys=keys, purpose="risk monitoring"
    )
    plan = build(request, SCHEMA, "analyst/alice", 3, ModelCatalog(model))
    assert isinstance(plan, ScorePlan)
    return plan.with_controls(OutputControls(**controls))


def _concentration(**controls: Any) -> ConcentrationPlan:
    request = ConcentrationRequest(
        dataset="loans", purpose="risk monitoring", keys=KEYS, limit=Decimal(5)
    )
    plan = build(request, SCHEMA, "analyst/alice", 3)
    assert isinstance(plan, ConcentrationPlan)
    return plan.with_controls(OutputControls(**controls))


def _policy(**sections: Any) -> Policy:
    dataset = {"principals": ["analyst/*"], "purposes": ["risk monitoring"], **sections}
    return Policy.model_validate({"owner": "bank-a", "datasets": {"loans": dataset}})


def _at_node(policy: Policy, plan: Plan) -> list[str]:
    decision = evaluate(policy, plan, "analyst/alice", NOW, 0, check_plan_controls=True)
    return [check.rule for check in decision.failed]


def test_the_minimum_batch_is_a_control_every_plan_on_the_dataset_carries() -> None:
    rules = _policy(risk=RISK).datasets["loans"]
    assert rules.required_controls.min_entities == 100
    assert _policy().datasets["loans"].required_controls.min_entities == 1  # no risk section
    private = _policy(risk=RISK, privacy=PRIVACY).datasets["loans"].required_controls
    assert (private.min_entities, private.dp_rho) == (100, RHO)
    strict, lax = OutputControls(min_entities=100), OutputControls(min_entities=20)
    assert strict.stricter(lax) == lax.stricter(strict) == strict
    assert strict.at_least_as_strict_as(lax) and not lax.at_least_as_strict_as(strict)


def test_a_node_refuses_an_order_that_lowers_its_minimum_batch() -> None:
    policy = _policy(risk=RISK)
    assert _at_node(policy, _score(min_entities=100)) == []
    decision = evaluate(
        policy, _score(min_entities=99), "analyst/alice", NOW, 0, check_plan_controls=True
    )
    assert [c.rule for c in decision.failed] == ["output.controls"]
    assert "min_entities" in decision.failed[0].message
    assert _at_node(policy, _concentration(min_entities=1)) == ["output.controls"]


def test_a_policy_sets_the_minimum_batch_in_its_risk_section_only() -> None:
    with pytest.raises(ValidationError, match="risk section"):
        DatasetPolicy.model_validate(
            {"principals": ["analyst/*"], "purposes": ["x"], "output": {"min_entities": 5}}
        )


@pytest.mark.parametrize(
    ("plan", "blocked"),
    [
        (_score("count"), False),
        (_score("decisions"), True),
        (_score("scores"), True),
        (_concentration(), True),
    ],
)
def test_where_an_owner_requires_privacy_only_a_scoring_count_can_run(
    plan: Plan, blocked: bool
) -> None:
    assert (plan.declaration().dp_blocker is not None) == blocked  # whatever the controls
    noisy = plan.with_controls(OutputControls(min_entities=100, dp_rho=RHO))
    failed = _at_node(_policy(risk=RISK, privacy=PRIVACY), noisy)
    assert failed == (["privacy.mechanism"] if blocked else [])


def test_the_disclosure_names_the_minimum_batch_and_under_privacy_the_noise() -> None:
    exact = " ".join(d["text"] for d in _score(min_entities=100).disclosure(["a", "b", "c"]))
    assert "at least 100 of them are known to the institutions" in exact
    assert "noise" not in exact
    noisy_plan = _score(min_entities=100, dp_rho=RHO)
    noisy = " ".join(d["text"] for d in noisy_plan.disclosure(["a", "b", "c"]))
    assert "counted with noise" in noisy and "discrete Gaussian noise" in noisy
    assert f"ρ {RHO}" in noisy
    units = " ".join(d["text"] for d in _concentration(min_entities=50).disclosure(["a"]))
    assert "at least 50 of them are known" in units


def test_noise_scales_come_from_the_plans_rho_and_a_repeated_key_counts_its_copies() -> None:
    releases = Scores().noise(_score(dp_rho=RHO), SCHEMA, 3)
    expected = calibrate(RHO, {"count": 1, "known": 1})
    assert [(r.name, r.sensitivity, r.scale) for r in releases] == [
        (r.name, r.sensitivity, r.scale) for r in expected.values()
    ]
    repeated = _score(keys=(*KEYS, KEYS[0], KEYS[0]), dp_rho=RHO)
    sensitivities = {r.name: r.sensitivity for r in Scores().noise(repeated, SCHEMA, 3)}
    assert sensitivities == {"count": 3, "known": 1}
    assert Scores().noise(_score("decisions", dp_rho=RHO), SCHEMA, 3) == []
    assert Scores().noise(_score(), SCHEMA, 3) == []


def _released(blocks: Blocks) -> Execution:
    return Execution(SCHEMA, 3, ModelCatalog(_model("count")), lambda step: blocks)


def test_the_receiver_refuses_a_batch_the_mpc_found_too_few_known_entities_in() -> None:
    plan = _score(min_entities=100)
    with pytest.raises(PolicyDeniedError) as caught:
        Scores().run(plan, _released({"count": [0], "enough_known": [0]}))
    message = caught.value.public_message
    assert message.startswith("refused by rule risk.batch: fewer than 100 of the batch's entities")
    assert not any(key in message for key in KEYS)
    with pytest.raises(PolicyDeniedError, match="risk.batch"):
        Concentration().run(
            _concentration(min_entities=100),
            _released({"over_limit": [0] * len(KEYS), "hhi": [0, 0], "enough_known": [0]}),
        )


def test_the_receiver_reads_nothing_without_the_minimum_batch_bit() -> None:
    with pytest.raises(IntegrityError, match="enough_known"):
        Scores().run(_score(), _released({"count": [7]}))
    with pytest.raises(IntegrityError, match="not bits"):
        Scores().run(_score(), _released({"count": [7], "enough_known": [2]}))


def test_a_noisy_count_below_zero_is_released_as_zero() -> None:
    plan = _score(dp_rho=RHO)
    Scores().run(plan, _released({"count": [-4], "enough_known": [1]}))  # the gate passes
    assert Scores().decode(plan, {"count": [-4]}, SCHEMA, 3).count == 0
    assert Scores().decode(plan, {"count": [9]}, SCHEMA, 3).count == 9
