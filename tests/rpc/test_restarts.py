"""Restarts that lose nothing, against the real gateway in-process.

A gateway is closed and a new one opened on the same files, as a restart does;
a crash is a gateway whose stores are dropped without its closing scan. The
queries that wait for approval survive, every submission left open gets an
explicit outcome, and a query still running when the grace period ends gets a
clean UNAVAILABLE and its audit outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mpc_gateway.client import tls_from_pki
from mpc_gateway.computations import AggregateRequest
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.errors import InvalidRequestError, ShuttingDownError
from mpc_gateway.gateway.lifecycle import QueryState
from mpc_gateway.gateway.pending import EndedQuery
from mpc_gateway.gateway.record import QueryRecord
from mpc_gateway.gateway.recovery import ABANDONED, LogScan
from mpc_gateway.gateway.server import drain_gateway, gateway_services, refusals_logged
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.pki import Identity
from mpc_gateway.policy.ledger import usage_key
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from mpc_gateway.rpc.drain import Gate
from mpc_gateway.rpc.server import build_server, client_channel
from mpc_gateway.settings import GatewaySettings, load_settings
from tests.rpc.conftest import dispatcher_to
from tests.rpc.test_lifecycle import ALICE, CAROL, RecordingDispatcher, _signed, _waiting

BOB = Identity("analyst", "bob")

Open = Callable[..., Gateway]


@pytest.fixture()
def settings(files: ConsortiumFiles, tmp_path: Path) -> GatewaySettings:
    loaded = load_settings(GatewaySettings, files.gateway_config)
    return loaded.model_copy(
        update={
            "audit_db": tmp_path / "audit.sqlite",
            "usage_db": tmp_path / "usage.sqlite",
            "models_dir": tmp_path / "models",
        }
    )


@pytest.fixture()
def open_gateway(settings: GatewaySettings, files: ConsortiumFiles) -> Iterator[Open]:
    opened: list[Gateway] = []

    def open_(own: GatewaySettings = settings, dispatcher: Any = None) -> Gateway:
        gateway = Gateway(own, dispatcher=dispatcher or RecordingDispatcher(files.nodes))
        opened.append(gateway)
        return gateway

    yield open_
    for gateway in opened:
        try:
            gateway.close()
        except Exception:  # closed by the test already (a restart)
            pass


def _crash(gateway: Gateway) -> None:
    """Drop the gateway's stores as a killed process would: no drain, no closing scan."""
    gateway.store.close()
    gateway.audit.close()
    gateway.governance.close()


def _kinds(gateway: Gateway, query_id: str) -> list[str]:
    return [e.event.kind for e in gateway.audit.log.events(query_id=query_id)]


def test_a_waiting_query_survives_a_restart_and_runs_once_approved(
    open_gateway: Open, files: ConsortiumFiles
) -> None:
    before = open_gateway()
    query_id = _waiting(before)
    plan_hash = before.status(ALICE, query_id).plan.plan_hash
    before.close()

    after = open_gateway()
    assert after.recovered.resumed == (query_id,) and not after.recovered.abandoned
    assert [q.query_id for q in after.pending(CAROL)] == [query_id]
    tracked = after.status(ALICE, query_id)
    assert tracked.state is QueryState.WAITING and tracked.plan.plan_hash == plan_hash
    after.decide(CAROL, query_id, _signed(files, plan_hash, query_id=query_id))  # as signed
    assert tracked.done.wait(10)
    assert after.dispatcher.runs == [query_id]  # type: ignore[attr-defined]  # the recorder
    kinds = _kinds(after, query_id)
    assert kinds.count("query.pending") == 1 and "query.abandoned" not in kinds
    assert kinds[-1] == "query.failed"  # the recording dispatcher computes nothing


def test_approvals_given_before_a_restart_still_count_after_it(
    open_gateway: Open, files: ConsortiumFiles
) -> None:
    before = open_gateway()
    query_id = _waiting(before)
    plan_hash = before.status(ALICE, query_id).plan.plan_hash
    given = _signed(files, plan_hash, query_id=query_id)
    before.decide(CAROL, query_id, given)  # quorum 1: it runs at once, and fails (no nodes)
    assert before.status(ALICE, query_id).done.wait(10)
    second = _waiting(before)
    before.close()

    after = open_gateway()
    assert after.recovered.resumed == (second,)
    ended = after.status(ALICE, query_id)  # the first one ended before the restart
    assert isinstance(ended, EndedQuery) and ended.state == "failed"
    assert "no nodes" in ended.reason
    with pytest.raises(InvalidRequestError, match="no query"):  # not bob's to see
        after.status(BOB, query_id)


