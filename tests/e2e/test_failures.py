"""Bad input, wrong identities and failing nodes: precise errors, no hangs, recovery."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
from mpc_gateway.pki import (
    Identity,
    init_consortium,
    load_layout,
    tls_credentials_bytes,
)
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from mpc_gateway.rpc.server import client_channel
from tests.e2e.conftest import client_for
from tests.forged import count_plan, forge

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


def _gateway_stub(consortium: LocalConsortium, node: str) -> node_pb2_grpc.NodeServiceStub:
    layout = load_layout(consortium.files.pki_dir)
    tls = tls_credentials_bytes(layout, Identity("gateway", "gateway", layout.trust_domain))
    return node_pb2_grpc.NodeServiceStub(client_channel(consortium.files.node_addresses[node], tls))


def test_node_refuses_an_order_signed_by_another_key(consortium) -> None:
    forged = forge(consortium.files, count_plan(), key=Ed25519PrivateKey.generate())
    with pytest.raises(grpc.RpcError) as caught:
        _gateway_stub(consortium, "bank-b").Execute(forged.message(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "signature does not verify" in caught.value.details()


def test_node_refuses_a_tampered_order(consortium) -> None:
    forged = forge(consortium.files, count_plan())
    data, signature = forged.data, forged.signature
    tampered = data.replace(b'"analyst/alice"', b'"analyst/mallory"')
    assert tampered != data
    with pytest.raises(grpc.RpcError) as caught:
        _gateway_stub(consortium, "bank-b").Execute(
            node_pb2.SignedOrder(order=tampered, signature=signature), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


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
