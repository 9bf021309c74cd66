"""Who may call what, on the servers as served: the table, default deny, trust domain, statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from mpc_gateway.audit.log import AuditLog
from mpc_gateway.pki import Identity, load_layout
from mpc_gateway.pki.ca import _load_authority
from mpc_gateway.pki.issuance import certificate_pem, private_key_pem
from mpc_gateway.proto.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
)
from mpc_gateway.rpc.audit_servicer import AUDIT_ACCESS, AuditServicer
from mpc_gateway.rpc.server import Service, client_channel
from tests.rpc.conftest import IDENTITIES, Served, serve

ANYONE_READING = {"analyst", "auditor", "approver"}

# The access the consortium relies on, written out (not read from the servers' tables).
GATEWAY = {
    "ListDatasets": (ANYONE_READING, gateway_pb2.ListDatasetsRequest()),
    "Run": (
        {"analyst"},
        gateway_pb2.ComputationRequest(
            dataset="loans",
            purpose="risk monitoring",
            aggregate=gateway_pb2.AggregateJob(
                aggregates=[gateway_pb2.AggregateSpec(func="count")]
            ),
        ),
    ),
    "Explain": (
        {"analyst"},
        gateway_pb2.ComputationRequest(
            dataset="loans",
            aggregate=gateway_pb2.AggregateJob(
                aggregates=[gateway_pb2.AggregateSpec(func="count")]
            ),
        ),
    ),
    "GetQueryStatus": (ANYONE_READING, gateway_pb2.QueryStatusRequest(query_id="none")),
    "GetBudget": ({"analyst"}, gateway_pb2.BudgetRequest()),
    "RegisterModel": ({"analyst"}, gateway_pb2.RegisterModelRequest(model_json="{}")),
    "ListModels": (ANYONE_READING, gateway_pb2.ListModelsRequest()),
    # an institution pseudonymises its customers as its node
    "Pseudonymise": ({"analyst", "node"}, gateway_pb2.PseudonymRequest(purpose="testing")),
}
APPROVAL = {
    "ListPending": ({"approver"}, gateway_pb2.ListPendingRequest()),
    "Decide": ({"approver"}, gateway_pb2.ApprovalDecision(query_id="x", signed_approval_json="{}")),
}
AUDIT = {
    "ListEvents": ({"auditor", "analyst"}, audit_pb2.ListEventsRequest(limit=1)),
    "GetTreeHead": ({"auditor"}, audit_pb2.TreeHeadRequest()),
    "GetInclusionProof": ({"auditor"}, audit_pb2.InclusionProofRequest(index=0)),
    "GetConsistencyProof": ({"auditor"}, audit_pb2.ConsistencyProofRequest(old_size=0)),
    "Export": ({"auditor"}, audit_pb2.ExportRequest()),
}
NODE = {  # only the consortium's gateway
    "Execute": ({"gateway"}, node_pb2.SignedOrder(order=b"{}", signature=b"x" * 64)),
    "ExecuteBatch": ({"gateway"}, node_pb2.SignedBatch(orders=[b"{}"], signature=b"x" * 64)),
    "AbortSession": ({"gateway"}, node_pb2.AbortRequest(epoch=1, reason="test")),
    "OpenSession": ({"gateway"}, node_pb2.SignedOrder(order=b"{}", signature=b"x" * 64)),
    "Release": ({"gateway"}, node_pb2.ReleaseRequest(query_id="none")),
    "ReleaseBatch": ({"gateway"}, node_pb2.ReleaseBatchRequest(checkpoint="none")),
    "Pseudonymise": ({"gateway"}, node_pb2.PseudonymOrder(query_id="q")),
}


def _call(
    served: Served, stub_class: Any, method: str, request: Any, identity: str
) -> grpc.RpcError | None:
    with served.channel(identity) as channel:
        try:
            getattr(stub_class(channel), method)(request, timeout=10)
        except grpc.RpcError as err:
            return err
    return None


def _refused_by_access(error: grpc.RpcError | None) -> bool:
    return (
        error is not None
        and error.code() == grpc.StatusCode.PERMISSION_DENIED
        and "may not call" in (error.details() or "")
    )


def _cases(service: str, table: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        (service, method, identity, identity.partition("/")[0] in roles)
        for method, (roles, _) in table.items()
        for identity in IDENTITIES
    ]


STUBS = {
    "GatewayService": (gateway_pb2_grpc.GatewayServiceStub, GATEWAY),
    "ApprovalService": (gateway_pb2_grpc.ApprovalServiceStub, APPROVAL),
    "AuditService": (audit_pb2_grpc.AuditServiceStub, AUDIT),
}


@pytest.mark.parametrize(
    ("service", "method", "identity", "allowed"),
    [c for s, (_, t) in STUBS.items() for c in _cases(s, t)],
)
def test_each_gateway_method_admits_exactly_its_roles(
    gateway_server: Served, service: str, method: str, identity: str, allowed: bool
) -> None:
    stub, table = STUBS[service]
    error = _call(gateway_server, stub, method, table[method][1], identity)
    assert _refused_by_access(error) is not allowed, error and error.details()
    if error is not None:
        assert error.code() != grpc.StatusCode.INTERNAL, error.details()


@pytest.mark.parametrize(("service", "method", "identity", "allowed"), _cases("NodeService", NODE))
def test_only_the_gateway_may_call_a_node(
    node_server: Served, service: str, method: str, identity: str, allowed: bool
) -> None:
    error = _call(node_server, node_pb2_grpc.NodeServiceStub, method, NODE[method][1], identity)
    assert _refused_by_access(error) is not allowed, error and error.details()
    if not allowed:
        assert error is not None and "only gateway/gateway may" in str(error.details())


def test_every_served_method_has_a_rule_and_the_tests_cover_it(
    gateway_server: Served, node_server: Served
) -> None:
    from mpc_gateway.gateway.server import APPROVAL_ACCESS, GATEWAY_ACCESS
    from mpc_gateway.node.server import node_access

    for descriptor, access, table in (
        (gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"], GATEWAY_ACCESS, GATEWAY),
        (gateway_pb2.DESCRIPTOR.services_by_name["ApprovalService"], APPROVAL_ACCESS, APPROVAL),
        (audit_pb2.DESCRIPTOR.services_by_name["AuditService"], AUDIT_ACCESS, AUDIT),
        (node_pb2.DESCRIPTOR.services_by_name["NodeService"], node_access("gateway"), NODE),
    ):
        methods = {m.name for m in descriptor.methods}
        assert methods == set(access) == set(table), descriptor.name


def test_health_and_reflection_are_open_to_any_consortium_certificate(
    gateway_server: Served,
) -> None:
    from grpc_health.v1 import health_pb2

    with gateway_server.channel("auditor/audrey") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        assert check(health_pb2.HealthCheckRequest(), timeout=5).status == 1  # SERVING


class _Unlisted(audit_pb2_grpc.AuditServiceServicer):
    pass


def test_a_method_no_rule_names_is_refused_to_everyone(files: Any, gateway: Any) -> None:
    access = {m: who for m, who in AUDIT_ACCESS.items() if m != "Export"}
    service = Service.of(
        audit_pb2, audit_pb2_grpc, "AuditService", AuditServicer(gateway.audit.log), access
    )
    served = serve([service], gateway.tls, files.pki_dir)
    try:
        error = _call(
            served,
            audit_pb2_grpc.AuditServiceStub,
            "Export",
            audit_pb2.ExportRequest(),
            "auditor/audrey",
        )
        assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "no one may" in str(error.details())
        assert (
            _call(
                served,
                audit_pb2_grpc.AuditServiceStub,
                "GetTreeHead",
                audit_pb2.TreeHeadRequest(),
                "auditor/audrey",
            )
            is None
        )
    finally:
        served.server.stop(0)


def test_a_certificate_of_another_trust_domain_is_not_the_consortium_identity(
    files: Any, gateway_server: Served
) -> None:
    """The consortium CA signs it (a CA mistake, or a shared CA), but the domain is not ours."""
    layout = load_layout(files.pki_dir)
    authority = _load_authority(layout)
    eve = Identity("analyst", "alice", "evil.example")
    cert, key = authority.issue_tls(eve, hosts=(), now=datetime.now(UTC), valid_days=1)
    tls = (layout.ca_cert.read_bytes(), certificate_pem(cert), private_key_pem(key))
    with client_channel(f"127.0.0.1:{gateway_server.port}", tls) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            gateway_pb2_grpc.GatewayServiceStub(channel).ListDatasets(
                gateway_pb2.ListDatasetsRequest(), timeout=10
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "trust domain 'evil.example'" in str(caught.value.details())


class _Broken(AuditLog):
    """An audit log whose store fails in a way nobody foresaw."""

    def __init__(self) -> None:  # no store at all
        pass

    def events(self, **filters: Any) -> Any:
        raise RuntimeError("the exposure of ACME is 1234567.89")

    def _stored_entries(self) -> Any: ...
    def _write_entry(self, index: int, leaf: bytes, data: bytes) -> None: ...
    def _read_entries(self, start: int, end: int) -> Any: ...
    def _write_tree_head(self, size: int, timestamp_ms: int, note: str) -> None: ...
    def _read_tree_heads(self) -> Any: ...
    def _replace_tree_head(self, size: int, stored: str, note: str) -> bool: ...
    def close(self) -> None: ...


def test_an_unforeseen_failure_is_internal_with_a_reference_and_no_details(
    files: Any, gateway: Any
) -> None:
    service = Service.of(
        audit_pb2, audit_pb2_grpc, "AuditService", AuditServicer(_Broken()), AUDIT_ACCESS
    )
    served = serve([service], gateway.tls, files.pki_dir)
    try:
        error = _call(
            served,
            audit_pb2_grpc.AuditServiceStub,
            "ListEvents",
            audit_pb2.ListEventsRequest(),
            "auditor/audrey",
        )
    finally:
        served.server.stop(0)
    assert error is not None and error.code() == grpc.StatusCode.INTERNAL
    assert "internal error (ref " in str(error.details()) and "ACME" not in str(error.details())


def test_domain_errors_arrive_as_their_status_and_class(gateway_server: Served) -> None:
    from mpc_gateway.errors import InvalidRequestError
    from mpc_gateway.rpc.errors import error_from_rpc

    error = _call(
        gateway_server,
        gateway_pb2_grpc.GatewayServiceStub,
        "GetQueryStatus",
        gateway_pb2.QueryStatusRequest(query_id="nope"),
        "analyst/alice",
    )
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error_from_rpc(error, "gateway"), InvalidRequestError)
