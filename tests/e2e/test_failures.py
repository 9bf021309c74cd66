"""Bad input, wrong identities and failing nodes: precise errors, no hangs, recovery."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.sqlite import load_raw
from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.errors import (
    DeadlineExceededError,
    GatewayError,
    InvalidQueryError,
    NodeUnavailableError,
    PolicyDeniedError,
    UnauthenticatedError,
)
from mpc_gateway.orders import batch_message
from mpc_gateway.pki import (
    Identity,
    init_consortium,
    load_layout,
    tls_credentials_bytes,
)
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from mpc_gateway.rpc.server import client_channel
from tests.e2e.conftest import client_for, gateway_events, gateway_stub
from tests.e2e.test_audit import Outcome
from tests.e2e.test_audit_reconcile import verify_args
from tests.forged import count_plan, forge, gateway_key

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("aggregates", "where", "group_by", "message"),
    [
        (["mean:salary"], "", None, "unknown column 'salary'"),
        (["median:exposure"], "", None, "unsupported aggregate 'median'"),
        (["count"], "exposure >", None, "filter: expected a number"),
        (
            ["count"],
            "sector = 'mining'",
            None,
            "'mining' is not in the declared domain of 'sector'",
        ),
        (["count"], "", "exposure", "group by needs a categorical column"),
        (["mean:sector"], "", None, "needs a numeric column"),
        (["count"], "exposure > 1e300", None, "outside the declared bounds of 'exposure'"),
        (["count"], "exposure IN (1, -5)", None, "outside the declared bounds of 'exposure'"),
    ],
)
def test_invalid_query_is_invalid_argument(
    consortium, aggregates, where, group_by, message
) -> None:
    files = consortium.files
    layout = load_layout(files.pki_dir)
    tls = tls_credentials_bytes(layout, Identity("analyst", "alice", layout.trust_domain))
    stub = gateway_pb2_grpc.GatewayServiceStub(client_channel(files.gateway_address, tls))
    job = gateway_pb2.AggregateJob(
        aggregates=[
            gateway_pb2.AggregateSpec(func=a.split(":")[0], column=a.partition(":")[2])
            for a in aggregates
        ],
        group_by=group_by or "",
    )
    request = gateway_pb2.ComputationRequest(dataset="loans", where=where, aggregate=job)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Run(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()
    assert "Traceback" not in caught.value.details()


def test_a_huge_literal_is_refused_with_its_query_id_and_the_session_stays_up(
    analyst: GatewayClient,
) -> None:
    with pytest.raises(InvalidQueryError, match="outside the declared bounds") as caught:
        analyst.query("loans", ["count"], where="exposure > 1e300")
    assert caught.value.query_id
    result = analyst.query("loans", ["count"])  # no node crashed, no session was torn down
    assert result.outcome.rows[0][1][0] == 3 * 3000


def test_unknown_dataset_names_the_known_ones(analyst: GatewayClient) -> None:
    with pytest.raises(
        InvalidQueryError, match="unknown dataset 'trades'; known datasets: alerts, loans, loans_dp"
    ):
        analyst.query("trades", ["count"])


def test_auditor_may_not_run_queries(consortium) -> None:
    with (
        client_for(consortium, "auditor/audrey") as auditor,
        pytest.raises(PolicyDeniedError, match="needs the role analyst"),
    ):
        auditor.query("loans", ["count"])


def test_certificate_from_another_ca_is_rejected_with_a_clear_message(consortium, tmp_path) -> None:
    other = init_consortium(tmp_path / "rogue", nodes=["x", "y", "z"], analysts=("alice",))
    tls = tls_credentials_bytes(other, Identity("analyst", "alice", other.trust_domain))
    # trust the real CA so only the client certificate is wrong
    real_ca = load_layout(consortium.files.pki_dir).ca_cert.read_bytes()
    # the client knows before connecting: TLS would only tell it "Socket closed"
    with pytest.raises(UnauthenticatedError, match="not issued by the consortium CA.*unknown CA"):
        GatewayClient(consortium.files.gateway_address, (real_ca, tls[1], tls[2]), timeout_s=5)
    # a client holding the rogue CA too (so its own check passes) hears what failed
    with GatewayClient(consortium.files.gateway_address, tls, timeout_s=5) as rogue:
        with pytest.raises(NodeUnavailableError, match="not issued by the consortium CA this"):
            rogue.datasets()


def test_analyst_may_not_call_a_node(consortium) -> None:
    files = consortium.files
    layout = load_layout(files.pki_dir)
    tls = tls_credentials_bytes(layout, Identity("analyst", "alice", layout.trust_domain))
    stub = node_pb2_grpc.NodeServiceStub(client_channel(files.node_addresses["bank-a"], tls))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Execute(node_pb2.SignedOrder(order=b"{}", signature=b"x" * 64), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "only gateway/gateway may" in caught.value.details()


def test_node_refuses_an_order_signed_by_another_key(consortium) -> None:
    forged = forge(consortium.files, count_plan(), key=Ed25519PrivateKey.generate())
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, "bank-b").Execute(forged.message(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "signature does not verify" in caught.value.details()


def test_node_refuses_a_tampered_order(consortium) -> None:
    forged = forge(consortium.files, count_plan())
    data, signature = forged.data, forged.signature
    tampered = data.replace(b'"analyst/alice"', b'"analyst/mallory"')
    assert tampered != data
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, "bank-b").Execute(
            node_pb2.SignedOrder(order=tampered, signature=signature), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_node_refuses_a_batch_changed_after_signing_or_out_of_sequence(consortium) -> None:
    files, stub = consortium.files, gateway_stub(consortium, "broker-c")
    epoch = int(time.time() * 1000) + 10**9  # a session of its own, ahead of the real one
    one, two, other = (
        forge(files, count_plan(), query_id=q, epoch=epoch, sequence=s)
        for q, s in (("b1", 0), ("b2", 1), ("b3", 1))
    )

    def batch(signed: list[bytes], sent: list[bytes]) -> node_pb2.SignedBatch:
        evidence = [one.message().evidence, two.message().evidence]
        signature = gateway_key(files.pki_dir).sign(batch_message(signed))
        return node_pb2.SignedBatch(orders=sent, signature=signature, evidence=evidence)

    with pytest.raises(grpc.RpcError) as swapped:  # the gateway signed b1, b2; b3 took b2's place
        stub.ExecuteBatch(batch([one.data, two.data], [one.data, other.data]), timeout=10)
    assert swapped.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "signature does not verify" in swapped.value.details()
    with pytest.raises(grpc.RpcError) as reordered:  # signed so, by a gateway gone wrong
        stub.ExecuteBatch(batch([two.data, one.data], [two.data, one.data]), timeout=10)
    assert reordered.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not consecutive orders" in reordered.value.details()


def test_health_and_reflection_are_served(consortium) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    layout = load_layout(consortium.files.pki_dir)
    tls = tls_credentials_bytes(layout, Identity("auditor", "audrey", layout.trust_domain))
    with client_channel(consortium.files.gateway_address, tls) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert "mpc_gateway.proto.v1.GatewayService" in services
    assert "grpc.health.v1.Health" in services


def _query_in_background(client: GatewayClient) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = client.query("loans", ["count", "mean:exposure"], group_by="sector")
        except GatewayError as err:
            outcome["error"] = err
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _recovers(consortium: LocalConsortium, name: str, analyst: GatewayClient) -> None:
    consortium.start_node(name)
    consortium.wait_healthy(30, names=[name])
    time.sleep(1.2)  # the gateway's channel retries a lost node at least once a second
    result = analyst.query("loans", ["count"])
    assert result.outcome.rows[0][1][0] == 3 * 3000


def test_node_killed_mid_query_fails_cleanly_then_recovers(consortium, analyst) -> None:
    analyst.query("loans", ["count"])  # a warm session exists
    victim = consortium.processes["bank-b"]
    os.kill(victim.pid, signal.SIGSTOP)  # the node stops answering; its peers wait mid-MPC
    thread, outcome = _query_in_background(analyst)
    time.sleep(1.0)
    consortium.kill("bank-b")  # now it dies, taking its MPC worker with it
    thread.join(timeout=20)
    assert not thread.is_alive(), "the query must end, not hang"
    error = outcome.get("error")
    assert isinstance(error, NodeUnavailableError | GatewayError), outcome
    assert "bank-b" in error.public_message
    assert outcome["seconds"] < 8.0  # within the query deadline
    with pytest.raises(NodeUnavailableError, match="node bank-b is unavailable"):
        analyst.query("loans", ["count"])  # while it is down: fails fast and says who
    _recovers(consortium, "bank-b", analyst)


def test_pseudonyms_with_a_node_down_fail_naming_it_are_logged_then_recover(
    consortium: LocalConsortium, analyst: GatewayClient
) -> None:
    before = analyst.pseudonyms(["NID-000000007"])
    consortium.kill("broker-c")
    started = time.monotonic()
    with pytest.raises(NodeUnavailableError, match="node broker-c is unavailable") as err:
        analyst.pseudonyms(["NID-000000007"])
    assert time.monotonic() - started < 8.0 and err.value.query_id
    events = gateway_events(consortium)
    [failed] = [e for e in events if e["query_id"] == err.value.query_id][1:]
    assert failed["kind"] == "pseudonyms.failed" and "broker-c" in failed["details"]["reason"]
    _recovers(consortium, "broker-c", analyst)
    assert analyst.pseudonyms(["NID-000000007"]) == before  # the same key, shares intact


def test_node_that_never_answers_fails_the_query_by_its_deadline(consortium, analyst) -> None:
    victim = consortium.processes["broker-c"]
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        thread, outcome = _query_in_background(analyst)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert "error" in outcome, outcome
        assert 7.0 < outcome["seconds"] < 15.0  # the gateway's 8 s query deadline
        error = outcome["error"]
        # the frozen node is named, not the healthy ones that timed out waiting for it
        assert isinstance(error, DeadlineExceededError), error
        assert "node broker-c did not answer before the deadline" in error.public_message, error
        assert "bank-a" not in error.public_message and "bank-b" not in error.public_message
        assert error.query_id, "a failed query's error names the query"
    finally:
        consortium.kill("broker-c")
    _recovers(consortium, "broker-c", analyst)


BATCHED = [  # (analyst, filter): a different answer each, so a result handed to another shows
    ("analyst/alice" if i % 2 else "analyst/bob", f"sector = '{sector}'")
    for i, sector in enumerate(["energy", "retail", "transport", "financials"] * 3)
]


def _all_at_once(consortium: LocalConsortium, queries: list[tuple[str, str]]) -> list[object]:
    """Every query from its own client and thread, released together; results or errors."""
    clients = {who: client_for(consortium, who) for who in {who for who, _ in queries}}
    ended: list[object] = [None] * len(queries)
    start = threading.Barrier(len(queries))

    def one(i: int, who: str, where: str) -> None:
        start.wait()
        try:
            ended[i] = clients[who].query("loans", ["count", "sum:exposure"], where=where)
        except GatewayError as err:
            ended[i] = err

    threads = [threading.Thread(target=one, args=(i, *q)) for i, q in enumerate(queries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a query of a batch never ended"
    for client in clients.values():
        client.close()
    return ended


def _dispatches(consortium: LocalConsortium) -> dict[str, dict[str, object]]:
    raw = load_raw(consortium.files.root / "audit.sqlite")
    events = [AuditEvent.from_entry(entry) for entry in raw.entries]
    return {e.query_id: e.details for e in events if e.kind == "query.dispatched" and e.query_id}


def _released_together(consortium: LocalConsortium, node: str) -> list[set[str]]:
    """The queries each checkpoint ``node`` cosigned released, as its witness log says."""
    raw = load_raw(consortium.files.root / "nodes" / node / "audit.sqlite")
    together: dict[str, set[str]] = {}
    for event in (AuditEvent.from_entry(entry) for entry in raw.entries):
        if event.kind == "result.released" and event.query_id:
            together.setdefault(str(event.details["gateway_checkpoint"]), set()).add(event.query_id)
    return list(together.values())


def test_two_analysts_queries_share_batches_and_each_gets_its_own_answer(
    consortium, tmp_path
) -> None:
    with client_for(consortium) as alice:  # one at a time: nothing to batch
        answers = {
            where: alice.query("loans", ["count", "sum:exposure"], where=where).outcome.rows
            for where in {where for _, where in BATCHED}
        }
    for _ in range(3):  # on a quiet machine, the first queries may each find the lane free
        ended = _all_at_once(consortium, BATCHED)
        dispatches = _dispatches(consortium)
        batches: dict[tuple[object, object], set[str]] = {}
        for (who, where), result in zip(BATCHED, ended, strict=True):
            assert not isinstance(result, GatewayError), result
            assert result.outcome.rows == answers[where], (who, where)  # its own, no other's
            details = dispatches[result.query_id]
            batch = details.get("batch")
            if isinstance(batch, dict):
                batches.setdefault((details["epoch"], batch["first"]), set()).add(who)
        mixed = any(len(analysts) == 2 for analysts in batches.values())
        if mixed and any(len(q) > 1 for q in _released_together(consortium, "bank-a")):
            break
    else:
        raise AssertionError("no batch held both analysts' queries, or no release was shared")
    audited = Outcome(verify_args(consortium, tmp_path / "auditor.json"))  # batches reconcile
    assert audited.exit_code == 0, audited.output


def test_a_node_dying_under_a_batch_fails_each_of_its_queries_cleanly(consortium) -> None:
    with client_for(consortium) as alice:
        alice.query("loans", ["count"])  # a warm session exists
        victim = consortium.processes["bank-b"]
        os.kill(victim.pid, signal.SIGSTOP)  # its peers wait for it; the next queries queue
        queries = BATCHED[:8]
        run = threading.Thread(target=lambda: ended.extend(_all_at_once(consortium, queries)))
        ended: list[object] = []
        run.start()
        time.sleep(1.5)
        consortium.kill("bank-b")
        run.join(60)
        assert len(ended) == len(queries)
        ids = set()
        for outcome in ended:
            assert isinstance(outcome, GatewayError), outcome
            assert "bank-b" in outcome.public_message, outcome.public_message
            assert outcome.query_id
            ids.add(outcome.query_id)
        assert len(ids) == len(queries)  # each error names its own query
        raw = load_raw(consortium.files.root / "audit.sqlite")
        failed = {
            e.query_id
            for e in (AuditEvent.from_entry(entry) for entry in raw.entries)
            if e.kind == "query.failed"
        }
        assert ids <= failed  # every query of the batch has its outcome in the log
        dispatches = _dispatches(consortium)
        assert any(isinstance(dispatches[q].get("batch"), dict) for q in ids), "no batch formed"
        _recovers(consortium, "bank-b", alice)
