"""A node refuses, on its own policy, a signed quantile order at a level its policy forbids.

The order is forged as a compromised gateway could make it (signed with the gateway's key
and logged in a log that key signs), so only the node's own policy stands in the way. The
node (bank-b, whose policy allows no min or max of exposure) is served in-process on port 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from mpc_gateway.computations import build
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.node.service import Node
from mpc_gateway.policy import load_policy
from mpc_gateway.proto.v1 import node_pb2_grpc
from mpc_gateway.query.schema import load_schema
from tests.forged import forge
from tests.rpc.conftest import Served, own_node


@pytest.fixture()
def bank_b(files: ConsortiumFiles, tmp_path: Path) -> Iterator[tuple[Node, Served]]:
    with own_node(files, "bank-b", tmp_path) as served:
        yield served


@pytest.mark.parametrize("level", ["1", "0.000001"])
def test_node_refuses_a_signed_quantile_order_at_a_level_its_policy_forbids(
    files: ConsortiumFiles, bank_b: tuple[Node, Served], level: str
) -> None:
    """Levels 1 and 10**-6 are exposure's maximum and minimum, which bank-b forbids."""
    node, served = bank_b
    request = QuantileRequest(
        dataset="loans", purpose="risk monitoring", column="exposure", levels=(Decimal(level),)
    )
    plan = build(request, load_schema(schema_path()), "analyst/alice", len(files.nodes))
    required = load_policy(files.policy("bank-b")).datasets["loans"].required_controls
    forged = forge(files, plan.with_controls(required), step={"round": 0})
    stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Execute(forged.message(), timeout=10)
    error = caught.value
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    details = str(error.details())
    assert "risk.quantile_level" in details and "bank-b" in details, details
    assert f"at level {level}" in details
    refused = node.witness.log.events(kind="order.refused")[-1].event
    assert "risk.quantile_level" in str(refused.details["reason"])  # in its witness log


@pytest.mark.parametrize("step", [{"round": 2}, {"round": 1, "path": [[3]]}, {"round": "0"}])
def test_node_refuses_a_search_step_it_did_not_reach_itself(
    files: ConsortiumFiles, bank_b: tuple[Node, Served], step: dict[str, object]
) -> None:
    """A driver cannot skip, replay or steer a search: the node keeps its own path."""
    node, served = bank_b
    request = QuantileRequest(
        dataset="loans", purpose="risk monitoring", column="exposure", levels=(Decimal("0.5"),)
    )
    plan = build(request, load_schema(schema_path()), "analyst/alice", len(files.nodes))
    required = load_policy(files.policy("bank-b")).datasets["loans"].required_controls
    forged = forge(files, plan.with_controls(required), step=step)
    stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Execute(forged.message(), timeout=10)
    details = str(caught.value.details())
    assert "took part in 0 of its steps: steps run once each, in order" in details, details
    assert caught.value.code() == grpc.StatusCode.ABORTED
