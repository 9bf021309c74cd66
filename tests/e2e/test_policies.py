"""The example institutions' policies, enforced by the gateway and by every node."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from mpc_gateway.client import ApproverClient, GatewayClient
from mpc_gateway.computations.aggregate import (
    Aggregate,
    AggregateRequest,
    build_plan,
)
from mpc_gateway.devnet.localnet import LocalConsortium, schema_path
from mpc_gateway.errors import ApprovalMissingError, PolicyDeniedError
from mpc_gateway.pki import Identity, load_layout, load_signing_key
from mpc_gateway.policy import ApprovalBody, OutputControls, sign_approval
from mpc_gateway.proto.v1 import node_pb2
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.where import parse_where
from tests.e2e.conftest import gateway_stub
from tests.forged import forge

pytestmark = pytest.mark.e2e

STRICT = OutputControls(
    min_cell_count=20,
    min_institutions=2,
    dominance_percent=70,
    round_counts_to=5,
    sum_decimals=0,
    min_entities=100,  # bank-b's min_batch: every plan on the dataset carries it
)


def _client(consortium: LocalConsortium, purpose: str = "risk monitoring") -> GatewayClient:
    files = consortium.files
    return GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, purpose=purpose
    )


def test_allowed_query_runs_and_small_cells_are_suppressed_not_opened(
    governed: LocalConsortium,
) -> None:
    with _client(governed) as client:
        result = client.query(
            "loans",
            ["count", "mean:exposure"],
            group_by="rating",
            where="sector = 'energy' AND exposure > 2000000",
        )
    outcome = result.outcome
    assert outcome.suppressed, "a narrow filter leaves some cells below 20 loans"
    for group, rules in outcome.suppressed.items():
        assert rules == ("withheld",), "that it was withheld, not which rules it failed"
        assert dict(outcome.rows)[group] == (None, None)
    released = [values for group, values in outcome.rows if group not in outcome.suppressed]
    assert all(
        count % 5 == 0 and count >= 20 for count, _ in released
    )  # rounded, above the minimum


def test_query_a_policy_forbids_is_refused_naming_the_rule_and_owner(
    governed: LocalConsortium,
) -> None:
    with _client(governed) as client, pytest.raises(PolicyDeniedError) as caught:
        client.query("loans", ["count"], group_by="region")
    assert "broker-c" in caught.value.public_message and "column.use" in caught.value.public_message


def test_undeclared_purpose_is_refused(governed: LocalConsortium) -> None:
    with (
        _client(governed, purpose="marketing") as client,
        pytest.raises(PolicyDeniedError, match="dataset.purpose"),
    ):
        client.query("loans", ["count"])


def test_dry_run_lists_every_rule_and_what_would_be_disclosed(governed: LocalConsortium) -> None:
    with _client(governed) as client:
        refused = client.explain("aggregate", "loans", aggregates=["max:exposure"])
        allowed = client.explain(
            "aggregate",
            "loans",
            aggregates=["count"],
            group_by="sector",
            purpose="supervisory review",
        )
    assert refused["allowed"] is False
    assert "bank-b" in str(refused)
    assert allowed["allowed"] is True
    assert "approver/carol" in str(allowed)


def test_approval_flow_runs_the_query_once_approved(governed: LocalConsortium) -> None:
    files = governed.files
    with _client(governed, purpose="supervisory review") as client:
        with pytest.raises(ApprovalMissingError, match="approver/carol") as caught:
            client.query("loans", ["count", "mean:exposure"], group_by="sector")
        query_id = str(caught.value.query_id)
        assert client.status(query_id).state == "waiting"
        with ApproverClient(files.pki_dir, "approver/carol", files.gateway_address) as carol:
            assert query_id in [q.query_id for q in carol.pending()]
            assert carol.decide(query_id, "approve", "supervisory review of sector risk") in (
                "running",
                "released",
            )
        result = client.wait(query_id, timeout_s=30)
    assert len(result.outcome.rows) == 10


def test_rejected_query_tells_the_analyst_why(governed: LocalConsortium) -> None:
    files = governed.files
    with _client(governed, purpose="supervisory review") as client:
        with pytest.raises(ApprovalMissingError) as caught:
            client.query("loans", ["count"], group_by="rating")
        query_id = str(caught.value.query_id)
        with ApproverClient(files.pki_dir, "approver/carol", files.gateway_address) as carol:
            assert carol.decide(query_id, "reject", "not needed for the review") == "rejected"
        with pytest.raises(PolicyDeniedError, match="not needed for the review"):
            client.wait(query_id, timeout_s=10)


def _signed_order(
    consortium: LocalConsortium, spec: AggregateRequest, controls: OutputControls
) -> node_pb2.SignedOrder:
    """An order as a compromised gateway (holding the gateway key) could make and log."""
    plan = build_plan(spec, load_schema(schema_path()), "analyst/alice", controls)
    return forge(consortium.files, plan, query_id="rogue").message()


def _refusal(
    consortium: LocalConsortium, node: str, request: node_pb2.SignedOrder
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, node).Execute(request, timeout=10)
    return caught.value


def test_node_refuses_a_validly_signed_order_its_own_policy_forbids(
    governed: LocalConsortium,
) -> None:
    spec = AggregateRequest(
        dataset="loans",
        aggregates=(Aggregate(func="max", column="exposure"),),
        purpose="risk monitoring",
    )
    error = _refusal(governed, "bank-b", _signed_order(governed, spec, STRICT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "column.aggregate" in error.details() and "bank-b" in error.details()


def test_node_refuses_an_order_with_weaker_output_controls_than_its_policy(
    governed: LocalConsortium,
) -> None:
    spec = AggregateRequest(
        dataset="loans",
        aggregates=(Aggregate(func="count"),),
        group_by="sector",
        purpose="risk monitoring",
    )
    error = _refusal(
        governed, "bank-b", _signed_order(governed, spec, OutputControls(min_cell_count=5))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "output.controls" in error.details()


def test_node_refuses_an_order_missing_the_approval_its_policy_requires(
    governed: LocalConsortium,
) -> None:
    spec = AggregateRequest(
        dataset="loans",
        aggregates=(Aggregate(func="count"),),
        group_by="sector",
        filter=parse_where("exposure > 1"),
        purpose="supervisory review",
    )
    error = _refusal(governed, "bank-b", _signed_order(governed, spec, STRICT))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "approver/carol" in error.details()


def test_node_refuses_an_approval_given_on_another_query_of_the_same_plan(
    governed: LocalConsortium,
) -> None:
    """A compromised gateway replays carol's decision on one query for a second identical one."""
    spec = AggregateRequest(
        dataset="loans",
        aggregates=(Aggregate(func="count"),),
        group_by="sector",
        filter=parse_where("exposure > 2"),
        purpose="supervisory review",
    )
    plan = build_plan(spec, load_schema(schema_path()), "analyst/alice", STRICT)
    layout = load_layout(governed.files.pki_dir)
    cert, key = layout.signing_paths(Identity("approver", "carol", layout.trust_domain))
    body = ApprovalBody.issue(
        plan_hash=plan.plan_hash,
        query_id="approved-one",
        approver="approver/carol",
        decision="approve",
        reason="supervisory review of sector risk",
        institution="bank-b",
        now=datetime.now(UTC),
    )
    carols = sign_approval(body, load_signing_key(key), cert.read_bytes())
    replayed = forge(governed.files, plan, query_id="rogue", approvals=(carols,)).message()
    error = _refusal(governed, "bank-b", replayed)
    # before decisions named their query, the plan hash matched and bank-b would have run it
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not yet decided by approver/carol" in error.details()
