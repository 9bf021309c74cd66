"""Servicers served in-process on port 0: a real gateway and a real node, no consortium.

The files come from :func:`mpc_gateway.devnet.localnet.prepare` (PKI, data,
configs, the example policies); no other process runs. The nodes' addresses in
the gateway's config listen nowhere, so whatever reaches dispatch fails as
UNAVAILABLE, which is all a test of who may call what needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from mpc_gateway.client import tls_from_pki
from mpc_gateway.devnet.localnet import ConsortiumFiles, prepare
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.gateway.server import gateway_services, refusals_logged
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.node.server import node_services
from mpc_gateway.node.service import Node
from mpc_gateway.pki import Identity, load_layout, load_signing_key, tls_credentials_bytes
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.rpc.server import Service, build_server, client_channel
from mpc_gateway.settings import GatewaySettings, NodeSettings, load_settings

IDENTITIES = ("analyst/alice", "auditor/audrey", "approver/carol", "gateway/gateway", "node/bank-a")


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumFiles:
    return prepare(tmp_path_factory.mktemp("rpc") / "consortium", rows=60, policies="examples")


@dataclass
class Served:
    """A server on 127.0.0.1:port, and a channel to it as any identity of the PKI."""

    server: grpc.Server
    port: int
    pki: Path

    def channel(self, identity: str) -> grpc.Channel:
        return client_channel(f"127.0.0.1:{self.port}", tls_from_pki(self.pki, identity))


def serve(
    services: list[Service], tls: tuple[bytes, bytes, bytes], pki: Path, **options: Any
) -> Served:
    server, port, _ = build_server("127.0.0.1:0", tls, services, "mpcgw.local", **options)
    server.start()
    return Served(server, port, pki)


@contextmanager
def own_node(files: ConsortiumFiles, name: str, tmp_path: Path) -> Iterator[tuple[Node, Served]]:
    """``name``'s node with a witness log and ledgers of its own under ``tmp_path``, served."""
    settings = load_settings(NodeSettings, files.node_config(name))
    node = Node(
        settings.model_copy(
            update={"audit_db": tmp_path / "w.sqlite", "usage_db": tmp_path / "u.sqlite"}
        )
    )
    served = serve(node_services(node), node.tls, files.pki_dir)
    try:
        yield node, served
    finally:
        served.server.stop(0)
        node.close()


@contextmanager
def dispatcher_to(
    files: ConsortiumFiles, nodes: node_pb2_grpc.NodeServiceServicer
) -> Iterator[Dispatcher]:
    """The real dispatcher, every node's link pointing at ``nodes`` (one stand-in) on port 0."""
    layout = load_layout(files.pki_dir)
    access = {m: ("gateway/gateway",) for m in ("Execute", "AbortSession", "OpenSession")}
    service = Service.of(node_pb2, node_pb2_grpc, "NodeService", nodes, access)
    node_tls = tls_credentials_bytes(layout, Identity("node", "bank-a", layout.trust_domain))
    server, port, _ = build_server("127.0.0.1:0", node_tls, [service], layout.trust_domain)
    server.start()
    settings = load_settings(GatewaySettings, files.gateway_config)
    links = [n.model_copy(update={"address": f"127.0.0.1:{port}"}) for n in settings.nodes]
    gateway_id = Identity("gateway", "gateway", layout.trust_domain)
    key = load_signing_key(layout.signing_paths(gateway_id)[1])
    dispatcher = Dispatcher(links, layout.nodes, tls_credentials_bytes(layout, gateway_id), key)
    try:
        yield dispatcher
    finally:
        dispatcher.close()
        server.stop(0)


@pytest.fixture(scope="session")
def gateway(files: ConsortiumFiles) -> Iterator[Gateway]:
    gateway = Gateway(load_settings(GatewaySettings, files.gateway_config))
    yield gateway
    gateway.close()


@pytest.fixture(scope="session")
def gateway_server(gateway: Gateway, files: ConsortiumFiles) -> Iterator[Served]:
    served = serve(
        gateway_services(gateway),
        gateway.tls,
        files.pki_dir,
        # as serve_gateway builds it
        on_refusal=refusals_logged(gateway),
    )
    yield served
    served.server.stop(0)


@pytest.fixture(scope="session")
def node_server(files: ConsortiumFiles) -> Iterator[Served]:
    node = Node(load_settings(NodeSettings, files.node_config("bank-a")))
    served = serve(node_services(node), node.tls, files.pki_dir)
    yield served
    served.server.stop(0)
    node.close()
