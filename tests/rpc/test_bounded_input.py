"""Bad input on the served gateway and node: precise status, the query's id, a bounded log."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.sqlite import load_raw
from mpc_gateway.client import GatewayClient, tls_from_pki
from mpc_gateway.errors import (
    InternalError,
    InvalidQueryError,
    InvalidRequestError,
    RequestTooLargeError,
)
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc, node_pb2_grpc
from mpc_gateway.rpc.errors import QUERY_ID_KEY, error_from_rpc
from mpc_gateway.rpc.limits import DEFAULT_REQUEST_BYTES, request_limit
from tests.forged import count_plan, forge
from tests.rpc.conftest import Served

_RUN = "/mpc_gateway.proto.v1.GatewayService/Run"


def _client(served: Served) -> GatewayClient:
    return GatewayClient(
        f"127.0.0.1:{served.port}", tls_from_pki(served.pki, "analyst/alice"), timeout_s=30
    )


def _log_bytes(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if os.path.exists(p))


def test_a_request_over_its_methods_limit_is_resource_exhausted_and_logged(
    gateway: Gateway, gateway_server: Served
) -> None:
    before = gateway.audit.log.size()
    stub = gateway_pb2_grpc.GatewayServiceStub(gateway_server.channel("analyst/alice"))
    request = gateway_pb2.QueryStatusRequest(query_id="q" * (DEFAULT_REQUEST_BYTES + 1))
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetQueryStatus(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"GetQueryStatus accepts requests of at most {DEFAULT_REQUEST_BYTES} bytes" in str(
        caught.value.details()
    )
    (entry,) = gateway.audit.log.entries(before)
    event = AuditEvent.from_entry(entry)
    assert (event.kind, event.actor, event.details["method"]) == (
        "request.refused",
        "analyst/alice",
        "GetQueryStatus",
    )


def test_a_request_over_the_servers_largest_limit_is_refused_by_the_transport(
    gateway_server: Served,
) -> None:
    with _client(gateway_server) as client:
        with pytest.raises(RequestTooLargeError, match="docs/limits.md"):
            purpose = "p" * (request_limit(_RUN) + (1 << 20))
            client.run("aggregate", "loans", aggregates=["count"], purpose=purpose)


def test_a_refused_query_with_a_huge_dataset_name_costs_the_log_a_few_kilobytes(
    gateway: Gateway, gateway_server: Served
) -> None:
    path = gateway.audit.log.path  # type: ignore[attr-defined]  # the SQLite backend's file
    before_bytes, before_entries = _log_bytes(path), gateway.audit.log.size()
    with _client(gateway_server) as client:
        with pytest.raises(InvalidQueryError) as caught:
            client.run("aggregate", "d" * (3 << 20), aggregates=["count"])
    grown = _log_bytes(path) - before_bytes  # whole SQLite pages, WAL frames included
    assert grown <= 64 * 1024, f"the log's files grew by {grown} bytes"
    assert caught.value.query_id  # the refusal names its query ...
    raw = load_raw(path)
    (entry,) = raw.entries[before_entries:]
    assert len(entry) + len(raw.tree_heads[-1]) <= 4096  # what the log holds for it
    event = AuditEvent.from_entry(entry)
    assert event.kind == "query.refused" and event.query_id == caught.value.query_id
    assert event.dataset is None  # ... and the log keeps the name's digest, not the name
    assert event.details["dataset"] == {"sha256": _sha256("d" * (3 << 20)), "length": 3 << 20}


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_a_literal_outside_the_columns_bounds_is_refused_at_the_gateway_with_its_query_id(
    gateway_server: Served,
) -> None:
    stub = gateway_pb2_grpc.GatewayServiceStub(gateway_server.channel("analyst/alice"))
    with _client(gateway_server) as client:
        request = client.request(
            "aggregate", "loans", where="exposure > 1e300", aggregates=["count"], purpose="risk"
        )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Run(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside the declared bounds of 'exposure'" in str(caught.value.details())
    trailers = dict(caught.value.trailing_metadata() or ())  # type: ignore[attr-defined]
    query_id = trailers.get(QUERY_ID_KEY)
    assert query_id
    error = error_from_rpc(caught.value, "gateway")
    assert error.query_id == query_id


def _out_of_bounds_plan() -> Any:
    plan = count_plan()
    bad = {"kind": "cmp", "column": "exposure", "op": ">", "value": str(Decimal("1e300"))}
    return type(plan).model_validate({**plan.model_dump(), "filter": bad})


def test_a_node_refuses_an_out_of_bounds_literal_the_gateway_signed_anyway(
    files: Any, node_server: Served
) -> None:
    stub = node_pb2_grpc.NodeServiceStub(node_server.channel("gateway/gateway"))
    forged = forge(files, _out_of_bounds_plan())
    with pytest.raises(grpc.RpcError) as caught:
        stub.Execute(forged.message(), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside the declared bounds of 'exposure'" in str(caught.value.details())


def _refusals(gateway: Gateway, before: int, kind: str) -> list[AuditEvent]:
    events = [AuditEvent.from_entry(e) for e in gateway.audit.log.entries(before)]
    return [e for e in events if e.kind == kind]


def test_a_message_that_is_not_well_formed_is_invalid_argument_and_logged(
    gateway: Gateway, gateway_server: Served
) -> None:
    before = gateway.audit.log.size()
    run = gateway_server.channel("analyst/alice").unary_unary(_RUN)  # bytes as they are
    not_utf8 = b"\x2a\x02\xff\xfe"  # field 5 (sql), a string, holding two bytes no UTF-8 has
    for raw in (not_utf8, b"\x2a\x10abc"):  # ... and a string that claims 16 bytes of 3
        with pytest.raises(grpc.RpcError) as caught:
            run(raw, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "the Run request cannot be read: it is not a well-formed message" in str(
            caught.value.details()
        )
    refused = _refusals(gateway, before, "request.refused")
    assert [(e.actor, e.details["method"]) for e in refused] == [("analyst/alice", "Run")] * 2


def test_a_statement_nested_past_the_parsers_depth_is_refused_and_logged(
    gateway: Gateway, gateway_server: Served
) -> None:
    before = gateway.audit.log.size()
    statement = "SELECT COUNT(*) FROM loans WHERE " + "(" * 500 + "exposure > 1" + ")" * 500
    with _client(gateway_server) as client:
        with pytest.raises(InvalidQueryError, match="nest deeper than 32") as caught:
            client.sql(statement, purpose="risk")
    (event,) = _refusals(gateway, before, "query.refused")
    assert event.query_id == caught.value.query_id


@pytest.mark.parametrize("stage", ["reading", "planning"])
def test_a_failure_no_check_foresaw_is_internal_naming_the_query_and_logged(
    gateway: Gateway, gateway_server: Served, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    def unforeseen(*args: Any) -> Any:
        raise OverflowError("a bug")

    if stage == "reading":
        monkeypatch.setattr("mpc_gateway.gateway.server.request_from_proto", unforeseen)
    else:
        monkeypatch.setattr(gateway, "_plan", unforeseen)
    before = gateway.audit.log.size()
    with _client(gateway_server) as client:
        with pytest.raises(InternalError) as caught:
            client.run("aggregate", "loans", aggregates=["count"], purpose="risk")
    query_id = caught.value.query_id
    assert query_id
    reason = f"internal error at the gateway (query {query_id})"
    assert caught.value.public_message.endswith(f": {reason}")
    (event,) = _refusals(gateway, before, "query.refused")
    assert (event.query_id, event.details["reason"]) == (query_id, reason)  # not the trace


def test_text_with_a_lone_surrogate_is_refused_by_the_client_in_words(
    gateway_server: Served,
) -> None:
    lone = "AB\udcff12"  # what surrogateescape makes of the byte 0xff
    with _client(gateway_server) as client:
        calls = [
            lambda: client.run("aggregate", "loans", aggregates=["count"], purpose=lone),
            lambda: client.run("check", "loans", keys=[lone], purpose="risk"),
            lambda: client.sql(f"SELECT COUNT(*) FROM loans WHERE rating = '{lone}'"),
            lambda: client.run("aggregate", "loans", aggregates=["count"], group_by=lone),
            lambda: client.pseudonyms([lone], purpose="risk"),
        ]
        for call in calls:
            with pytest.raises(InvalidRequestError, match=r"lone surrogate at position \d+, in .*"):
                call()
