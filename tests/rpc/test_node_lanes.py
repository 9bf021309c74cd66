"""A node refuses an order in the wrong lane, or at the other lane's MPC ports, and says so.

The orders are forged as a compromised gateway could make them (signed with the
gateway's key, logged in a log that key signs): only the node's own check of the
lane against the plan's computation stands in the way. The node (bank-a) is
served in-process on port 0, through the real servicer.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from mpc_gateway.computations import Plan, build
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.lanes import Lane
from mpc_gateway.node.service import Node
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.query.schema import load_schema
from tests.forged import Forged, count_plan, forge, gateway_key, parties
from tests.rpc.conftest import Served, own_node


@pytest.fixture()
def bank_a(files: ConsortiumFiles, tmp_path: Path) -> Iterator[tuple[Node, Served]]:
    with own_node(files, "bank-a", tmp_path) as served:
        yield served


def _quantile_plan(files: ConsortiumFiles) -> Plan:
    request = QuantileRequest(
        dataset="loans", purpose="risk monitoring", column="exposure", levels=(Decimal("0.5"),)
    )
    return build(request, load_schema(schema_path()), "analyst/alice", len(files.nodes))


def _refused(served: Served, message: node_pb2.SignedOrder) -> grpc.RpcError:
    stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Execute(message, timeout=10)
    return caught.value


@pytest.mark.parametrize(
    ("kind", "wrong"),
    [("count", "long"), ("quantile", "short")],
    ids=["short-in-long", "long-in-short"],
)
def test_node_refuses_an_order_in_another_lane_than_its_computations(
    files: ConsortiumFiles, bank_a: tuple[Node, Served], kind: str, wrong: Lane
) -> None:
    node, served = bank_a
    plan = count_plan() if kind == "count" else _quantile_plan(files)
    forged = forge(files, plan, lane=wrong, step={} if kind == "count" else {"path": []})
    error = _refused(served, forged.message())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    assert f"in the {wrong} lane" in str(error.details()), error.details()
    refused = node.witness.log.events(kind="order.refused")[-1].event
    assert refused.details["lane"] == wrong and "lane" in str(refused.details["reason"])
    assert not node.witness.log.events(kind="order.received")  # nothing ran


def test_node_refuses_an_order_naming_the_other_lanes_mpc_ports(
    files: ConsortiumFiles, bank_a: tuple[Node, Served]
) -> None:
    node, served = bank_a
    forged = forge(files, count_plan())  # a short-lane order, but at the long lane's ports
    misplaced = forged.order.model_copy(update={"parties": parties(files, "long")})
    data = misplaced.canonical()
    signed = Forged(misplaced, data, gateway_key(files.pki_dir).sign(data), forged.evidence)
    error = _refused(served, signed.message())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    assert "short lane's port" in str(error.details()), error.details()
    refused = node.witness.log.events(kind="order.refused")[-1].event
    assert "short lane's port" in str(refused.details["reason"])


def test_an_abort_naming_no_lane_is_refused_and_one_naming_a_lane_is_taken(
    bank_a: tuple[Node, Served],
) -> None:
    _, served = bank_a
    stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.AbortSession(node_pb2.AbortRequest(lane="medium", epoch=1, reason="t"), timeout=5)
    assert "there is no MPC lane 'medium'" in str(caught.value.details())
    for lane in ("long", "short", ""):  # "": a gateway from before lanes, the short lane
        stub.AbortSession(node_pb2.AbortRequest(lane=lane, epoch=1, reason="t"), timeout=5)
