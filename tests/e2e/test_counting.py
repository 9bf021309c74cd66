"""Every node counts every order it executes against its daily limit, and only those.

A compromised gateway (it holds the gateway's signing key) sends orders that skip
its own counting. Before, a node counted a quantile search only on its first round,
so invented rounds ran uncounted; and an order some node refused still counted at
the others. Here bank-a allows 4 orders a day; the orders go straight to the nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest

from mpc_gateway.computations import build
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.devnet.localnet import LocalConsortium, prepare, schema_path
from mpc_gateway.proto.v1 import node_pb2
from mpc_gateway.query.schema import load_schema
from tests.e2e.conftest import gateway_stub
from tests.forged import Forged, forge

pytestmark = pytest.mark.e2e

LIMIT = 4


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    files = prepare(tmp_path_factory.mktemp("limited"), rows=500, seed=3, query_timeout_s=8.0)
    policy = files.policy("bank-a")
    text = policy.read_text()
    policy.write_text(
        text.replace("[datasets.loans]\n", f"[datasets.loans]\nmax_queries_per_day = {LIMIT}\n", 1)
    )
    running = LocalConsortium(files).start()
    try:
        yield running
    finally:
        running.stop()


def _round(
    consortium: LocalConsortium, path: list[list[int]], name: str, deadline_s: float = 15.0
) -> Forged:
    """A quantile search round, as an order (the path: the brackets of the rounds before)."""
    request = QuantileRequest(
        dataset="loans", purpose="testing", column="exposure", levels=(Decimal("0.5"),)
    )
    plan = build(request, load_schema(schema_path()), "analyst/alice", 3)
    return forge(consortium.files, plan, query_id=name, step={"path": path}, deadline_s=deadline_s)


def _send(consortium: LocalConsortium, forged: Forged, nodes: list[str]) -> list[object]:
    """The order at each of ``nodes`` at once: each node's reply, or its RpcError."""

    def one(node: str) -> object:
        try:
            return gateway_stub(consortium, node).Execute(forged.message(), timeout=15)
        except grpc.RpcError as err:
            return err

    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(one, nodes))


def _ran(replies: list[object]) -> bool:
    return all(isinstance(r, node_pb2.ResultShares) for r in replies)


def test_every_round_counts_and_an_order_that_failed_anywhere_counts_nowhere(
    limited: LocalConsortium,
) -> None:
    everyone = list(limited.files.nodes)
    assert _ran(_send(limited, _round(limited, [], "search-1"), everyone))
    assert _ran(_send(limited, _round(limited, [[1]], "search-2"), everyone))  # a later round
    # broker-c never gets this one (as if it had refused it): the MPC cannot finish anywhere
    partial = _send(limited, _round(limited, [], "partial", deadline_s=3.0), ["bank-a", "bank-b"])
    assert not any(isinstance(r, node_pb2.ResultShares) for r in partial)
    assert _ran(_send(limited, _round(limited, [[2]], "search-3"), everyone))
    assert _ran(_send(limited, _round(limited, [[3]], "search-4"), everyone))  # the 4th counted
    refused = _send(limited, _round(limited, [[4]], "search-5"), ["bank-a"])[0]
    assert isinstance(refused, grpc.RpcError)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "dataset.daily_limit" in str(refused.details()) and "bank-a" in str(refused.details())
