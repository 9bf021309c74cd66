"""``mpcgw model train``: the request it sends, what it prints, the dry run's exit code."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.train import TrainOutcome, TrainRequest
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.pki import ConsortiumLayout
from mpc_gateway.tables import read_rows
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
    features=["exposure", "rating"],
    levels={"rating": ["AAA", "AA", "A"]},
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


def test_a_released_model_scores_rows_exactly_in_the_features_units() -> None:
    rows = [
        {"exposure": "30000000", "rating": "AAA"},  # the reference level: no dummy
        {"exposure": 4.5, "rating": "AA", "region": "north"},  # an extra key is ignored
        {"exposure": 0, "rating": "A"},
    ]
    assert OUTCOME.scores(rows) == [
        Fraction(-5, 2),
        Fraction(-7, 2) + Fraction(9, 2 * 3 * 10**7) + Fraction(5, 4),
        Fraction(-7, 2),
    ]
    assert OUTCOME.predict(rows[:1]) == [math.exp(-2.5) / (1 + math.exp(-2.5))]
    linear = TrainOutcome("linear", OUTCOME.columns, OUTCOME.coefficients, features=["exposure"])
    assert linear.predict([{"exposure": "0"}]) == [-3.5]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"rating": "AA"}, "no value of the feature 'exposure'"),
        ({"exposure": "1", "rating": "ZZ"}, "'ZZ': not one of AAA, AA, A"),
        ({"exposure": "1", "rating": 1}, "not one of"),
        ({"exposure": "ten", "rating": "AA"}, "not a finite number"),
        ({"exposure": float("nan"), "rating": "AA"}, "not a finite number"),
        ({"exposure": True, "rating": "AA"}, "not a number"),
        ({"exposure": None, "rating": "AA"}, "not a number"),
    ],
)
def test_a_row_that_cannot_be_scored_says_why(row: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        OUTCOME.predict([{"exposure": "1", "rating": "A"}, row])


def test_a_singular_fit_scores_nothing() -> None:
    singular = TrainOutcome("linear", ["intercept"], singular=True)
    with pytest.raises(InvalidQueryError, match="singular"):
        singular.predict([{}])


def test_train_then_scores_a_file_of_rows(
    layout: ConsortiumLayout, gateway: Recorder, tmp_path: Path
) -> None:
    source, out = tmp_path / "applicants.csv", tmp_path / "scored.parquet"
    source.write_text("id,exposure,rating\nx1,30000000,AAA\nx2,0.10,AA\n")
    result = _invoke(*ARGS, "--score", str(source), "--scores-out", str(out), *_pki(layout))
    assert result.exit_code == 0, result.output
    scored = read_rows(out)
    assert list(scored["id"]) == ["x1", "x2"]  # every column kept, as written
    expected = OUTCOME.predict(
        [{"exposure": "30000000", "rating": "AAA"}, {"exposure": "0.10", "rating": "AA"}]
    )
    assert list(scored["prediction"]) == expected
    assert "2 rows scored" in result.output


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("id,exposure\nx1,3\n", (), "has no column rating"),
        ("id,exposure,rating\n", ("--scores-out", "out.json"), "read and write .csv or .parquet"),
        ("id,exposure,rating\n", ("--scores-out", ""), None),
    ],
)
def test_a_file_that_cannot_be_scored_is_refused_before_training(
    layout: ConsortiumLayout,
    gateway: Recorder,
    tmp_path: Path,
    text: str,
    extra: tuple[str, ...],
    message: str | None,
) -> None:
    source = tmp_path / "applicants.csv"
    source.write_text(text)
    out = extra or ("--scores-out", str(tmp_path / "scored.csv"))
    args = ("--score", str(source), *out) if out[1] else ("--score", str(source))
    result = _invoke(*ARGS, *args, *_pki(layout))
    assert result.exit_code != 0
    assert message is None or message in result.output
    assert gateway.calls == []  # nothing was trained
