"""Bounded input: every client string, list and number within limits before it goes anywhere."""

from __future__ import annotations

import hashlib

import pytest

from mpc_gateway.canonical import digest_if_long
from mpc_gateway.computations import COMPUTATIONS, computation
from mpc_gateway.computations.shared import encode_value
from mpc_gateway.errors import InvalidQueryError, InvalidRequestError
from mpc_gateway.gateway.relay import RELEASE_BATCH
from mpc_gateway.proto.v1 import audit_pb2, gateway_pb2, node_pb2
from mpc_gateway.query.filters import MAX_LITERAL_CHARS, validate_filter
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.query.where import parse_where
from mpc_gateway.rpc.convert import request_from_proto
from mpc_gateway.rpc.limits import (
    DEFAULT_REQUEST_BYTES,
    REQUEST_BYTES,
    client_options,
    request_limit,
    server_options,
)
from tests.unit.plan_cases import LOANS_TOML


@pytest.fixture(scope="module")
def loans() -> DatasetSchema:
    return load_schema(LOANS_TOML)


@pytest.mark.parametrize(
    "where",
    ["exposure > 1e300", "exposure < -1", "exposure IN (5, 1e29)", "exposure = 100000000.01"],
)
def test_a_literal_outside_the_columns_declared_bounds_is_refused(
    loans: DatasetSchema, where: str
) -> None:
    tree = parse_where(where)
    assert tree is not None
    with pytest.raises(InvalidQueryError, match="outside the declared bounds of 'exposure'"):
        validate_filter(loans, tree)


@pytest.mark.parametrize("where", ["exposure > 0", "exposure <= 100000000", "exposure = 12.5"])
def test_a_literal_within_the_bounds_passes(loans: DatasetSchema, where: str) -> None:
    tree = parse_where(where)
    assert tree is not None
    validate_filter(loans, tree)


def _request(
    dataset: str = "loans", where: str = "", group_by: str = ""
) -> gateway_pb2.ComputationRequest:
    job = computation("aggregate").job_message(aggregates=["count"], group_by=group_by)
    return gateway_pb2.ComputationRequest(dataset=dataset, where=where, aggregate=job)


def test_a_dataset_name_longer_than_any_real_one_is_refused_without_being_quoted() -> None:
    with pytest.raises(InvalidQueryError) as caught:
        request_from_proto(_request(dataset="d" * 100_000))
    assert "dataset" in caught.value.public_message
    assert len(caught.value.public_message) < 300  # the name is not echoed back


def test_an_overlong_filter_literal_and_column_name_are_refused() -> None:
    with pytest.raises(InvalidQueryError, match="filter"):
        request_from_proto(_request(where=f"rating = '{'x' * (MAX_LITERAL_CHARS + 1)}'"))
    with pytest.raises(InvalidQueryError, match="filter"):
        request_from_proto(_request(where=f"{'c' * 64} = 1"))


def test_an_overlong_group_by_column_is_refused() -> None:
    with pytest.raises(InvalidQueryError, match="group_by"):
        request_from_proto(_request(group_by="g" * 5000))


@pytest.mark.parametrize("group_by", [",", "sector,,rating", "sector,", " , "])
def test_a_group_by_with_an_empty_name_is_refused_not_read_as_fewer_columns(group_by: str) -> None:
    with pytest.raises(InvalidQueryError, match="group_by names a column between every pair"):
        request_from_proto(_request(group_by=group_by))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mean:\u0435\u0445posure", "aggregate mean: '\\u0435\\u0445posure' is not a column name"),
        ("sum:exposure\x00", "aggregate sum: 'exposure\\x00' is not a column name"),
        ("mean:exposure:x", "aggregate mean: 'exposure:x' is not a column name"),
        ("median:exposure", "unsupported aggregate 'median'; supported: count, sum, mean"),
    ],
)
def test_an_aggregate_names_what_is_wrong_the_function_or_the_column(
    spec: str, message: str
) -> None:
    job = computation("aggregate").job_message(aggregates=[spec])
    with pytest.raises(InvalidQueryError) as caught:
        request_from_proto(gateway_pb2.ComputationRequest(dataset="loans", aggregate=job))
    assert caught.value.public_message.startswith(message)


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (gateway_pb2.QuantileJob(column="exposure"), "levels"),
        (gateway_pb2.CheckJob(), "keys"),
        (gateway_pb2.TrainJob(label="defaulted"), "features"),
    ],
)
def test_an_empty_list_is_called_missing_or_empty(job: object, field: str) -> None:
    which = {"QuantileJob": "quantile", "CheckJob": "check", "TrainJob": "train"}
    request = gateway_pb2.ComputationRequest(dataset="loans")
    getattr(request, which[type(job).__name__]).CopyFrom(job)
    with pytest.raises(InvalidQueryError) as caught:
        request_from_proto(request)
    assert (
        caught.value.public_message
        == f"invalid query field {field}: required, and missing or empty"
    )


