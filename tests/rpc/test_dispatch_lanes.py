"""The real dispatcher keeps one order per lane, and a failure aborts and reopens its lane only.

The nodes are stand-ins served on port 0 (one servicer behind all three links):
they read every signed order and session order they are sent and answer as the
test says, so what is checked is what the gateway sends: lanes, epochs,
sequence numbers, aborts and session openings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest

from mpc_gateway.computations import Plan, build
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.errors import (
    DeadlineExceededError,
    GatewayError,
    PolicyDeniedError,
    StorageUnavailableError,
)
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.orders import ExecutionOrder, SessionOrder
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.query.schema import load_schema
from tests.forged import count_plan, forge
from tests.rpc.conftest import dispatcher_to


class ScriptedNodes(node_pb2_grpc.NodeServiceServicer):
    """Refuse every short order (all nodes alike), fail every long one at its deadline."""

    def __init__(self) -> None:
        self.orders: list[ExecutionOrder] = []
        self.aborts: list[tuple[str, int]] = []
        self.opened: list[SessionOrder] = []
        self._lock = threading.Lock()

    def Execute(self, request: Any, context: grpc.ServicerContext) -> Any:
        order = ExecutionOrder.from_bytes(request.order)
        with self._lock:
            self.orders.append(order)
        if order.lane == "short":
            raise PolicyDeniedError("refused by rule test")
        raise DeadlineExceededError("MPC session: the MPC step did not finish in time")

    def AbortSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.aborts.append((request.lane, request.epoch))
        return node_pb2.AbortReply()

    def OpenSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        order = SessionOrder.from_bytes(request.order)
        with self._lock:
            self.opened.append(order)
        return node_pb2.SessionReply(epoch=order.epoch, lane=order.lane)


@pytest.fixture()
def dispatched(files: ConsortiumFiles) -> Iterator[tuple[Dispatcher, ScriptedNodes]]:
    nodes = ScriptedNodes()
    with dispatcher_to(files, nodes) as dispatcher:
        yield dispatcher, nodes


def _quantile_plan(files: ConsortiumFiles) -> Plan:
    request = QuantileRequest(
        dataset="loans", purpose="risk monitoring", column="exposure", levels=(Decimal("0.5"),)
    )
    return build(request, load_schema(schema_path()), "analyst/alice", len(files.nodes))


def _run(dispatcher: Dispatcher, files: ConsortiumFiles, plan: Plan) -> GatewayError:
    evidence = forge(files, plan).evidence
    with pytest.raises(GatewayError) as caught:
        dispatcher.run("q", plan, 5.0, evidence)
    return caught.value


def test_a_long_lane_failure_aborts_and_reopens_the_long_lane_only(
    dispatched: tuple[Dispatcher, ScriptedNodes], files: ConsortiumFiles
) -> None:
    dispatcher, nodes = dispatched
    assert isinstance(_run(dispatcher, files, count_plan()), PolicyDeniedError)
    assert isinstance(_run(dispatcher, files, _quantile_plan(files)), DeadlineExceededError)
    assert isinstance(_run(dispatcher, files, count_plan()), PolicyDeniedError)
    short = [o for o in nodes.orders if o.lane == "short"]
    long = [o for o in nodes.orders if o.lane == "long"]
    # every node was sent each order: three copies of each
    assert [o.sequence for o in short] == [0, 0, 0, 1, 1, 1]  # refused alike: the session stays
    assert len({o.epoch for o in short}) == 1  # never torn down by the long lane's failure
    assert [o.sequence for o in long] == [0, 0, 0]
    assert {p.port for o in short for p in o.parties}.isdisjoint(
        {p.port for o in long for p in o.parties}
    )  # each lane at its own MPC ports
    until = time.monotonic() + 10  # then the long lane's next session is opened at every node
    while len(nodes.opened) < 3 and time.monotonic() < until:
        time.sleep(0.05)
    assert [(o.lane, o.epoch > long[0].epoch) for o in nodes.opened] == [("long", True)] * 3
    # sent without the query waiting, but answered by every node before the reopening
    assert nodes.aborts == [("long", long[0].epoch)] * 3


class RefusesSessions(ScriptedNodes):
    """A node that refuses to open any session (its witness log halted, say)."""

    def OpenSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise StorageUnavailableError("node bank-a's witness log lost releases it recorded")


class HearsAborts(ScriptedNodes):
    """A node that counts an abort only if the gateway still holds the call once it is read."""

    def AbortSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        time.sleep(0.3)
        if context.is_active():  # gRPC cancels a call whose future the caller dropped
            super().AbortSession(request, context)
        return node_pb2.AbortReply()


def test_a_session_one_node_refuses_to_open_is_aborted_at_every_node(
    files: ConsortiumFiles,
) -> None:
    others = [HearsAborts(), HearsAborts()]
    with dispatcher_to(files, [RefusesSessions(), *others]) as dispatcher:
        assert dispatcher.open_session("short") is False
        until = time.monotonic() + 10
        while any(not node.aborts for node in others) and time.monotonic() < until:
            time.sleep(0.05)
    epoch = others[0].opened[0].epoch
    # the nodes that did open it let it go: they do not wait for the refusing one until a deadline
    assert [node.aborts for node in others] == [[("short", epoch)]] * 2
