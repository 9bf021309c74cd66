"""Over a real network: every node in its own network namespace, with and without latency.

Each node runs inside a namespace of its own (its own veth link to a bridge, a
private address, not even a loopback interface up), the gateway and the analyst
in the root namespace; a relay there stands in front of every node's gRPC and
MPC ports and the gateway's, so the analyst reaches the gateway, the gateway the
nodes, and the nodes each other, only across the namespaces' links (and, in the
10 ms test, the relay). Nothing is mocked: the MPC runs between the node
processes over those links. Needs root (``ip netns``); skipped, saying why,
without it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from mpc_gateway.devnet.demo import ExampleQuery, run_checked
from mpc_gateway.devnet.localnet import DEFAULT_NODES
from mpc_gateway.devnet.netns import (
    GATEWAY_ROUTE,
    NamespacedConsortium,
    namespaced_consortium,
    namespaces_unavailable,
    node_namespaces,
)
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

ROWS = 500
ONE_WAY_S = 0.005  # a 10 ms round trip
QUERY = ExampleQuery(
    "across namespaces",
    ("count", "sum:exposure", "mean:exposure", "stddev:exposure"),
    where="exposure > 1000",
    group_by="sector",
)


@pytest.fixture(scope="module")
def namespaced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedConsortium]:
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("netns")
    with (
        node_namespaces(DEFAULT_NODES) as net,
        namespaced_consortium(
            root, net, relayed=True, rows=ROWS, seed=11, query_timeout_s=8.0
        ) as running,
    ):
        yield running


def _network_namespace(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_every_node_runs_in_a_network_namespace_of_its_own(
    namespaced: NamespacedConsortium,
) -> None:
    processes = namespaced.consortium.processes
    ours = _network_namespace("self")
    nodes = {_network_namespace(processes[name].pid) for name in DEFAULT_NODES}
    assert len(nodes) == len(DEFAULT_NODES) and ours not in nodes
    assert _network_namespace(processes["gateway"].pid) == ours
    for name in DEFAULT_NODES:  # each listens at its namespace's address, not loopback
        assert namespaced.files.listen_address(name).startswith(namespaced.net.address(name))


def test_an_aggregate_across_the_namespaces_equals_the_pooled_plaintext(
    namespaced: NamespacedConsortium, loans_columns: dict[str, object]
) -> None:
    with client_for(namespaced.consortium) as analyst:
        checked = run_checked(analyst, namespaced.files, QUERY, loans_columns)
    assert checked.matches, checked.as_json()


def test_the_same_aggregate_through_10ms_round_trips_gives_the_same_answer(
    namespaced: NamespacedConsortium, loans_columns: dict[str, object]
) -> None:
    relay = namespaced.relay
    assert relay is not None
    with client_for(namespaced.consortium, address=namespaced.analyst_address) as analyst:
        run_checked(analyst, namespaced.files, QUERY, loans_columns)  # the channel is up
        relay.delay_s = ONE_WAY_S
        relay.take()
        try:
            started = time.monotonic()
            checked = run_checked(analyst, namespaced.files, QUERY, loans_columns)
            elapsed = time.monotonic() - started
            flights, _ = relay.take()
        finally:
            relay.delay_s = 0.0
    assert checked.matches, checked.as_json()
    assert elapsed >= 4 * ONE_WAY_S  # the request and answer, the order and the nodes' answers
    crossed = {flight.route for flight in flights}
    # the analyst's call, the nodes' gRPC services and the MPC listeners (party 0 only dials)
    assert crossed >= {
        GATEWAY_ROUTE,
        *(f"{node} grpc" for node in DEFAULT_NODES),
        "bank-b mpc",
        "broker-c mpc",
    }