def test_a_request_without_a_computation_lists_every_registered_one() -> None:
    with pytest.raises(InvalidQueryError) as caught:
        request_from_proto(gateway_pb2.ComputationRequest(dataset="loans"))
    for kind in COMPUTATIONS:
        assert kind in caught.value.public_message


@pytest.mark.parametrize(("hhi", "limit"), [("fraction", 2500), ("none", 0), ("flag", None)])
def test_an_hhi_limit_without_the_hhi_flag_and_the_reverse_are_refused(
    hhi: str, limit: int | None
) -> None:
    job = computation("concentration").job_message(group_by="sector", hhi=hhi, hhi_limit=limit)
    request = gateway_pb2.ComputationRequest(dataset="loans", concentration=job)
    with pytest.raises(InvalidQueryError, match="hhi='flag' and hhi_limit .* go together"):
        request_from_proto(request)


def test_long_text_is_stored_as_its_digest_and_length() -> None:
    assert digest_if_long("loans", 63) == "loans"
    long = "x" * 1000
    assert digest_if_long(long, 63) == {
        "sha256": hashlib.sha256(long.encode()).hexdigest(),
        "length": 1000,
    }
    view = {"dataset": "loans", "filter": ["v"] * 5000}
    digest = digest_if_long(view, 8192)
    assert isinstance(digest, dict) and set(digest) == {"sha256", "length"}
    assert digest_if_long({"a": 1}, 8192) == {"a": 1}


def test_every_limited_method_exists_and_everything_else_gets_the_default() -> None:
    served = {
        f"/{s.full_name}/{m.name}"
        for module in (gateway_pb2, node_pb2, audit_pb2)
        for s in module.DESCRIPTOR.services_by_name.values()
        for m in s.methods
    }
    assert set(REQUEST_BYTES) <= served  # a typo would silently give the default
    assert (
        request_limit("/mpc_gateway.proto.v1.GatewayService/ListDatasets") == DEFAULT_REQUEST_BYTES
    )
    assert all(limit < 64 * 1024 * 1024 for limit in REQUEST_BYTES.values())


def test_servers_admit_the_pings_clients_send() -> None:
    for interval in (200, 30_000):
        client = dict(client_options(interval))
        server = dict(server_options([], interval))
        assert (
            server["grpc.http2.min_ping_interval_without_data_ms"]
            <= client["grpc.keepalive_time_ms"]
        )
        assert server["grpc.keepalive_permit_without_calls"] == 1


@pytest.mark.parametrize(
    "value", ["1e300", "-1e300", "Infinity", "NaN", "12abc", "1e999999999999", "-1e999999999999"]
)
def test_a_public_value_no_sum_of_the_column_can_reach_is_refused(
    loans: DatasetSchema, value: str
) -> None:
    with pytest.raises(InvalidRequestError, match="'exposure'"):
        encode_value(loans, "exposure", value)


@pytest.mark.parametrize("value", ["1e-2000000", "1e-999999999999", "0." + "1" * 20000])
def test_a_value_finer_than_the_column_is_refused_and_the_message_stays_short(
    loans: DatasetSchema, value: str
) -> None:
    """1e-2000000 was rounded to 0 (below the context's exponent range), not refused; a long
    value was echoed whole, past what a gRPC status message may carry (16 KiB)."""
    with pytest.raises(InvalidRequestError, match="finer than 'exposure'") as refused:
        encode_value(loans, "exposure", value)
    assert len(refused.value.public_message) < 200


def test_a_large_but_reachable_limit_is_encoded_exactly(loans: DatasetSchema) -> None:
    assert encode_value(loans, "exposure", "123456789012345678901234567.89") == (
        12345678901234567890123456789
    )


def test_a_full_batch_of_releases_fits_what_a_node_accepts() -> None:
    """Every release of a batch is as large as one alone may be, and the batch still fits."""
    one = request_limit("/mpc_gateway.proto.v1.NodeService/Release")
    batch = request_limit("/mpc_gateway.proto.v1.NodeService/ReleaseBatch")
    assert RELEASE_BATCH * one + 64 * 1024 <= batch  # and room for the checkpoint and proof
