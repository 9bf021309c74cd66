"""Calls to every node on the gateway's long-lived threads: results, failures, closing."""

from __future__ import annotations

import threading

import grpc
import pytest

from mpc_gateway.errors import GatewayError, NodeUnavailableError, ShuttingDownError
from mpc_gateway.gateway.calls import NodeCalls

NODES = [("bank-a", object()), ("bank-b", object()), ("broker-c", object())]


class Unavailable(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a blocking call raises when the node cannot be reached."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection refused"

    def trailing_metadata(self) -> tuple[()]:
        return ()


@pytest.fixture
def calls() -> NodeCalls:
    return NodeCalls(NODES, workers=4)  # type: ignore[arg-type]


def test_every_node_is_called_in_party_order_on_threads_that_last(calls: NodeCalls) -> None:
    threads: set[int] = set()

    def call(name: str, stub: object) -> str:
        threads.add(threading.get_ident())
        return name.upper()

    for _ in range(20):
        results = [(n, f.result()) for n, f in calls.every_node(call)]
        assert results == [("bank-a", "BANK-A"), ("bank-b", "BANK-B"), ("broker-c", "BROKER-C")]
    assert threading.get_ident() not in threads and len(threads) <= 4  # the pool's, reused


def test_a_failed_call_raises_its_domain_error_naming_the_node(calls: NodeCalls) -> None:
    def call(name: str, stub: object) -> str:
        if name == "bank-b":
            raise Unavailable()
        return name

    futures = dict(calls.every_node(call))
    assert futures["bank-a"].result() == "bank-a"
    with pytest.raises(NodeUnavailableError, match="node bank-b is unavailable: connection"):
        futures["bank-b"].result()


def test_after_closing_no_call_starts_and_one_cut_short_says_why(calls: NodeCalls) -> None:
    def closed_channel(name: str, stub: object) -> str:
        raise ValueError("Cannot invoke RPC on closed channel!")

    with pytest.raises(ValueError, match="closed channel"):  # open: a bug, not a shutdown
        calls.every_node(closed_channel)[0][1].result()
    started = threading.Event()
    release = threading.Event()

    def waiting(name: str, stub: object) -> str:
        started.set()
        release.wait(5)
        raise ValueError("Cannot invoke RPC on closed channel!")

    [(_, first), *_] = calls.every_node(waiting)
    assert started.wait(5)
    calls.close("the gateway is stopping: SIGTERM")
    release.set()
    with pytest.raises(ShuttingDownError, match="the gateway is stopping: SIGTERM"):
        first.result()
    with pytest.raises(ShuttingDownError, match="SIGTERM") as refused:
        calls.every_node(closed_channel)
    assert isinstance(refused.value, GatewayError)
