"""Transport policy as served: keepalive clients and servers agree on, health on a full disk."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.client import tls_from_pki
from mpc_gateway.errors import InvalidQueryError, StorageUnavailableError
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.node.server import node_services
from mpc_gateway.node.service import Node
from mpc_gateway.proto.v1 import node_pb2_grpc
from mpc_gateway.rpc.client import HealthClient
from mpc_gateway.rpc.server import Readiness, Service, build_server, client_channel
from mpc_gateway.settings import GatewaySettings, NodeSettings, load_settings
from tests.forged import count_plan, forge, gateway_key

_CALL_S = 8.0  # eight ping intervals: a strict server has struck pings out by then
_PING_MS = 1000  # gRPC clients never ping more often than once a second


def _slow_service() -> Service:
    def wait(request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        time.sleep(_CALL_S)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    handler = grpc.method_handlers_generic_handler(
        "test.Slow",
        {
            "Wait": grpc.unary_unary_rpc_method_handler(
                wait,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )
    return Service(
        add=lambda servicer, server: server.add_generic_rpc_handlers((handler,)),
        servicer=None,
        name="test.Slow",
        methods=("Wait",),
        access={"Wait": ("analyst/*",)},
    )


def _long_call(files: Any, gateway: Gateway, server_keepalive_ms: int) -> Any:
    server, port, _ = build_server(
        "127.0.0.1:0",
        gateway.tls,
        [_slow_service()],
        "mpcgw.local",
        keepalive_ms=server_keepalive_ms,
    )
    server.start()
    tls = tls_from_pki(files.pki_dir, "analyst/alice")
    try:
        with client_channel(f"127.0.0.1:{port}", tls, keepalive_ms=_PING_MS) as channel:
            call = channel.unary_unary(
                "/test.Slow/Wait",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            return call(health_pb2.HealthCheckRequest(), timeout=30)
    finally:
        server.stop(0)


def test_a_call_longer_than_the_ping_interval_completes(files: Any, gateway: Gateway) -> None:
    reply = _long_call(files, gateway, server_keepalive_ms=_PING_MS)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_server_stricter_than_its_clients_ends_a_long_call_with_too_many_pings(
    files: Any, gateway: Gateway
) -> None:
    """What agreeing settings prevent: the server answers pings it did not expect with GOAWAY."""
    with pytest.raises(grpc.RpcError) as caught:
        _long_call(files, gateway, server_keepalive_ms=60_000)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "too_many_pings" in str(caught.value.details()).lower().replace(" ", "_")  # type: ignore[attr-defined]


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: writes fail with ENOSPC once it is full (needs root to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> None:
    ballast = open(disk / "ballast", "wb", buffering=0)  # unbuffered: closing flushes nothing
    try:
        while True:
            ballast.write(b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        ballast.close()


def test_a_full_disk_turns_health_not_serving_and_queries_unavailable(
    files: Any, tiny_disk: Path
) -> None:
    settings = load_settings(GatewaySettings, files.gateway_config)
    gateway = Gateway(settings.model_copy(update={"audit_db": tiny_disk / "audit.db"}))
    server, port, health = build_server("127.0.0.1:0", gateway.tls, [], "mpcgw.local")
    readiness = Readiness(health, [])
    gateway.audit.log.watch_storage(readiness.storage)  # as serve_gateway wires it
    readiness.recheck("storage", gateway.audit.log.recheck_storage, every_s=0.2)
    server.start()
    address = f"127.0.0.1:{port}"
    tls = tls_from_pki(files.pki_dir, "auditor/audrey")
    try:
        with HealthClient(address, tls) as probe:
            assert probe.status() == "SERVING"
            _fill(tiny_disk)
            with pytest.raises(StorageUnavailableError) as caught:
                with gateway.reading(gateway.identity, "loans"):
                    raise InvalidQueryError("probe")
            assert caught.value.public_message == (
                "the gateway gateway's audit log cannot be written: disk full"
            )
            assert caught.value.status == "UNAVAILABLE"
            assert probe.status() == "NOT_SERVING"
            assert "disk full" in readiness.held["storage"]
            time.sleep(0.5)  # rechecks while the disk is still full find it full
            assert probe.status() == "NOT_SERVING"
            size = gateway.audit.log.size()
            (tiny_disk / "ballast").unlink()  # the operator frees space: health recovers alone
            deadline = time.monotonic() + 10
            while probe.status() != "SERVING" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert probe.status() == "SERVING"
            assert gateway.audit.log.size() == size  # by a probe that added no entry
            gateway.audit.record("admin.disk_freed", str(gateway.identity))
    finally:
        server.stop(0)
        gateway.close()


def test_a_nodes_witness_log_on_a_full_disk_fails_with_what_to_fix(
    files: Any, tiny_disk: Path
) -> None:
    trail = AuditTrail.open(
        tiny_disk / "witness.db", gateway_key(files.pki_dir), "mpcgw.local/node/bank-a/audit"
    )
    problems: list[str | None] = []
    trail.log.watch_storage(problems.append)
    _fill(tiny_disk)
    with pytest.raises(
        StorageUnavailableError, match="node bank-a's audit log cannot be written: disk full"
    ):
        with trail.batch():
            trail.record("order.received", "gateway/gateway", details={"pad": "x" * 8192})
            trail.seal()
    assert problems == [None, "the node bank-a's audit log cannot be written: disk full"]
    trail.log.close()


def test_a_node_on_a_full_disk_is_not_serving_and_refuses_orders_as_unavailable(
    files: Any, tiny_disk: Path
) -> None:
    settings = load_settings(NodeSettings, files.node_config("bank-a"))
    node = Node(settings.model_copy(update={"audit_db": tiny_disk / "witness.db"}))
    services = node_services(node)
    server, port, health = build_server("127.0.0.1:0", node.tls, services, "mpcgw.local")
    node.witness.log.watch_storage(Readiness(health, [s.name for s in services]).storage)
    server.start()
    address = f"127.0.0.1:{port}"
    try:
        with HealthClient(address, tls_from_pki(files.pki_dir, "auditor/audrey")) as probe:
            assert probe.status() == "SERVING"
            _fill(tiny_disk)
            channel = client_channel(address, tls_from_pki(files.pki_dir, "gateway/gateway"))
            with channel, pytest.raises(grpc.RpcError) as caught:
                stub = node_pb2_grpc.NodeServiceStub(channel)
                stub.Execute(forge(files, count_plan()).message(), timeout=20)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            assert caught.value.details() == (  # type: ignore[attr-defined]
                "the node bank-a's audit log cannot be written: disk full"
            )
            assert probe.status() == "NOT_SERVING"
    finally:
        server.stop(0)
        node.close()
