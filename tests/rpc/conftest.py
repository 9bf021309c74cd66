"""Servicers served in-process on port 0: a real gateway and a real node, no consortium.

The files come from :func:`mpc_gateway.devnet.localnet.prepare` (PKI, data,
configs, the example policies); no other process runs. The nodes' addresses in
the gateway's config listen nowhere, so whatever reaches dispatch fails as
UNAVAILABLE, which is all a test of who may call what needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    files: ConsortiumFiles,
    nodes: node_pb2_grpc.NodeServiceServicer | Sequence[node_pb2_grpc.NodeServiceServicer],
    **batching: int,
) -> Iterator[Dispatcher]:
    """The real dispatcher, its links pointing at stand-ins on port 0.

    ``nodes``: one stand-in behind every link, or one per node in party order.
    ``batching``: the dispatcher's ``batch_max`` and ``batches_in_flight``.
    """
    layout = load_layout(files.pki_dir)
    methods = ("Execute", "ExecuteBatch", "AbortSession", "OpenSession")
    access = {m: ("gateway/gateway",) for m in methods}
    node_tls = tls_credentials_bytes(layout, Identity("node", "bank-a", layout.trust_domain))
    each = [nodes] * len(layout.nodes) if not isinstance(nodes, Sequence) else list(nodes)
    servers, ports = [], []
    for servicer in dict.fromkeys(each):  # one server per distinct stand-in
        service = Service.of(node_pb2, node_pb2_grpc, "NodeService", servicer, access)
        server, port, _ = build_server("127.0.0.1:0", node_tls, [service], layout.trust_domain)
        server.start()
        servers.append(server)
        ports.append(port)
    port_of = dict(zip(dict.fromkeys(each), ports, strict=True))
    settings = load_settings(GatewaySettings, files.gateway_config)
    by_name = {n.name: n for n in settings.nodes}
    links = [
        by_name[name].model_copy(update={"address": f"127.0.0.1:{port_of[servicer]}"})
        for name, servicer in zip(layout.nodes, each, strict=True)
    ]
    gateway_id = Identity("gateway", "gateway", layout.trust_domain)
    key = load_signing_key(layout.signing_paths(gateway_id)[1])
    tls = tls_credentials_bytes(layout, gateway_id)
    dispatcher = Dispatcher(links, layout.nodes, tls, key, **batching)
    try:
        yield dispatcher
    finally:
        dispatcher.close()
        for server in servers:
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