def test_the_same_signed_decision_cannot_approve_a_second_identical_query(
    open_gateway: Open, files: ConsortiumFiles
) -> None:
    gateway = open_gateway()
    first, second = _waiting(gateway), _waiting(gateway)  # the same request, twice
    plan_hash = gateway.status(ALICE, first).plan.plan_hash
    assert gateway.status(ALICE, second).plan.plan_hash == plan_hash  # identical plans
    given = _signed(files, plan_hash, query_id=first)
    gateway.decide(CAROL, first, given)
    assert gateway.status(ALICE, second).state is QueryState.WAITING  # not approved with it
    size = gateway.audit.log.size()
    with pytest.raises(InvalidRequestError, match=f"is for query {first}, not query {second}"):
        gateway.decide(CAROL, second, given)
    assert gateway.audit.log.size() == size
    assert gateway.status(ALICE, first).done.wait(10)
    gateway.close()

    after = open_gateway()  # and not after a restart either
    with pytest.raises(InvalidRequestError, match="needs a decision of its own"):
        after.decide(CAROL, second, given)
    after.decide(CAROL, second, _signed(files, plan_hash, query_id=second))  # its own does
    assert after.status(ALICE, second).done.wait(10)
    assert after.dispatcher.runs == [second]  # type: ignore[attr-defined]


def test_a_waiting_query_the_changed_policy_forbids_is_refused_with_an_audit_entry(
    open_gateway: Open, settings: GatewaySettings, tmp_path: Path
) -> None:
    before = open_gateway()
    query_id = _waiting(before)
    before.close()
    link = next(n for n in settings.nodes if n.name == "bank-a")
    stricter = tmp_path / "bank-a-policy.toml"
    stricter.write_text(
        link.policy.read_text().replace('["analyst/alice", "analyst/bob"]', '["analyst/bob"]')
    )
    nodes = tuple(
        n.model_copy(update={"policy": stricter}) if n.name == "bank-a" else n
        for n in settings.nodes
    )

    after = open_gateway(settings.model_copy(update={"nodes": nodes}))
    assert after.recovered.refused == (query_id,) and after.pending(CAROL) == []
    refused = after.audit.log.events(query_id=query_id)[-1].event
    assert refused.kind == "query.refused" and refused.details["rule"] == "policy.changed"
    assert "policies changed while it waited" in str(refused.details["reason"])
    status = after.status(ALICE, query_id)
    assert isinstance(status, EndedQuery) and status.state == "rejected"
    assert "policies changed" in status.reason


def test_a_crash_leaves_no_submission_without_an_outcome(open_gateway: Open) -> None:
    gateway = open_gateway()
    running = QueryRecord(gateway.audit, "q-running", "loans", str(ALICE))
    request = AggregateRequest(dataset="loans", aggregates=(parse_aggregate("count"),))
    plan = gateway.explain(ALICE, request)[0].plan
    gateway.submissions.submit(running, plan, request, "", [])
    started = _waiting(gateway)
    gateway.status(ALICE, started).transition(QueryState.WAITING, QueryState.RUNNING)
    gateway.book.store.started(started)  # type: ignore[union-attr]  # approved, then the crash
    waiting = _waiting(gateway)
    _crash(gateway)

    after = open_gateway()
    assert sorted(after.recovered.abandoned) == sorted(["q-running", started])
    assert after.recovered.resumed == (waiting,)
    for query_id in ("q-running", started):
        outcome = after.audit.log.events(query_id=query_id)[-1].event
        assert outcome.kind == "query.abandoned" and outcome.details["reason"] == ABANDONED
        status = after.status(ALICE, query_id)
        assert isinstance(status, EndedQuery) and status.state == "abandoned"
        assert status.reason == ABANDONED
    closed_at = after.audit.log.size()
    after.close()

    again = open_gateway()  # a clean stop scanned the log: only the new start's own entries
    assert again.recovered.scanned == again.audit.log.size() - closed_at
    assert not again.recovered.abandoned
    assert _kinds(again, "q-running").count("query.abandoned") == 1
    assert again.recovered.resumed == (waiting,)


def test_a_start_reads_only_the_entries_written_since_the_last_scan(open_gateway: Open) -> None:
    gateway = open_gateway()
    for _ in range(3):
        _waiting(gateway, "rating")
    size = gateway.audit.log.size()
    _crash(gateway)
    after = open_gateway()
    # the previous start scanned up to its own start entries; the crash skipped the closing scan
    assert 0 < after.recovered.scanned <= size
    assert len(after.recovered.resumed) == 3


class StuckDispatcher(RecordingDispatcher):
    """Nodes that never answer until the gateway stops them, as the real dispatcher is stopped."""

    def __init__(self, nodes: tuple[str, ...]) -> None:
        super().__init__(nodes)
        self.dispatched = threading.Event()
        self._stopped = threading.Event()
        self.reason = ""

    def run(self, query_id: str, *args: Any, **kwargs: Any) -> Any:
        self.runs.append(query_id)
        self.dispatched.set()
        self._stopped.wait(30)
        raise ShuttingDownError(f"query {query_id}: {self.reason}", query_id=query_id)

    def stop(self, reason: str) -> None:
        self.reason = reason
        self._stopped.set()


