"""A real consortium for end-to-end tests: gateway and three nodes as processes.

Each process is started with the same command an institution runs, on loopback,
with a throwaway consortium PKI; the MPC step runs across the nodes' worker
processes over mutual TLS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.audit.sqlite import load_raw
from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet.localnet import LocalConsortium, prepare, schema_path
from mpc_gateway.pki import Identity, load_layout, tls_credentials_bytes
from mpc_gateway.proto.v1 import node_pb2_grpc
from mpc_gateway.query.schema import load_schema
from mpc_gateway.rpc.server import client_channel

ROWS = 3000


def start_consortium(root: Path, **options: object) -> LocalConsortium:
    files = prepare(root, **{"rows": ROWS, "seed": 11, "query_timeout_s": 8.0, **options})  # type: ignore[arg-type]
    return LocalConsortium(files).start()


@contextmanager
def running_consortium(root: Path, **options: object) -> Iterator[LocalConsortium]:
    """``start_consortium``'s consortium, stopped on leaving."""
    running = start_consortium(root, **options)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def shared_consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    """One consortium for every module that only queries it (``QUERIES_ONLY = True``)."""
    with running_consortium(tmp_path_factory.mktemp("shared-consortium")) as running:
        yield running


@pytest.fixture(scope="session")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    """One consortium under the example policies, for every module that only queries it."""
    with running_consortium(tmp_path_factory.mktemp("governed"), policies="examples") as running:
        yield running


@pytest.fixture(scope="module")
def consortium(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalConsortium]:
    """The module's own consortium, or the shared one if the module only queries it.

    A module that stops, kills or restarts a process, changes a file of the
    consortium, or checks its whole audit log starts its own (each start costs
    about 10 s of the suite).
    """
    if getattr(request.module, "QUERIES_ONLY", False):
        yield request.getfixturevalue("shared_consortium")
        return
    with running_consortium(tmp_path_factory.mktemp("consortium")) as running:
        yield running


@pytest.fixture(scope="module")
def short_deadlines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    """A consortium whose aggregates have 2 s to answer, risk jobs the default 600 s."""
    with running_consortium(tmp_path_factory.mktemp("short-deadlines"), query_timeout_s=2.0) as c:
        yield c


def client_for(
    consortium: LocalConsortium,
    identity: str = "analyst/alice",
    timeout_s: float = 30.0,
    address: str | None = None,
) -> GatewayClient:
    """``identity``'s client of the gateway, at ``address`` (default: where it listens)."""
    files = consortium.files
    where = address or files.gateway_address
    return GatewayClient.from_pki(
        files.pki_dir, identity, where, timeout_s=timeout_s, purpose="testing"
    )


@pytest.fixture()
def analyst(consortium: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(consortium) as client:
        yield client


@pytest.fixture(scope="session")
def loans_columns() -> dict[str, object]:
    return dict(load_schema(schema_path()).columns)


def gateway_events(consortium: LocalConsortium) -> list[dict[str, Any]]:
    """The gateway's audit entries, read from its file (as an auditor holding a copy)."""
    return [json.loads(e) for e in load_raw(consortium.files.root / "audit.sqlite").entries]


def gateway_stub(consortium: LocalConsortium, node: str) -> node_pb2_grpc.NodeServiceStub:
    """A stub to ``node`` holding the gateway's TLS identity (what a compromised gateway sends)."""
    layout = load_layout(consortium.files.pki_dir)
    tls = tls_credentials_bytes(layout, Identity("gateway", "gateway", layout.trust_domain))
    return node_pb2_grpc.NodeServiceStub(client_channel(consortium.files.node_addresses[node], tls))
