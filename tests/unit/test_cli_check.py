"""``mpcgw check``: the keys, the question and the alert filter it sends, and what it prints."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.check import CheckOutcome, alert_filter
from mpc_gateway.errors import IntegrityError, InvalidRequestError
from mpc_gateway.oprf import blind, joint_key, pseudonyms_with_key, shares_in_one_process
from mpc_gateway.pki import ConsortiumLayout
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.proto.v1 import gateway_pb2
from tests.oprf_nodes import node_answers, relayed_by
from tests.unit import cli_cases
from tests.unit.cli_cases import _invoke, _pki, _write
from tests.unit.test_cli_risk import Recorder, _released, gateway

layout = cli_cases.layout  # the module-scoped fixture, so that pytest finds it here
__all__ = ["gateway", "layout"]

LEIS = ["5493000000000001MPCG01", "5493000000000777MPCG01"]


def test_last_n_days_and_a_kind_become_the_alert_filter() -> None:
    now = datetime(2026, 12, 1, 15, tzinfo=UTC)  # day 20788
    assert alert_filter("aml", 30, "", now) == "kind = 'aml' AND raised_day >= 20758"
    assert alert_filter("", None, "amount > 10", now) == "(amount > 10)"
    assert alert_filter("", 0, "", now) == "raised_day >= 20788"  # today only


def test_check_sends_the_keys_and_prints_one_answer_per_key(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    gateway.answer = _released(CheckOutcome(LEIS, "flagged", [1, 0]))
    result = _invoke("check", *LEIS, "--kind", "fraud", "--days", "90", *_pki(layout))
    assert result.exit_code == 0, result.output
    job = gateway.calls[0]
    assert (job["kind"], job["dataset"], list(job["keys"]), job["question"]) == (
        "check",
        "alerts",
        LEIS,
        "",  # the gateway's default: flagged
    )
    assert job["where"].startswith("kind = 'fraud' AND raised_day >= ")
    assert "flagged at a member" in result.output and "1 of 2 flagged" in result.output

    gateway.answer = _released(CheckOutcome(LEIS, "members", [2, 0]))
    result = _invoke("check", LEIS[0], "--members", "--json", *_pki(layout))
    assert result.exit_code == 0, result.output
    assert gateway.calls[1]["question"] == "members"
    assert json.loads(result.output)["keys"] == [
        {"key": LEIS[0], "members": 2},
        {"key": LEIS[1], "members": 0},
    ]


def test_national_ids_are_pseudonymised_blinded_before_anything_is_sent(
    layout: ConsortiumLayout, gateway: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = shares_in_one_process(3, 1)
    sent: list[gateway_pb2.PseudonymRequest] = []

    def nodes(request: gateway_pb2.PseudonymRequest) -> gateway_pb2.PseudonymReply:
        sent.append(request)  # as the gateway relays it: every node raises every point
        answers = node_answers(layout, keys, request.points)
        return gateway_pb2.PseudonymReply(query_id="q" * 32, threshold=1, answers=answers)

    monkeypatch.setattr(GatewayClient, "_send", relayed_by(nodes))
    ids = _write(tmp_path / "ids.txt", "NID-000000001\n# a comment\nNID-000000002\n")
    gateway.answer = _released(CheckOutcome(["a", "b"], "flagged", [0, 0]))
    result = _invoke("check", "--keys", str(ids), "--national-ids", *_pki(layout))
    assert result.exit_code == 0, result.output
    job = gateway.calls[0]
    assert list(job["keys"]) == pseudonyms_with_key(
        ["NID-000000001", "NID-000000002"], joint_key(keys)
    )
    assert job["key_column"] == "person_pseudonym"
    assert "NID-" not in json.dumps(job, default=str)
    assert len(sent) == 1 and len(sent[0].points) == 2 and b"NID" not in sent[0].SerializeToString()


def test_answers_whose_key_statement_is_not_the_nodes_own_are_refused(
    layout: ConsortiumLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, other = shares_in_one_process(3, 1), shares_in_one_process(3, 1)
    Answers = list[gateway_pb2.NodePseudonyms]
    tamper: list[Callable[[Answers, Sequence[bytes]], None]] = []

    def nodes(request: gateway_pb2.PseudonymRequest) -> gateway_pb2.PseudonymReply:
        answers = node_answers(layout, keys, request.points)
        for change in tamper:
            change(answers, request.points)
        return gateway_pb2.PseudonymReply(query_id="q" * 32, threshold=1, answers=answers)

    monkeypatch.setattr(GatewayClient, "_send", relayed_by(nodes))
    client = GatewayClient.from_pki(layout.root, "analyst/alice", "127.0.0.1:1", purpose="t")
    assert client.pseudonyms(["NID-1"]) == pseudonyms_with_key(["NID-1"], joint_key(keys))

    def signed_by_another(answers: Answers, points: Sequence[bytes]) -> None:
        answers[1].key_signature, answers[1].signing_certificate = (
            answers[0].key_signature,
            answers[0].signing_certificate,
        )

    def statement_changed(answers: Answers, points: Sequence[bytes]) -> None:
        answers[2].key_statement = node_answers(layout, other, points)[2].key_statement

    def every_node_states_another_key(answers: Answers, points: Sequence[bytes]) -> None:
        for mine, theirs in zip(answers, node_answers(layout, other, points), strict=True):
            mine.key_statement, mine.key_signature = theirs.key_statement, theirs.key_signature

    def one_node_states_another_key(answers: Answers, points: Sequence[bytes]) -> None:
        theirs = node_answers(layout, other, points)[0]
        answers[0].key_statement, answers[0].key_signature = (
            theirs.key_statement,
            theirs.key_signature,
        )

    for change, message in (
        (signed_by_another, "another node's key"),
        (statement_changed, "key statement"),
        (every_node_states_another_key, "party 1, 2, 3's answers do not prove"),
        (one_node_states_another_key, "different pseudonym keys"),
    ):
        tamper[:] = [change]
        with pytest.raises(IntegrityError, match=message) as err:
            client.pseudonyms(["NID-1"])
        assert err.value.query_id == "q" * 32


def test_many_ids_go_in_requests_each_sent_before_the_last_is_unblinded_and_stay_in_order(
    layout: ConsortiumLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = shares_in_one_process(3, 1)
    ids = [f"NID-{n}" for n in range(5)]
    events: list[str] = []
    replaced: list[int] = []  # requests whose answers a gateway swaps for another's

    def nodes(request: gateway_pb2.PseudonymRequest) -> gateway_pb2.PseudonymReply:
        n = len([e for e in events if e.startswith("read")]) - 1
        points = [blind("NID-other").point] * len(request.points) if n in replaced else None
        answers = node_answers(layout, keys, points or request.points)
        return gateway_pb2.PseudonymReply(query_id=f"{n:032d}", threshold=1, answers=answers)

    monkeypatch.setattr("mpc_gateway.client.MAX_POINTS", 2)
    monkeypatch.setattr(GatewayClient, "_send", relayed_by(nodes, events))
    client = GatewayClient.from_pki(layout.root, "analyst/alice", "127.0.0.1:1", purpose="t")
    assert client.pseudonyms(ids) == pseudonyms_with_key(ids, joint_key(keys))
    assert events == ["sent 0", "sent 1", "read 0", "sent 2", "read 1", "read 2"]

    events.clear()
    replaced.append(0)  # the first request's answers are not for its points: nothing returns
    with pytest.raises(IntegrityError, match="do not prove") as err:
        client.pseudonyms(ids)
    assert err.value.query_id == f"{0:032d}"
    assert events == ["sent 0", "sent 1", "read 0", "cancelled 1"]  # and no third is sent

    events.clear()
    with pytest.raises(InvalidRequestError, match="empty national identifier"):
        client.pseudonyms([*ids, " - "])  # found before the first request spends allowance
    assert events == []


def test_a_check_without_keys_or_with_two_questions_is_refused_before_anything_is_sent(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    result = _invoke("check", *_pki(layout))
    assert result.exit_code == 2
    assert "give the keys to check" in result.output
    result = _invoke("check", LEIS[0], "--members", "--overlap", *_pki(layout))
    assert result.exit_code == 2
    assert "either --members or --overlap" in result.output
    assert gateway.calls == []


def test_overlap_asks_one_number_for_the_whole_watchlist(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    gateway.answer = _released(CheckOutcome(LEIS, "overlap", [1]))
    result = _invoke("check", *LEIS, "--overlap", *_pki(layout))
    assert result.exit_code == 0, result.output
    assert gateway.calls[0]["question"] == "overlap"
    assert "1 of 2 keys flagged at some member" in result.output


def test_a_watchlist_file_may_exceed_a_batch_only_for_its_overlap(
    layout: ConsortiumLayout, gateway: Recorder, tmp_path: Path
) -> None:
    keys = [f"5493{i:012d}MPCG00" for i in range(MAX_BATCH + 1)]
    path = _write(tmp_path / "watchlist.txt", "\n".join(keys))
    result = _invoke("check", "--keys", str(path), *_pki(layout))
    assert result.exit_code == 2
    assert f"holds {MAX_BATCH + 1:,} keys; a batch takes at most {MAX_BATCH:,}" in result.output
    assert gateway.calls == []
    gateway.answer = _released(CheckOutcome(keys, "overlap", [7]))
    result = _invoke("check", "--keys", str(path), "--overlap", *_pki(layout))
    assert result.exit_code == 0, result.output
    assert len(gateway.calls[0]["keys"]) == MAX_BATCH + 1
    assert f"7 of {MAX_BATCH + 1:,} keys flagged at some member" in result.output


def test_amount_asks_the_overlap_s_summed_alert_amounts_and_needs_overlap(
    layout: ConsortiumLayout, gateway: Recorder
) -> None:
    result = _invoke("check", *LEIS, "--amount", *_pki(layout))
    assert result.exit_code == 2
    assert "--amount sums a watchlist's overlap: give --overlap too" in result.output
    assert gateway.calls == []
    gateway.answer = _released(CheckOutcome(LEIS, "overlap", [1], Decimal("1234.50")))
    result = _invoke("check", *LEIS, "--overlap", "--amount", *_pki(layout))
    assert result.exit_code == 0, result.output
    assert gateway.calls[0]["question"] == "overlap" and gateway.calls[0]["amount"] is True
    assert "1 of 2 keys flagged at some member; their alerts' amounts total 1,234.50" in (
        result.output
    )


def test_pseudonymising_a_file_without_its_id_column_or_identity_is_refused(
    layout: ConsortiumLayout, tmp_path: Path
) -> None:
    source = _write(tmp_path / "customers.csv", "customer,nid\na,NID-1\n")
    out = tmp_path / "out.parquet"
    result = _invoke("oprf", "pseudonymise", str(source), "--out", str(out), *_pki(layout))
    assert result.exit_code == 2 and "give --identity" in result.output
    args = ["oprf", "pseudonymise", str(source), "--out", str(out), "--identity", "node/bank-a"]
    result = _invoke(*args, *_pki(layout))
    assert result.exit_code == 2 and "has no column 'national_id'" in result.output
    result = _invoke(*args[:4], str(tmp_path / "out.json"), *args[5:], *_pki(layout))
    assert result.exit_code == 2 and "read and write .csv or .parquet" in result.output
    assert not out.exists()
