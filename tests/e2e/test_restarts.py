"""Restarts that lose nothing, with real processes: the gateway drains on SIGTERM, survives SIGKILL.

The consortium runs the example policies (bank-b's approver carol must approve
"supervisory review" queries). Every test ends with ``mpcgw audit verify``
against the gateway and every node's witness log.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.client import ApproverClient, GatewayClient
from mpc_gateway.devnet.localnet import LocalConsortium, prepare
from mpc_gateway.errors import ApprovalMissingError, GatewayError
from mpc_gateway.gateway.recovery import ABANDONED, CLOSING
from mpc_gateway.rpc.client import HealthClient
from tests.e2e.conftest import ROWS, client_for, gateway_events
from tests.e2e.test_audit import _cli, _node_args

pytestmark = pytest.mark.e2e

GRACE_S = 3.0


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    files = prepare(
        tmp_path_factory.mktemp("restarts"),
        rows=ROWS,
        seed=11,
        query_timeout_s=8.0,
        policies="examples",
    )
    config = files.gateway_config  # a short grace period, as an operator may set it
    grace = f"shutdown_grace_s = {GRACE_S}\nquery_timeout_s"
    config.write_text(config.read_text().replace("query_timeout_s", grace, 1))
    running = LocalConsortium(files).start()
    try:
        yield running
    finally:
        running.stop()


def _open_submissions(consortium: LocalConsortium) -> list[str]:
    events = gateway_events(consortium)
    closed = {e["query_id"] for e in events if e["kind"] in CLOSING}
    return [
        e["query_id"]
        for e in events
        if e["kind"] == "query.submitted" and e["query_id"] not in closed
    ]


def _outcome(consortium: LocalConsortium, query_id: str) -> dict[str, Any]:
    [ending] = [
        e for e in gateway_events(consortium) if e["query_id"] == query_id and e["kind"] in CLOSING
    ]
    return ending


def _wait_for(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _in_background(client: GatewayClient, outcomes: list[object]) -> threading.Thread:
    def run() -> None:
        try:
            outcomes.append(client.query("loans", ["count", "mean:exposure"], group_by="sector"))
        except GatewayError as err:
            outcomes.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _restart_gateway(consortium: LocalConsortium) -> None:
    consortium.start_gateway()
    consortium.wait_healthy(120, names=["gateway"])


def _verify(consortium: LocalConsortium, tmp_path: Path) -> None:
    state = tmp_path / "auditor-state.json"
    result = _cli(consortium, "audit", "verify", *_node_args(consortium), "--state", str(state))
    assert result.exit_code == 0, result.output


def test_sigterm_lets_queries_finish_and_the_waiting_one_is_approvable_after(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    files = consortium.files
    with client_for(consortium, timeout_s=120) as alice:
        alice.purpose = "supervisory review"
        with pytest.raises(ApprovalMissingError) as caught:
            alice.query("loans", ["count", "mean:exposure"], group_by="rating")
        waiting_id = str(caught.value.query_id)
        alice.purpose = "risk monitoring"
        alice.query("loans", ["count"])  # a warm session
        outcomes: list[object] = []
        threads = [_in_background(alice, outcomes) for _ in range(4)]
        _wait_for(lambda: len(_open_submissions(consortium)) > 0 or len(outcomes) == 4)
        assert consortium.terminate("gateway") == 0
        for thread in threads:
            thread.join(60)
        assert len(outcomes) == 4
        for outcome in outcomes:  # a result, or a clean UNAVAILABLE; never INTERNAL
            assert not isinstance(outcome, GatewayError) or outcome.status == "UNAVAILABLE", outcome
        assert _open_submissions(consortium) == []  # every submission has its outcome

        _restart_gateway(consortium)
        with ApproverClient(files.pki_dir, "approver/carol", files.gateway_address) as carol:
            assert waiting_id in [q.query_id for q in carol.pending()]
            carol.decide(waiting_id, "approve", "supervisory review of rating risk")
        result = alice.wait(waiting_id, timeout_s=120)
        assert len(result.outcome.rows) > 0
    assert _outcome(consortium, waiting_id)["kind"] == "result.released"
    _verify(consortium, tmp_path)


def test_a_query_that_cannot_finish_in_the_grace_period_ends_unavailable_with_its_outcome(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    victim = consortium.processes["broker-c"]
    with client_for(consortium, timeout_s=120) as alice:
        alice.purpose = "risk monitoring"
        alice.query("loans", ["count"])  # a warm session
        os.kill(victim.pid, signal.SIGSTOP)  # broker-c stops answering: the query cannot end
        try:
            outcomes: list[object] = []
            thread = _in_background(alice, outcomes)
            _wait_for(lambda: len(_open_submissions(consortium)) == 1)
            [query_id] = _open_submissions(consortium)
            gateway = consortium.processes["gateway"]
            gateway.send_signal(signal.SIGTERM)
            with HealthClient(files_address(consortium), _auditor_tls(consortium)) as probe:
                _wait_for(lambda: _status_or_gone(probe) != "SERVING", 30)
            with pytest.raises(GatewayError) as refused:  # draining: no new query
                alice.query("loans", ["count"])
            assert refused.value.status == "UNAVAILABLE"
            assert gateway.wait(timeout=60) == 0
            consortium.processes.pop("gateway")
            thread.join(60)
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        [error] = outcomes
        assert isinstance(error, GatewayError) and error.status == "UNAVAILABLE", error
        assert "shutting down" in error.public_message and error.query_id == query_id
        ending = _outcome(consortium, query_id)
        assert ending["kind"] == "query.failed"
        assert "shutting down" in ending["details"]["reason"]

        _restart_gateway(consortium)
        status = alice.status(query_id)
        assert status.state == "failed" and "shutting down" in status.reason
        _wait_for(lambda: _answers(alice), 60)  # broker-c is back in the next session
    _verify(consortium, tmp_path)


def test_after_sigkill_every_open_submission_is_abandoned_and_the_analyst_told(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    victim = consortium.processes["bank-b"]
    with client_for(consortium, timeout_s=120) as alice:
        alice.purpose = "risk monitoring"
        alice.query("loans", ["count"])
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            outcomes: list[object] = []
            thread = _in_background(alice, outcomes)
            _wait_for(lambda: len(_open_submissions(consortium)) == 1)
            [query_id] = _open_submissions(consortium)
            consortium.kill("gateway")  # a crash: no drain, no outcome
            thread.join(60)
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        [lost] = outcomes
        assert isinstance(lost, GatewayError) and lost.status == "UNAVAILABLE", lost
        assert _open_submissions(consortium) == [query_id]  # the crash left it open

        _restart_gateway(consortium)
        assert _open_submissions(consortium) == []
        ending = _outcome(consortium, query_id)
        assert ending["kind"] == "query.abandoned" and ending["details"]["reason"] == ABANDONED
        status = alice.status(query_id)
        assert status.state == "abandoned" and status.reason == ABANDONED
        _wait_for(lambda: _answers(alice), 60)
    _verify(consortium, tmp_path)


def files_address(consortium: LocalConsortium) -> str:
    return consortium.files.gateway_address


def _auditor_tls(consortium: LocalConsortium) -> Any:
    from mpc_gateway.client import tls_from_pki

    return tls_from_pki(consortium.files.pki_dir, "auditor/audrey")


def _status_or_gone(probe: HealthClient) -> str:
    try:
        return probe.status()
    except GatewayError:
        return "GONE"


def _answers(alice: GatewayClient) -> bool:
    try:
        return alice.query("loans", ["count"]).outcome.rows[0][1][0] == 3 * 3000
    except GatewayError:
        time.sleep(0.5)
        return False


def test_a_node_stopped_with_sigterm_drains_and_comes_back(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    with client_for(consortium, timeout_s=120) as alice:
        alice.purpose = "risk monitoring"
        alice.query("loans", ["count"])
        outcomes: list[object] = []
        threads = [_in_background(alice, outcomes) for _ in range(3)]
        assert consortium.terminate("bank-a") == 0
        for thread in threads:
            thread.join(60)
        for outcome in outcomes:  # a result, or a clean failure naming the node; never INTERNAL
            assert not isinstance(outcome, GatewayError) or outcome.status != "INTERNAL", outcome
        assert _open_submissions(consortium) == []
        consortium.start_node("bank-a")
        consortium.wait_healthy(60, names=["bank-a"])
        _wait_for(lambda: _answers(alice), 60)
    _verify(consortium, tmp_path)
