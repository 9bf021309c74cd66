"""``mpcgw model`` and ``mpcgw risk``: input files, validation, sealing and printing.

No consortium runs here: the gateway client's calls are replaced where a command
would reach the gateway, so what is checked is what the CLI reads, validates,
seals locally and would send, and how it prints a released result.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mpc_gateway.cli.app import app
from mpc_gateway.cli.model import load_model_file, load_weights_file, seal_weights_file
from mpc_gateway.cli.risk import read_keys
from mpc_gateway.client import GatewayClient, QueryStatus
from mpc_gateway.computations import Outcome, Released
from mpc_gateway.computations.concentration import ConcentrationOutcome
from mpc_gateway.computations.histogram import HistogramOutcome
from mpc_gateway.computations.quantile import QuantileOutcome
from mpc_gateway.computations.score import ScoreOutcome
from mpc_gateway.computations.scoring import ScoringModel, open_weight_share
from mpc_gateway.errors import IntegrityError, InvalidQueryError, PolicyDeniedError
from mpc_gateway.pki import ConsortiumLayout, Identity, init_consortium
from mpc_gateway.pki.sealing import node_certificates
from mpc_gateway.policy import OutputControls
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.rpc.convert import request_from_proto

NODES = ("bank-a", "bank-b", "broker-c")
ALICE = "analyst/alice"
MODEL_ID = "ab" * 32
WEIGHTS = [8_388_593, -7_340_011, 6_291_469]  # distinctive: must not appear in what is sent
INTERCEPT = -5_242_877


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    return init_consortium(tmp_path_factory.mktemp("pki"), nodes=NODES, analysts=("alice",))


def _secret_model(**changes: Any) -> dict[str, Any]:
    return {
        "name": "pd-test",
        "kind": "logistic",
        "features": [
            {"name": "total_exposure", "scale": 100_000_000},
            {"name": "any_default"},
            {"name": "worst_rating"},
        ],
        "frac_bits": 16,
        "weight_bits": 24,
        "weights_secret": True,
        "threshold": "0.25",
        "output": "decisions",
        **changes,
    }


def _public_model(**changes: Any) -> dict[str, Any]:
    fields = {
        **_secret_model(),
        "name": "pd-public",
        "weights_secret": False,
        "weights": [3277, 144179, 29491],
        "intercept": -222822,
        **changes,
    }
    return fields


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _invoke(*args: str, input: str | None = None) -> Any:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args), input=input)
    # errors end in a message and an exit code, never in a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


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


def _pki(layout: ConsortiumLayout) -> tuple[str, str]:
    return "--pki", str(layout.root)


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
    assert "suppressed (too few values)" in result.output


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


# --- model files, weights files, sealing ------------------------------------------------------


def test_the_owner_is_filled_in_with_your_identity(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.json", _public_model())
    model = load_model_file(path, ALICE)
    assert model.owner == ALICE and model.weights == (3277, 144179, 29491)
    assert load_model_file(_write(tmp_path / "n.json", _public_model(owner=ALICE)), ALICE) == model


def test_a_model_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.json", _public_model(owner="analyst/bob"))
    with pytest.raises(PolicyDeniedError, match="owned by 'analyst/bob'"):
        load_model_file(path, ALICE)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[1, 2", "is not JSON"),
        ([1, 2], "one JSON object"),
        (_public_model(kind="probit"), "kind"),
        (_public_model(weights=[1, 2]), "one weight per feature"),
        (_secret_model(weights=[1, 2, 3]), "must not carry weights"),
    ],
)
def test_invalid_model_files_are_refused(tmp_path: Path, content: Any, problem: str) -> None:
    with pytest.raises(InvalidQueryError, match=problem):
        load_model_file(_write(tmp_path / "m.json", content), ALICE)


def _model() -> ScoringModel:
    return ScoringModel.model_validate({**_secret_model(), "owner": ALICE})


def test_a_weights_file_holds_fixed_point_integers(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    assert load_weights_file(path, _model()) == (WEIGHTS, INTERCEPT)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "is not JSON"),
        ({"weights": [1, 2, 3]}, "must hold exactly"),
        ({"weights": [1, 2, 3], "intercept": 0, "bias": 1}, "must hold exactly"),
        ({"weights": [0.05, 2, 3], "intercept": 0}, r"round\(w \* 2\*\*16\)"),
        ({"weights": [True, 2, 3], "intercept": 0}, "fixed-point integers"),
        ({"weights": [1, 2, 3], "intercept": -3.4}, "intercept"),
        ({"weights": "1,2,3", "intercept": 0}, "must be a list"),
        ({"weights": [1, 2], "intercept": 0}, "2 weights; the model has 3 features"),
        ({"weights": [1, 2, 1 << 24], "intercept": 0}, r"\|w\| < 2\*\*24"),
        ({"weights": [1, 2, 3], "intercept": -(1 << 24)}, r"\|w\| < 2\*\*24"),
    ],
)
def test_invalid_weights_files_are_refused(tmp_path: Path, content: Any, problem: str) -> None:
    with pytest.raises(InvalidQueryError, match=problem):
        load_weights_file(_write(tmp_path / "w.json", content), _model())


def test_node_certificates_come_in_party_order(layout: ConsortiumLayout) -> None:
    certs = node_certificates(layout.root)
    assert tuple(certs) == NODES
    for node, pem in certs.items():
        path = layout.tls_paths(Identity("node", node, layout.trust_domain))[0]
        assert pem == path.read_bytes()


def test_a_node_certificate_swapped_for_another_is_refused(
    layout: ConsortiumLayout, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(layout.root, tmp_path / "pki"))
    shutil.copy(copy / "node" / "bank-b" / "tls.crt", copy / "node" / "bank-a" / "tls.crt")
    with pytest.raises(IntegrityError, match="certifies node/bank-b, not node bank-a"):
        node_certificates(copy)
    foreign = init_consortium(tmp_path / "other", nodes=NODES)  # same names, another CA
    shutil.copy(foreign.root / "node" / "bank-a" / "tls.crt", copy / "node" / "bank-a" / "tls.crt")
    with pytest.raises(IntegrityError, match="not a certificate the consortium CA issued"):
        node_certificates(copy)


def _opened(layout: ConsortiumLayout, model: ScoringModel, sealed: Any) -> list[list[int]]:
    shares = []
    for node in NODES:
        key = layout.tls_paths(Identity("node", node, layout.trust_domain))[1].read_bytes()
        shares.append(open_weight_share(model, sealed, node, key))
    return shares


def test_sealing_gives_one_share_per_node_that_add_up_to_the_weights(
    layout: ConsortiumLayout, tmp_path: Path
) -> None:
    model = _model()
    weights = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    sealed = seal_weights_file(model, weights, layout.root)
    assert sealed.model_id == model.model_id and tuple(sealed.shares) == NODES
    shares = _opened(layout, model, sealed)
    assert [sum(column) for column in zip(*shares)] == [*WEIGHTS, INTERCEPT]
    assert all(share != [*WEIGHTS, INTERCEPT] for share in shares)


def test_register_seals_locally_and_sends_no_plaintext_weight(
    layout: ConsortiumLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []

    def register(client: GatewayClient, model: ScoringModel, sealed: Any = None) -> str:
        sent.append((model, sealed))
        return model.model_id

    monkeypatch.setattr(GatewayClient, "register_model", register)
    model_file = _write(tmp_path / "m.json", _secret_model())  # no owner: filled in
    weights = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    result = _invoke("model", "register", str(model_file), "--weights", str(weights), *_pki(layout))
    assert result.exit_code == 0, result.output
    ((model, sealed),) = sent
    assert model.owner == ALICE and model.weights is None
    assert result.stdout.strip() == model.model_id  # the id alone on stdout, for scripts
    assert "sealed to bank-a, bank-b, broker-c" in result.stderr
    request = model.model_dump_json() + sealed.model_dump_json()
    assert not any(str(abs(w)) in request for w in (*WEIGHTS, INTERCEPT))
    shares = _opened(layout, model, sealed)
    assert [sum(column) for column in zip(*shares)] == [*WEIGHTS, INTERCEPT]


@pytest.mark.parametrize(
    ("model", "with_weights", "problem"),
    [
        (_secret_model(), False, "has secret weights: give them with --weights"),
        (_public_model(), True, "carries public weights; --weights is for weights_secret"),
        (_public_model(owner="analyst/bob"), False, "owned by 'analyst/bob'"),
        (_public_model(name="PD 2027"), False, "'^[a-z_][a-z0-9_-]{0,62}$'"),  # shown verbatim
    ],
)
def test_register_refuses_what_the_gateway_would_refuse_without_calling_it(
    layout: ConsortiumLayout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: dict[str, Any],
    with_weights: bool,
    problem: str,
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the gateway was called")

    monkeypatch.setattr(GatewayClient, "register_model", unreachable)
    weights = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    extra = ["--weights", str(weights)] if with_weights else []
    result = _invoke(
        "model", "register", str(_write(tmp_path / "m.json", model)), *extra, *_pki(layout)
    )
    assert result.exit_code in (2, 3)
    assert result.output.startswith("error: ")
    assert problem in " ".join(result.output.split())
