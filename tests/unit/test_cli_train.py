"""``mpcgw model train``: the request it sends, what it prints, the dry run's exit code."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.train import TrainOutcome, TrainRequest
from mpc_gateway.pki import ConsortiumLayout
from tests.unit import cli_cases
from tests.unit.cli_cases import _invoke, _pki
from tests.unit.test_cli_risk import Recorder, _released

layout = cli_cases.layout  # the module-scoped fixture, so that pytest finds it here

OUTCOME = TrainOutcome(
    "logistic",
    ["intercept", "exposure", "rating=AA"],
    [Fraction(-7, 2), Fraction(1, 3 * 10**7), Fraction(5, 4)],
    last_step=1e-12,
    steps=12,
)
ARGS = ("model", "train", "--label", "defaulted", "--features", "exposure, rating")


@pytest.fixture()
def gateway(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder(_released(OUTCOME))
    monkeypatch.setattr(GatewayClient, "run", lambda c, *a, **kw: recorder.call(c, False, *a, **kw))
    monkeypatch.setattr(
        GatewayClient, "explain", lambda c, *a, **kw: recorder.call(c, True, *a, **kw)
    )
    return recorder


def test_train_sends_the_job_and_prints_each_coefficient(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    result = _invoke(*ARGS, "--kind", "logistic", "--l2", "0.5", "--purpose", "t", *_pki(layout))
    assert result.exit_code == 0, result.output
    call = gateway.calls[0]
    assert (call["kind"], call["features"], call["family"], call["l2"]) == (
        "train",
        ["exposure", "rating"],
        "logistic",
        "0.5",
    )
    assert "rating=AA" in result.output and "1.25" in result.output
    assert "converged" in result.output


def test_train_json_gives_the_exact_coefficients(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    result = _invoke(*ARGS, "--kind", "linear", "--json", *_pki(layout))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["coefficients"][0] == "-3.5" and data["converged"] is True
    assert data["columns"] == ["intercept", "exposure", "rating=AA"]


def test_train_explain_exits_3_when_refused(layout: ConsortiumLayout, gateway: Recorder) -> None:
    gateway.answer = {"allowed": False, "plan_hash": "c" * 64, "refusals": ["training.label"]}
    result = _invoke(*ARGS, "--explain", *_pki(layout))
    assert result.exit_code == 3
    assert "training.label" in result.output and gateway.calls[0]["explain"] is True


def test_the_request_defaults_are_the_documented_ones() -> None:
    request = TrainRequest(dataset="loans", label="defaulted", features=("exposure",))
    assert (request.family, request.l2, request.iterations) == ("logistic", 1, 12)
    assert (request.min_rows, request.min_institutions) == (1000, 2)