def test_a_query_still_running_after_the_grace_period_ends_unavailable_with_its_outcome(
    open_gateway: Open, files: ConsortiumFiles, settings: GatewaySettings
) -> None:

    gateway = open_gateway(
        settings.model_copy(update={"shutdown_grace_s": 0.5}), StuckDispatcher(files.nodes)
    )
    request = AggregateRequest(
        dataset="loans", aggregates=(parse_aggregate("count"),), purpose="risk monitoring"
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            gateway.run(ALICE, request)
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert gateway.dispatcher.dispatched.wait(10)  # type: ignore[attr-defined]
    counted = usage_key("loans", str(ALICE))
    assert gateway.governance.ledger.count(counted) == 1  # the query's step, reserved
    started = time.monotonic()
    drain_gateway(gateway, Gate("the gateway"), time.monotonic() + 0.5)
    thread.join(10)
    assert time.monotonic() - started < 10
    [err] = errors
    assert isinstance(err, ShuttingDownError) and err.status == "UNAVAILABLE"
    assert "shutting down" in err.public_message and "0.5 s grace" in err.public_message
    query_id = gateway.dispatcher.runs[0]  # type: ignore[attr-defined]
    assert err.query_id == query_id

    after = open_gateway(settings)
    assert after.governance.ledger.count(counted) == 0  # given back, as for any failure
    outcome = after.audit.log.events(query_id=query_id)[-1].event
    assert outcome.kind == "query.failed" and "shutting down" in str(outcome.details["reason"])
    assert not after.recovered.abandoned  # it had its outcome before the audit log closed
    status = after.status(ALICE, query_id)
    assert isinstance(status, EndedQuery) and "shutting down" in status.reason


def test_a_draining_server_refuses_new_calls_but_not_health(
    files: ConsortiumFiles, open_gateway: Open
) -> None:
    """Each refusal is in the audit log while it is open, and still a clean refusal after."""
    gateway = open_gateway()
    gate = Gate("the gateway")
    server, port, health = build_server(
        "127.0.0.1:0",
        gateway.tls,
        gateway_services(gateway),
        "mpcgw.local",
        gate=gate,
        on_refusal=refusals_logged(gateway),
    )
    server.start()
    try:
        channel = client_channel(f"127.0.0.1:{port}", tls_from_pki(files.pki_dir, "analyst/alice"))
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.ListDatasets(gateway_pb2.ListDatasetsRequest(), timeout=10)  # open: served
        health.enter_graceful_shutdown()
        gate.close()
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListDatasets(gateway_pb2.ListDatasetsRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == (
            "the gateway is shutting down: try again after it restarts"
        )
        (refused,) = gateway.audit.log.events(kind="request.refused")
        assert refused.event.actor == "analyst/alice"
        assert refused.event.details["method"] == "ListDatasets"
        assert "shutting down" in refused.event.details["reason"]
        probe = health_pb2_grpc.HealthStub(channel)
        reply = probe.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        gateway.close()  # the end of a drain: the audit log is closed, refusals stay clean
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListDatasets(gateway_pb2.ListDatasetsRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        server.stop(0)


class SilentNodes(node_pb2_grpc.NodeServiceServicer):
    """Nodes that take an order and never answer it; they record the aborts they get."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.aborts: list[str] = []
        self.release = threading.Event()

    def Execute(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.received.set()
        self.release.wait(30)
        context.abort(grpc.StatusCode.ABORTED, "released by the test")

    def AbortSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.aborts.append(request.reason)
        return node_pb2.AbortReply()


def test_the_real_dispatcher_stops_a_query_the_nodes_never_answer(
    open_gateway: Open, files: ConsortiumFiles, settings: GatewaySettings
) -> None:
    nodes = SilentNodes()
    request = AggregateRequest(
        dataset="loans", aggregates=(parse_aggregate("count"),), purpose="risk monitoring"
    )
    errors: list[BaseException] = []
    with dispatcher_to(files, nodes) as dispatcher:
        gateway = open_gateway(settings, dispatcher)
        thread = threading.Thread(target=lambda: _run_catching(gateway, request, errors))
        try:
            thread.start()
            assert nodes.received.wait(10)
            drain_gateway(gateway, Gate("the gateway"), time.monotonic() + 0.2)
            thread.join(10)
            [err] = errors
            assert isinstance(err, ShuttingDownError) and "grace period" in err.public_message
            told = time.monotonic() + 10  # the aborts are sent without waiting for the nodes
            while not any("shutting down" in r for r in nodes.aborts) and time.monotonic() < told:
                time.sleep(0.05)
            assert any("shutting down" in reason for reason in nodes.aborts)  # nodes told to stop
        finally:
            nodes.release.set()


def _run_catching(gateway: Gateway, request: AggregateRequest, errors: list[BaseException]) -> None:
    try:
        gateway.run(ALICE, request)
    except BaseException as err:  # noqa: BLE001 - the test inspects it
        errors.append(err)


def test_the_scan_is_kept_current_while_the_gateway_runs(open_gateway: Open) -> None:
    gateway = open_gateway()
    scan = LogScan(gateway.audit.log, gateway.store, every_s=0.05)
    waiting = _waiting(gateway)
    _wait = time.monotonic() + 10
    while gateway.store.scanned()[0] != gateway.audit.log.size():
        assert time.monotonic() < _wait, "the scan did not catch up"
        time.sleep(0.05)
    scan.close()
    assert [q.query_id for q in gateway.store.scanned()[1]] == [waiting]  # still open
