"""The consortium PKI in use: MPyC --ssl handshakes between parties, and gRPC mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mpc_gateway.errors import UnauthenticatedError
from mpc_gateway.pki import (
    ConsortiumLayout,
    check_mpc_peer,
    identity_from_certificate,
    tls_credentials_bytes,
)
from tests.unit import pki_cases
from tests.unit.pki_cases import ALICE, GATEWAY

# the module-scoped fixtures, so that pytest finds them here
layout = pki_cases.layout
other_layout = pki_cases.other_layout


# --- MPyC --ssl handshakes -------------------------------------------------------------


def _mpyc_context(mpc_dir: Path, pid: int, purpose: ssl.Purpose, strict: bool) -> ssl.SSLContext:
    """Exactly what mpyc.runtime.start() builds (relative paths under the worker's cwd)."""
    with contextlib.chdir(mpc_dir):
        context = ssl.create_default_context(purpose)
        context.load_cert_chain(
            os.path.join(".config", f"party_{pid}.crt"),
            keyfile=os.path.join(".config", f"party_{pid}.key"),
        )
        context.load_verify_locations(cafile=os.path.join(".config", "mpyc_ca.crt"))
    if purpose is ssl.Purpose.CLIENT_AUTH:
        context.verify_mode = ssl.CERT_REQUIRED
    if strict:  # Python 3.13's create_default_context sets this
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


class _Peer(asyncio.Protocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[Any] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.connected.set_result(transport.get_extra_info("peercert"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)


async def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str
) -> tuple[Any, Any]:
    """(peercert the listener saw, peercert the dialer saw) after one TLS handshake."""
    loop = asyncio.get_running_loop()
    listener = _Peer()
    server = await loop.create_server(lambda: listener, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        transport, dialer = await loop.create_connection(
            _Peer, "127.0.0.1", port, ssl=client_ctx, server_hostname=hostname
        )
        seen_by_listener = await asyncio.wait_for(listener.connected, 5)
        transport.close()
        await asyncio.wait_for(asyncio.gather(dialer.lost, listener.lost), 5)
        return seen_by_listener, await dialer.connected
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("strict", [False, True], ids=["py311-defaults", "x509-strict"])
def test_mpyc_parties_handshake_and_bind_their_identities(
    layout: ConsortiumLayout, strict: bool
) -> None:
    # Party 0 dials party 1, which listens: the direction MPyC uses.
    listener_ctx = _mpyc_context(layout.mpc_dir("bank-b"), 1, ssl.Purpose.CLIENT_AUTH, strict)
    dialer_ctx = _mpyc_context(layout.mpc_dir("bank-a"), 0, ssl.Purpose.SERVER_AUTH, strict)
    seen_by_listener, seen_by_dialer = asyncio.run(
        _handshake(listener_ctx, dialer_ctx, "MPyC party 1")
    )
    check_mpc_peer(seen_by_listener, 0, layout.party_identity(0))
    check_mpc_peer(seen_by_dialer, 1, layout.party_identity(1))
    with pytest.raises(UnauthenticatedError, match="claiming party 2"):
        check_mpc_peer(seen_by_listener, 2, layout.party_identity(2))
    with pytest.raises(UnauthenticatedError, match="expected 'spiffe://mpcgw.local/node/bank-c'"):
        check_mpc_peer(seen_by_listener, 0, layout.party_identity(2))


def test_dialer_rejects_a_listener_with_another_partys_certificate(
    layout: ConsortiumLayout,
) -> None:
    listener_ctx = _mpyc_context(layout.mpc_dir("bank-b"), 1, ssl.Purpose.CLIENT_AUTH, False)
    dialer_ctx = _mpyc_context(layout.mpc_dir("bank-a"), 0, ssl.Purpose.SERVER_AUTH, False)
    with pytest.raises(ssl.SSLCertVerificationError, match="MPyC party 2"):
        asyncio.run(_handshake(listener_ctx, dialer_ctx, "MPyC party 2"))


def test_listener_accepts_any_consortium_client_so_the_worker_must_check(
    layout: ConsortiumLayout,
) -> None:
    listener_ctx = _mpyc_context(layout.mpc_dir("bank-b"), 1, ssl.Purpose.CLIENT_AUTH, False)
    intruder_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    intruder_ctx.load_cert_chain(*layout.tls_paths(ALICE))
    intruder_ctx.load_verify_locations(cafile=layout.ca_cert)
    seen_by_listener, _ = asyncio.run(_handshake(listener_ctx, intruder_ctx, "MPyC party 1"))
    with pytest.raises(UnauthenticatedError, match="not 'MPyC party 0'"):
        check_mpc_peer(seen_by_listener, 0, layout.party_identity(0))
    with pytest.raises(UnauthenticatedError, match="no verified certificate"):
        check_mpc_peer({}, 0, layout.party_identity(0))


# --- gRPC mutual TLS -------------------------------------------------------------------


class _RecordingHealth(health.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self.auth_contexts: list[dict[str, list[bytes]]] = []

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.auth_contexts.append(context.auth_context())
        return super().Check(request, context)


@contextlib.contextmanager
def _health_server(layout: ConsortiumLayout) -> Iterator[tuple[int, _RecordingHealth]]:
    ca, cert, key = tls_credentials_bytes(layout, GATEWAY)
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = _RecordingHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(None)


def _check(port: int, ca: bytes, client_key: bytes, client_cert: bytes) -> Any:
    credentials = grpc.ssl_channel_credentials(ca, client_key, client_cert)
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=5)


def test_grpc_mutual_tls_exposes_the_client_spiffe_id(layout: ConsortiumLayout) -> None:
    ca, cert, key = tls_credentials_bytes(layout, ALICE)
    with _health_server(layout) as (port, servicer):
        reply = _check(port, ca, key, cert)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    (auth,) = servicer.auth_contexts
    assert auth["peer_spiffe_id"] == [ALICE.spiffe_id.encode()]
    assert identity_from_certificate(auth["x509_pem_cert"][0]) == ALICE


def test_grpc_rejects_a_client_certificate_from_another_ca(
    layout: ConsortiumLayout, other_layout: ConsortiumLayout
) -> None:
    ca = layout.ca_cert.read_bytes()
    _, foreign_cert, foreign_key = tls_credentials_bytes(other_layout, ALICE)
    with _health_server(layout) as (port, servicer):
        with pytest.raises(grpc.RpcError) as failure:
            _check(port, ca, foreign_key, foreign_cert)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.auth_contexts == []
