"""The one table from domain errors to gRPC status codes, and the handler wrapper using it."""

from __future__ import annotations

import logging

import grpc
import pytest

from mpc_gateway import errors
from mpc_gateway.errors import GatewayError
from mpc_gateway.rpc.errors import STATUS, InternalError, status_for, translate_errors


def _package_subclasses(cls: type[GatewayError]) -> list[type[GatewayError]]:
    # classes that tests derive in the same session are not part of the package's tree
    found = []
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("mpc_gateway."):
            found += [sub, *_package_subclasses(sub)]
    return found


LEAVES = sorted(
    {cls for cls in _package_subclasses(GatewayError) if not _package_subclasses(cls)},
    key=lambda cls: cls.__qualname__,
)


class Aborted(Exception):
    """What grpc's ServicerContext.abort does: it raises, ending the handler."""


class FakeContext:
    def __init__(self) -> None:
        self.calls: list[tuple[grpc.StatusCode, str]] = []

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.calls.append((code, details))
        raise Aborted(details)


def test_leaf_walk_finds_every_declared_error_and_internal_error() -> None:
    declared = {getattr(errors, name) for name in errors.__all__} - {GatewayError}
    leaves = {cls for cls in declared if not cls.__subclasses__()}

    assert leaves | {InternalError} <= set(LEAVES)
    assert all(cls in STATUS for cls in declared - leaves)  # intermediate classes map too


@pytest.mark.parametrize("cls", LEAVES, ids=lambda cls: cls.__name__)
def test_every_leaf_error_has_a_meaningful_status(cls: type[GatewayError]) -> None:
    mapped = [STATUS[c] for c in cls.__mro__ if c in STATUS and c is not GatewayError]

    assert mapped, f"{cls.__name__} has no entry in STATUS (it would fall back to INTERNAL)"
    assert mapped[0] not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN)
    assert status_for(cls("x")) == mapped[0]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidQueryError, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
        (errors.PolicyDeniedError, grpc.StatusCode.PERMISSION_DENIED),
        (errors.ApprovalMissingError, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.DisclosureRiskError, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.BudgetExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.NodeUnavailableError, grpc.StatusCode.UNAVAILABLE),
        (errors.ProtocolAbortedError, grpc.StatusCode.ABORTED),
        (errors.DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
        (InternalError, grpc.StatusCode.INTERNAL),
    ],
)
def test_status_follows_the_house_table(error: type[GatewayError], code: grpc.StatusCode) -> None:
    assert status_for(error("x")) is code


def test_subclass_of_a_mapped_error_inherits_its_status() -> None:
    class UnknownColumnError(errors.InvalidQueryError):
        pass

    assert status_for(UnknownColumnError("x")) is grpc.StatusCode.INVALID_ARGUMENT


def test_domain_error_becomes_its_status_and_public_message() -> None:
    context = FakeContext()

    with pytest.raises(Aborted), translate_errors(context):  # type: ignore[arg-type]
        raise errors.PolicyDeniedError("analysts may not group by region")

    assert context.calls == [
        (grpc.StatusCode.PERMISSION_DENIED, "analysts may not group by region")
    ]


def test_unexpected_error_becomes_internal_with_a_reference_and_no_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = FakeContext()

    with caplog.at_level(logging.ERROR, logger="mpc_gateway.rpc.errors"):
        with pytest.raises(Aborted), translate_errors(context):  # type: ignore[arg-type]
            raise ValueError("exposure of ACME Corp is 1234567.89")

    [(code, message)] = context.calls
    assert code is grpc.StatusCode.INTERNAL
    assert "ref" in message
    assert "ACME" not in message and "1234567.89" not in message
    ref = message.rsplit("ref ", 1)[1].rstrip(")")
    [record] = caplog.records
    assert ref in record.getMessage()
    assert record.exc_info is not None and "ACME" in str(record.exc_info[1])


def test_handler_that_succeeds_is_not_aborted() -> None:
    context = FakeContext()

    with translate_errors(context):  # type: ignore[arg-type]
        pass

    assert context.calls == []
