"""The one table between domain errors and gRPC status codes.

Servers wrap every handler in :func:`translate_errors`: a domain error becomes
its status with the error's public message; anything else becomes INTERNAL with
a reference id, and the traceback stays in the server's log. Clients (and the
gateway talking to nodes) turn a status back into the domain error with
:func:`error_from_rpc`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import grpc

from mpc_gateway.errors import (
    ApprovalMissingError,
    BudgetExhaustedError,
    ConfigurationError,
    DeadlineExceededError,
    DisclosureRiskError,
    GatewayError,
    IntegrityError,
    InvalidQueryError,
    InvalidRequestError,
    NodeUnavailableError,
    PolicyDeniedError,
    ProtocolAbortedError,
    UnauthenticatedError,
)

__all__ = ["STATUS", "status_for", "translate_errors", "error_from_rpc", "InternalError"]

log = logging.getLogger(__name__)

QUERY_ID_KEY = "mpcgw-query-id"  # trailing metadata: the query an error is about


class InternalError(GatewayError):
    """A server failed in a way it did not foresee (see its log for the reference)."""


STATUS: dict[type[GatewayError], grpc.StatusCode] = {
    InvalidQueryError: grpc.StatusCode.INVALID_ARGUMENT,  # what clients raise for the status
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    IntegrityError: grpc.StatusCode.UNAUTHENTICATED,
    PolicyDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    ApprovalMissingError: grpc.StatusCode.FAILED_PRECONDITION,
    DisclosureRiskError: grpc.StatusCode.FAILED_PRECONDITION,
    ConfigurationError: grpc.StatusCode.FAILED_PRECONDITION,
    BudgetExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NodeUnavailableError: grpc.StatusCode.UNAVAILABLE,
    ProtocolAbortedError: grpc.StatusCode.ABORTED,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    InternalError: grpc.StatusCode.INTERNAL,
}

# the error a client raises for a status; several errors share a status, the first listed wins
_ERROR_FOR: dict[grpc.StatusCode, type[GatewayError]] = {}
for _error, _code in STATUS.items():
    _ERROR_FOR.setdefault(_code, _error)


def status_for(err: GatewayError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL


@contextmanager
def translate_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Turn a domain error into the status a client should see; log the rest."""
    try:
        yield
    except GatewayError as err:
        if err.query_id:
            context.set_trailing_metadata(((QUERY_ID_KEY, err.query_id),))
        context.abort(status_for(err), err.public_message)
    except Exception:
        ref = uuid4().hex[:8]
        log.exception("internal error %s", ref)
        context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")


def error_from_rpc(err: grpc.RpcError, peer: str) -> GatewayError:
    """The domain error for a failed call to ``peer``, with a message saying what happened."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (err.details() if isinstance(err, grpc.Call) else None) or str(err)
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = ""
        if (
            "handshake" in details.lower()
            or "ssl" in details.lower()
            or "certificate" in details.lower()
        ):
            hint = (
                " (the TLS handshake failed: check that the certificate was issued by the "
                "consortium CA and that the peer trusts the same CA)"
            )
        return NodeUnavailableError(f"{peer} is unavailable: {details}{hint}")
    error = _ERROR_FOR.get(code, InternalError)
    trailers = dict(err.trailing_metadata() or ()) if isinstance(err, grpc.Call) else {}
    return error(details if peer in details else f"{peer}: {details}", trailers.get(QUERY_ID_KEY))
