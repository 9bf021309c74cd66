"""Every node that sets a privacy budget refuses, on its own ledger, an order it cannot pay for.

The order is forged as a compromised gateway could make it (signed with the
gateway's key, logged in a log that key signs), for a plan exactly as the
gateway would dispatch it: only the node's own ledger stands in the way. Each
node is served in-process on port 0, with its ledger spent up to its budget.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from mpc_gateway.computations import AggregateRequest, Plan
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.errors import StorageUnavailableError
from mpc_gateway.node.server import node_services
from mpc_gateway.node.service import Node
from mpc_gateway.orders import batch_message
from mpc_gateway.policy import UsageLedger, load_policy, privacy_charges, usage_key
from mpc_gateway.privacy import PrivacyLedger
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.settings import NodeSettings, load_settings
from tests.forged import dispatched, forge, gateway_key
from tests.rpc.conftest import serve

PRIVATE = "loans_dp"


def _dispatched(files: ConsortiumFiles) -> Plan:
    request = AggregateRequest(
        dataset=PRIVATE, aggregates=(parse_aggregate("count"),), purpose="risk monitoring"
    )
    return dispatched(files, request, "analyst/alice")


@pytest.mark.parametrize("name", ["bank-a", "bank-b"])
def test_a_node_refuses_a_forged_order_its_own_budget_cannot_pay(
    files: ConsortiumFiles, tmp_path: Path, name: str
) -> None:
    plan = _dispatched(files)
    usage = tmp_path / "usage.sqlite"
    policy = load_policy(files.policy(name))
    charges = privacy_charges([policy], plan, "analyst/alice")
    assert charges, f"{name} sets a budget on {PRIVATE}"
    analysts = [c for c in charges if c.holder == "analyst/alice"]
    cost = plan.controls.dp_rho
    assert cost is not None
    with PrivacyLedger(usage) as ledger:  # what earlier queries spent, as the node recorded it
        spent = Decimal(0)
        while spent + cost <= analysts[0].budget:
            ledger.charge(f"earlier-{spent}", charges)
            spent += cost
    settings = load_settings(NodeSettings, files.node_config(name))
    node = Node(settings.model_copy(update={"audit_db": tmp_path / "w.sqlite", "usage_db": usage}))
    served = serve(node_services(node), node.tls, files.pki_dir)
    try:
        stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
        forged = forge(files, plan, query_id="over-budget")
        with pytest.raises(grpc.RpcError) as caught:
            stub.Execute(forged.message(), timeout=10)
        refused = node.witness.log.events(kind="order.refused")[-1].event
    finally:
        served.server.stop(0)
        node.close()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    details = str(caught.value.details())
    assert "privacy.budget" in details and name in details
    assert "privacy.budget" in str(refused.details["reason"])  # in its witness log
    # a signed order it refused is named, so an auditor matches it to the gateway's dispatch
    assert refused.query_id == "over-budget"
    assert (refused.details["epoch"], refused.details["sequence"]) == (forged.order.epoch, 0)
    assert refused.details["plan_hash"] == plan.plan_hash


def test_a_node_refuses_a_dp_order_that_carries_no_noise(
    files: ConsortiumFiles, tmp_path: Path
) -> None:
    """A gateway that strips the privacy cost from the plan gets the plan refused."""
    plan = _dispatched(files)
    bare = plan.with_controls(plan.controls.model_copy(update={"dp_rho": None}))
    settings = load_settings(NodeSettings, files.node_config("bank-a"))
    update = {"audit_db": tmp_path / "w.sqlite", "usage_db": tmp_path / "u.sqlite"}
    node = Node(settings.model_copy(update=update))
    served = serve(node_services(node), node.tls, files.pki_dir)
    try:
        stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Execute(forge(files, bare, query_id="noiseless").message(), timeout=10)
    finally:
        served.server.stop(0)
        node.close()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "output.controls" in str(caught.value.details())


def test_a_batch_one_member_cannot_pay_for_is_refused_whole_and_charges_nothing(
    files: ConsortiumFiles, tmp_path: Path
) -> None:
    """The first member fits the budget, the second does not: neither counts nor pays."""
    plan = _dispatched(files)
    usage = tmp_path / "usage.sqlite"
    charges = privacy_charges([load_policy(files.policy("bank-a"))], plan, "analyst/alice")
    analyst = next(c for c in charges if c.holder == "analyst/alice")
    cost = plan.controls.dp_rho
    assert cost is not None
    with PrivacyLedger(usage) as ledger:  # room for exactly one more query
        spent = Decimal(0)
        while spent + 2 * cost <= analyst.budget:
            ledger.charge(f"earlier-{spent}", charges)
            spent += cost
    settings = load_settings(NodeSettings, files.node_config("bank-a"))
    node = Node(settings.model_copy(update={"audit_db": tmp_path / "w.sqlite", "usage_db": usage}))
    before = (
        node.privacy.spent_by_holder(charges),
        node.usage.count(usage_key(PRIVATE, plan.analyst)),
    )
    served = serve(node_services(node), node.tls, files.pki_dir)
    try:
        stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
        first = forge(files, plan, query_id="fits", epoch=5, sequence=0)
        second = forge(files, plan, query_id="over-budget", epoch=5, sequence=1)
        datas = [first.data, second.data]
        batch = node_pb2.SignedBatch(
            orders=datas,
            signature=gateway_key(files.pki_dir).sign(batch_message(datas)),
            evidence=[first.message().evidence, second.message().evidence],
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.ExecuteBatch(batch, timeout=10)
        refused = [e.event for e in node.witness.log.events(kind="order.refused")]
        after = (
            node.privacy.spent_by_holder(charges),
            node.usage.count(usage_key(PRIVATE, plan.analyst)),
        )
    finally:
        served.server.stop(0)
        node.close()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    assert "privacy.budget" in str(caught.value.details())
    assert after == before  # the member that fitted was given back what it took
    assert [e.query_id for e in refused] == ["fits", "over-budget"]  # both named, for auditors


def test_a_batch_syncs_its_counts_once_and_a_failed_batch_gives_every_count_back(
    files: ConsortiumFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each member's count is written; only the last one's is synced, and with it all before.

    The witness log then cannot be written (a full disk): the batch runs nowhere and its
    members count nowhere, durably.
    """
    request = AggregateRequest(
        dataset="loans", aggregates=(parse_aggregate("count"),), purpose="risk monitoring"
    )
    plan = dispatched(files, request, "analyst/alice")
    settings = load_settings(NodeSettings, files.node_config("bank-a"))
    usage = tmp_path / "usage.sqlite"
    node = Node(settings.model_copy(update={"audit_db": tmp_path / "w.sqlite", "usage_db": usage}))
    synced: list[bool] = []
    record = node.usage.record_if_below

    def spy(*args: Any, **kwargs: Any) -> bool:
        synced.append(kwargs.get("durable", True))
        return record(*args, **kwargs)

    def full_disk(*args: Any) -> None:
        raise StorageUnavailableError("the witness log cannot be written: disk full")

    monkeypatch.setattr(node.usage, "record_if_below", spy)
    monkeypatch.setattr("mpc_gateway.node.service.received", full_disk)
    served = serve(node_services(node), node.tls, files.pki_dir)
    try:
        stub = node_pb2_grpc.NodeServiceStub(served.channel("gateway/gateway"))
        members = [forge(files, plan, query_id=f"q{i}", epoch=5, sequence=i) for i in range(3)]
        datas = [m.data for m in members]
        batch = node_pb2.SignedBatch(
            orders=datas,
            signature=gateway_key(files.pki_dir).sign(batch_message(datas)),
            evidence=[m.message().evidence for m in members],
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.ExecuteBatch(batch, timeout=10)
    finally:
        served.server.stop(0)
        node.close()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert synced == [False, False, True]  # one fsync for the batch's counts, not one each
    with UsageLedger(usage) as reopened:  # what they took was given back
        assert reopened.count(usage_key("loans", plan.analyst)) == 0
