"""``mpcgw risk``: keys files, option checks, what is sent and how a released result prints.

No consortium runs here: the gateway client's calls are replaced where a command
would reach the gateway, so what is checked is what the CLI reads, validates and
would send, and how it prints a released result.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.cli.risk import read_keys
from mpc_gateway.client import GatewayClient, QueryStatus
from mpc_gateway.computations import Outcome, Released
from mpc_gateway.computations.concentration import ConcentrationOutcome
from mpc_gateway.computations.histogram import HistogramOutcome
from mpc_gateway.computations.quantile import QuantileOutcome
from mpc_gateway.computations.score import ScoreOutcome
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.pki import ConsortiumLayout
from mpc_gateway.policy import OutputControls
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.rpc.convert import request_from_proto
from tests.unit import cli_cases
from tests.unit.cli_cases import _invoke, _pki, _write

layout = cli_cases.layout  # the module-scoped fixture, so that pytest finds it here

MODEL_ID = "ab" * 32


# --- keys files -------------------------------------------------------------------------------


def test_keys_one_per_line_in_order_without_blanks_or_comments(tmp_path: Path) -> None:
    path = _write(tmp_path / "keys.txt", "# batch of 2026-11\n  LEI-B \n\nLEI-A\r\nLEI-B\n#x\n")
    assert read_keys(str(path)) == ["LEI-B", "LEI-A", "LEI-B"]  # a scoring batch may repeat


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "no keys"), ("\n# only a comment\n\n", "no keys"), ("x" * 129 + "\n", "longer than 128")],
)
def test_keys_files_that_hold_no_usable_batch_are_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(InvalidQueryError, match=problem):
        read_keys(str(_write(tmp_path / "keys.txt", text)))


def test_a_batch_larger_than_the_mpc_batch_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "keys.txt", "\n".join(f"K{i}" for i in range(MAX_BATCH + 1)))
    with pytest.raises(InvalidQueryError, match="at most 100,000"):
        read_keys(str(path))


def test_a_missing_keys_file_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    result = _invoke("risk", "score", "--model", MODEL_ID, "--keys", str(tmp_path / "none.txt"))
    assert result.exit_code == 2
    assert result.output.startswith("error: cannot read keys file")


class Recorder:
    """Stands in for GatewayClient.run and .explain: records the call, answers with ``answer``."""

    def __init__(self, answer: Released | dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def call(
        self, client: GatewayClient, explain: bool, kind: str, dataset: str, **kwargs: Any
    ) -> Any:
        self.calls.append({"kind": kind, "dataset": dataset, "explain": explain, **kwargs})
        if isinstance(self.answer, dict):
            return self.answer
        # as the client does: label the outcome with the request the gateway accepted
        accepted = request_from_proto(client.request(kind, dataset, **kwargs))
        return dataclasses.replace(self.answer, request=accepted)


def _released(outcome: Outcome) -> Released:
    return Released(
        query_id="q" * 32,
        plan_hash="p" * 64,
        dataset="loans",
        outcome=outcome,
        sequence=1,
        rounds=1,
        total_ms=12.5,
        mpc_ms=4.0,
        local_ms=1.0,
        controls=OutputControls(),
    )


@pytest.fixture()
def gateway(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder(_released(ScoreOutcome(MODEL_ID, decisions=[True, False])))
    monkeypatch.setattr(GatewayClient, "run", lambda c, *a, **kw: recorder.call(c, False, *a, **kw))
    monkeypatch.setattr(
        GatewayClient, "explain", lambda c, *a, **kw: recorder.call(c, True, *a, **kw)
    )
    return recorder


def test_score_reads_keys_from_stdin_and_prints_a_decision_per_key(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    result = _invoke(
        "risk",
        "score",
        "--model",
        MODEL_ID,
        "--keys",
        "-",
        "--purpose",
        "testing",
        "--key-column",
        "guarantor_pseudonym",
        *_pki(layout),
        input="AAA111\n\nBBB222\n",
    )
    assert result.exit_code == 0, result.output
    (call,) = gateway.calls
    assert (call["kind"], call["dataset"], call["purpose"], call["explain"]) == (
        "score",
        "loans",
        "testing",
        False,
    )
    assert (list(call["keys"]), call["model_id"], call["key_column"]) == (
        ["AAA111", "BBB222"],
        MODEL_ID,
        "guarantor_pseudonym",
    )
    lines = [line for line in result.output.splitlines() if "AAA111" in line or "BBB222" in line]
    assert "yes" in lines[0] and "no" in lines[1]
    assert "1 of 2 at or above the threshold" in result.output


def test_score_json_gives_exact_scores_and_probabilities(
    layout: ConsortiumLayout, gateway: Recorder, tmp_path: Path
) -> None:
    gateway.answer = _released(
        ScoreOutcome(MODEL_ID, scores=[-3, 65536], denominator=1 << 16, probabilities=[0.49, 0.73])
    )
    keys = _write(tmp_path / "k.txt", "A\nB\n")
    result = _invoke(
        "risk", "score", "--model", MODEL_ID, "--keys", str(keys), "--json", *_pki(layout)
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model_id"] == MODEL_ID and data["denominator"] == "65536"
    assert data["rows"][0] == {
        "key": "A",
        "score": str(Decimal(-3) / 65536),
        "integer_score": "-3",
        "probability": 0.49,
    }
    assert data["rows"][1]["score"] == "1"


def test_explain_prints_the_report_and_exits_3_when_refused(
    layout: ConsortiumLayout, gateway: Recorder, tmp_path: Path
) -> None:
    gateway.answer = {"allowed": False, "plan_hash": "c" * 64, "refusals": ["risk.output"]}
    keys = _write(tmp_path / "k.txt", "A\n")
    result = _invoke(
        "risk", "score", "--model", MODEL_ID, "--keys", str(keys), "--explain", *_pki(layout)
    )
    assert result.exit_code == 3
    assert "would be refused" in result.output and "risk.output" in result.output
    assert gateway.calls[0]["explain"] is True


# --- concentration, quantiles, histograms -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ([], "either --keys FILE or --group-by COLUMN"),
        (["--group-by", "sector", "--keys", "k.txt"], "either --keys FILE or --group-by"),
        (["--group-by", "sector", "--hhi", "flag"], "needs --hhi-limit"),
        (
            ["--group-by", "sector", "--hhi", "fraction", "--hhi-limit", "10"],
            "goes with --hhi flag",
        ),
        (["--group-by", "sector", "--hhi", "some"], "'some' is not one of"),
        (["--group-by", "sector", "--hhi-limit", "10001"], "less than or equal to 10000"),
    ],
)
def test_concentration_options_are_checked_before_anything_is_sent(
    layout: ConsortiumLayout, gateway: Recorder, args: list[str], problem: str
) -> None:
    result = _invoke("risk", "concentration", *args, *_pki(layout))
    assert result.exit_code == 2
    assert problem in " ".join(result.output.replace("│", " ").split())
    assert gateway.calls == []


def test_concentration_units_must_be_distinct(
    layout: ConsortiumLayout, gateway: Recorder, tmp_path: Path
) -> None:
    keys = _write(tmp_path / "k.txt", "LEI1\nLEI2\nLEI1\n")
    result = _invoke("risk", "concentration", "--keys", str(keys), *_pki(layout))
    assert result.exit_code == 2
    assert "error: concentration units must be distinct: LEI1 is listed twice" in result.output
    assert gateway.calls == []


def test_an_hhi_limit_alone_asks_for_the_flag_only(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    gateway.answer = _released(
        ConcentrationOutcome(
            units=["agriculture", "energy"], over_limit=[False, True], hhi_over_limit=True
        )
    )
    result = _invoke(
        "risk",
        "concentration",
        "--group-by",
        "sector",
        "--limit",
        "1e9",
        "--hhi-limit",
        "2500",
        *_pki(layout),
    )
    assert result.exit_code == 0, result.output
    job = gateway.calls[0]
    assert (job["group_by"], job["limit"], job["hhi"], job["hhi_limit"]) == (
        "sector",
        "1e9",
        "flag",
        2500,
    )
    assert not job["keys"] and not job["column"]  # the default column is left to the gateway
    assert "joint exposure > 1,000,000,000" in result.output
    assert "HHI > 2500 points: yes" in result.output
    assert "1 of 2 units over the limit" in result.output


def test_the_hhi_fraction_is_printed_in_points(layout: ConsortiumLayout, gateway: Recorder) -> None:
    gateway.answer = _released(ConcentrationOutcome(units=["a", "b"], hhi=Fraction(12345, 7)))
    result = _invoke("risk", "concentration", "--group-by", "region", *_pki(layout))
    assert result.exit_code == 0, result.output
    assert gateway.calls[0]["hhi"] == ""  # the gateway's default: fraction
    assert "HHI: 1763.571429 points" in result.output


def test_suppressed_quantiles_and_bins_are_shown_as_such(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    gateway.answer = _released(
        QuantileOutcome(
            rounds=6, quantiles=[(Decimal("0.5"), Decimal("175146.42")), (Decimal("0.999"), None)]
        )
    )
    result = _invoke(
        "risk", "quantiles", "exposure", "0.5", "0.999", "--grid-size", "16", *_pki(layout)
    )
    assert result.exit_code == 0, result.output
    job = gateway.calls[0]
    assert (job["kind"], job["column"], list(job["levels"]), job["grid_size"]) == (
        "quantile",
        "exposure",
        ["0.5", "0.999"],
        16,
    )
    assert "175,146.42" in result.output and "suppressed" in result.output
    assert job["interpolation"] == ""  # the default, discrete, is left to the gateway

    result = _invoke(
        "risk", "quantiles", "exposure", "0.5", "--interpolation", "linear", *_pki(layout)
    )
    assert result.exit_code == 0, result.output
    assert gateway.calls[1]["interpolation"] == "linear"
    del gateway.calls[1]
    result = _invoke("risk", "quantiles", "exposure", "0.5", "--interpolation", "x", *_pki(layout))
    assert result.exit_code == 2 and len(gateway.calls) == 1

    edges = [Decimal(e) for e in ("0", "1000", "5000")]
    gateway.answer = _released(
        HistogramOutcome(bins=[(edges[0], edges[1], None), (edges[1], edges[2], 95)])
    )
    result = _invoke("risk", "histogram", "exposure", "0", "1000", "5000", "--json", *_pki(layout))
    assert result.exit_code == 0, result.output
    assert list(gateway.calls[1]["edges"]) == ["0", "1000", "5000"]
    bins = json.loads(result.output)["bins"]
    assert bins[0] == {"low": "0", "high": "1000", "count": None, "suppressed": True}
    assert bins[1]["count"] == 95 and not bins[1]["suppressed"]

    result = _invoke("risk", "histogram", "exposure", "0", "1000", "5000", *_pki(layout))
    assert "[0, 1,000)" in result.output and "[1,000, 5,000]" in result.output  # last bin closed
    assert "withheld" in result.output


def test_a_histogram_needs_two_edges(layout: ConsortiumLayout, gateway: Recorder) -> None:
    result = _invoke("risk", "histogram", "exposure", "10", *_pki(layout))
    assert result.exit_code == 2 and gateway.calls == []


def test_status_prints_a_released_risk_result(
    layout: ConsortiumLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = _released(ConcentrationOutcome(units=["x"], hhi_over_limit=False))
    found = QueryStatus("q" * 32, "released", (), "", released)
    monkeypatch.setattr(GatewayClient, "status", lambda client, query_id: found)
    result = _invoke("status", "q" * 32, *_pki(layout))
    assert result.exit_code == 0, result.output
    assert "HHI over its limit: no" in result.output
    result = _invoke("status", "q" * 32, "--json", *_pki(layout))
    assert json.loads(result.output)["hhi_over_limit"] is False
