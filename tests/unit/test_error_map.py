"""Every domain error names its gRPC status and CLI exit code; both directions of the wire."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from mpc_gateway import errors
from mpc_gateway.errors import GatewayError, InternalError
from mpc_gateway.rpc.errors import ERROR_CLASSES, abort_internal, abort_with, error_from_rpc


def _package_subclasses(cls: type[GatewayError]) -> list[type[GatewayError]]:
    # classes that tests derive in the same session are not part of the package's tree
    found = []
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("mpc_gateway."):
            found += [sub, *_package_subclasses(sub)]
    return found


EVERY = sorted({GatewayError, *_package_subclasses(GatewayError)}, key=lambda c: c.__qualname__)

# the house table: what each error means on the wire and at the shell
TABLE = {
    errors.InvalidRequestError: ("INVALID_ARGUMENT", 2),
    errors.InvalidQueryError: ("INVALID_ARGUMENT", 2),
    errors.UnauthenticatedError: ("UNAUTHENTICATED", 3),
    errors.IntegrityError: ("UNAUTHENTICATED", 3),
    errors.PolicyDeniedError: ("PERMISSION_DENIED", 3),
    errors.ApprovalMissingError: ("FAILED_PRECONDITION", 3),
    errors.DisclosureRiskError: ("FAILED_PRECONDITION", 3),
    errors.BudgetExhaustedError: ("RESOURCE_EXHAUSTED", 3),
    errors.RequestTooLargeError: ("RESOURCE_EXHAUSTED", 2),
    errors.NodeUnavailableError: ("UNAVAILABLE", 4),
    errors.ShuttingDownError: ("UNAVAILABLE", 4),
    errors.StorageUnavailableError: ("UNAVAILABLE", 4),
    errors.ProtocolAbortedError: ("ABORTED", 4),
    errors.DeadlineExceededError: ("DEADLINE_EXCEEDED", 4),
    errors.NoAnswerError: ("DEADLINE_EXCEEDED", 4),
    errors.ConfigurationError: ("FAILED_PRECONDITION", 5),
    errors.InternalError: ("INTERNAL", 1),
    errors.GatewayError: ("INTERNAL", 1),
}


class Aborted(Exception):
    """What grpc's ServicerContext.abort does: it raises, ending the handler."""


class FakeContext:
    def __init__(self) -> None:
        self.calls: list[tuple[grpc.StatusCode, str]] = []
        self.trailers: tuple[tuple[str, str], ...] = ()

    def set_trailing_metadata(self, trailers: tuple[tuple[str, str], ...]) -> None:
        self.trailers = trailers

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.calls.append((code, details))
        raise Aborted(details)


class FailedCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A failed call as a client sees it: status, details, trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Any) -> None:
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailers

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def test_the_table_covers_every_error_of_the_package() -> None:
    declared = {getattr(errors, name) for name in errors.__all__}
    assert declared == set(EVERY) == set(TABLE) == set(ERROR_CLASSES.values())


@pytest.mark.parametrize("cls", EVERY, ids=lambda cls: cls.__name__)
def test_every_error_names_a_real_status_and_an_exit_code(cls: type[GatewayError]) -> None:
    status = grpc.StatusCode[cls.status]  # a name grpc knows
    assert status not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN)
    assert (cls.status, cls.exit_code) == TABLE[cls]


def test_a_subclass_of_a_mapped_error_inherits_its_status_and_exit_code() -> None:
    class UnknownColumnError(errors.InvalidQueryError):
        pass

    assert (UnknownColumnError.status, UnknownColumnError.exit_code) == ("INVALID_ARGUMENT", 2)


@pytest.mark.parametrize("cls", EVERY, ids=lambda cls: cls.__name__)
def test_an_error_crosses_the_wire_as_its_own_class(cls: type[GatewayError]) -> None:
    context = FakeContext()
    with pytest.raises(Aborted):
        abort_with(context, cls("node bank-a: a message", query_id="q1"))  # type: ignore[arg-type]
    [(code, details)] = context.calls
    assert code is grpc.StatusCode[cls.status] and details == "node bank-a: a message"
    back = error_from_rpc(FailedCall(code, details, context.trailers), "node bank-a")
    assert type(back) is cls and back.public_message == details and back.query_id == "q1"


def test_a_status_without_a_class_becomes_the_first_error_of_that_status() -> None:
    call = FailedCall(grpc.StatusCode.FAILED_PRECONDITION, "waits", ())
    assert type(error_from_rpc(call, "gateway")) is errors.ApprovalMissingError
    assert type(error_from_rpc(FailedCall(grpc.StatusCode.UNKNOWN, "?", ()), "x")) is InternalError


def test_a_failed_handshake_is_explained() -> None:
    call = FailedCall(grpc.StatusCode.UNAVAILABLE, "failed to connect: SSL handshake failed", ())
    err = error_from_rpc(call, "gateway at 127.0.0.1:1")
    assert (
        isinstance(err, errors.NodeUnavailableError)
        and "TLS handshake failed" in err.public_message
    )


def test_a_call_the_stopping_peer_cancelled_is_unavailable_not_internal() -> None:
    """A node stopped with SIGTERM cancels the calls it still runs: retry, not a bug."""
    err = error_from_rpc(FailedCall(grpc.StatusCode.CANCELLED, "CANCELLED", ()), "node bank-a")
    assert isinstance(err, errors.NodeUnavailableError) and err.status == "UNAVAILABLE"
    assert err.public_message.startswith("node bank-a ended the call before it answered")


def test_unexpected_error_becomes_internal_with_a_reference_and_no_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = FakeContext()

    with caplog.at_level(logging.ERROR, logger="mpc_gateway.rpc.errors"):
        try:
            raise ValueError("exposure of ACME Corp is 1234567.89")
        except ValueError:
            with pytest.raises(Aborted):
                abort_internal(context)  # type: ignore[arg-type]

    [(code, message)] = context.calls
    assert code is grpc.StatusCode.INTERNAL
    assert "ref" in message
    assert "ACME" not in message and "1234567.89" not in message
    ref = message.rsplit("ref ", 1)[1].rstrip(")")
    [record] = caplog.records
    assert ref in record.getMessage()
    assert record.exc_info is not None and "ACME" in str(record.exc_info[1])
