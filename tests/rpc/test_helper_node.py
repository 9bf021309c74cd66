"""A data-less helper node keeps its own policy: it refuses signed orders it will not help with.

Two banks and a helper (the example policies: both banks share ``region``, the
helper's policy does not list it). The order is forged as a compromised gateway
could make it, so only the helper's own policy stands in the way; the helper is
served in-process on port 0. The gateway's dry run refuses the same query, on the
helper's rule alone, and says what the helper learns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mpc_gateway.computations import AggregateRequest
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.devnet.localnet import HELPER, TWO_BANKS, ConsortiumFiles, prepare
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.node.server import node_services
from mpc_gateway.node.service import Node
from mpc_gateway.pki import Identity
from mpc_gateway.proto.v1 import node_pb2_grpc
from mpc_gateway.settings import GatewaySettings, NodeSettings, load_settings
from tests.forged import dispatched, forge
from tests.rpc.conftest import serve

BY_REGION = AggregateRequest(
    dataset="loans",
    aggregates=(parse_aggregate("count"),),
    group_by="region",
    purpose="risk monitoring",
)
ALICE = Identity("analyst", "alice")


@pytest.fixture(scope="module")
def helped(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumFiles:
    root = tmp_path_factory.mktemp("helped") / "consortium"
    return prepare(root, nodes=TWO_BANKS, helpers=(HELPER,), rows=60, policies="examples")


def test_a_helper_refuses_a_signed_order_its_own_policy_forbids(
    helped: ConsortiumFiles, tmp_path: Path
) -> None:
    settings = load_settings(NodeSettings, helped.node_config(HELPER))
    update = {"audit_db": tmp_path / "w.sqlite", "usage_db": tmp_path / "u.sqlite"}
    node = Node(settings.model_copy(update=update))
    assert settings.role == "helper" and node.datasets["loans"].rows == 0
    served = serve(node_services(node), node.tls, helped.pki_dir)
    try:
        stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
        order = forge(helped, dispatched(helped, BY_REGION, "analyst/alice"), query_id="by-region")
        with pytest.raises(grpc.RpcError) as caught:
            stub.Execute(order.message(), timeout=10)
        refused = node.witness.log.events(kind="order.refused")[-1].event
    finally:
        served.server.stop(0)
        node.close()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    details = str(caught.value.details())
    assert "helper's policy" in details and "'region'" in details
    assert "helper's policy" in str(refused.details["reason"])  # in its own witness log


@pytest.fixture(scope="module")
def gateway(helped: ConsortiumFiles) -> Iterator[Gateway]:
    gateway = Gateway(load_settings(GatewaySettings, helped.gateway_config))
    yield gateway
    gateway.close()


def test_the_gateway_refuses_on_the_helpers_policy_alone(gateway: Gateway) -> None:
    _, report = gateway.explain(ALICE, BY_REGION)
    assert report["allowed"] is False
    assert {r["owner"] for r in report["refusals"]} == {HELPER}  # both banks share region


def test_the_dry_run_says_the_helper_holds_no_data_and_never_counts(gateway: Gateway) -> None:
    by_sector = BY_REGION.model_copy(update={"group_by": ("sector",)})
    _, report = gateway.explain(ALICE, by_sector)
    assert report["allowed"] is True
    assert [p["owner"] for p in report["policies"]] == ["consortium", *TWO_BANKS, HELPER]
    (said,) = [d for d in report["disclosure"] if d["to"] == HELPER]
    assert said["text"].startswith("helper is a helper node holding no data")
    assert "never counts as an institution" in said["text"]
