"""Domain errors to gRPC statuses and back: each error class names its own status.

Servers turn a domain error into its status with the error's public message
(:func:`abort_with`, called by the interceptor for every handler); anything
else becomes INTERNAL with a reference id, and the traceback stays in the
server's log. The error's class travels in trailing metadata, so a client (and
the gateway talking to nodes) rebuilds exactly that class with
:func:`error_from_rpc`, not just one that shares its status.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn
from uuid import uuid4

import grpc

from mpc_gateway import errors
from mpc_gateway.errors import (
    GatewayError,
    InternalError,
    NoAnswerError,
    NodeUnavailableError,
    RequestTooLargeError,
)

__all__ = [
    "status_for",
    "abort_with",
    "abort_internal",
    "error_from_rpc",
    "ERROR_CLASSES",
]

log = logging.getLogger(__name__)

QUERY_ID_KEY = "mpcgw-query-id"  # trailing metadata: the query an error is about
ERROR_KEY = "mpcgw-error"  # trailing metadata: the error's class


def _classes(cls: type[GatewayError]) -> list[type[GatewayError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        if sub.__module__ == errors.__name__:
            found += _classes(sub)
    return found


ERROR_CLASSES: dict[str, type[GatewayError]] = {c.__name__: c for c in _classes(GatewayError)}
"""Every error of :mod:`mpc_gateway.errors`, by class name."""

# the error a client raises for a status it gets without a class name: the first declared
_ERROR_FOR: dict[grpc.StatusCode, type[GatewayError]] = {}
for _cls in ERROR_CLASSES.values():
    _ERROR_FOR.setdefault(grpc.StatusCode[_cls.status], _cls)


def status_for(err: GatewayError) -> grpc.StatusCode:
    return grpc.StatusCode[err.status]


def abort_with(context: grpc.ServicerContext, err: GatewayError) -> NoReturn:
    """End the call with ``err``'s status and public message (and its class and query id)."""
    trailers = [(ERROR_KEY, type(err).__name__)] if type(err).__name__ in ERROR_CLASSES else []
    if err.query_id:
        trailers.append((QUERY_ID_KEY, err.query_id))
    context.set_trailing_metadata(tuple(trailers))
    context.abort(status_for(err), err.public_message)


def abort_internal(context: grpc.ServicerContext) -> NoReturn:
    """End the call as INTERNAL with a reference id; the traceback goes to the server's log."""
    ref = uuid4().hex[:8]
    log.exception("internal error %s", ref)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")


def error_from_rpc(err: grpc.RpcError, peer: str) -> GatewayError:
    """The domain error for a failed call to ``peer``, with a message saying what happened."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (err.details() if isinstance(err, grpc.Call) else None) or str(err)
    trailers: dict[str, Any] = {}
    if isinstance(err, grpc.Call):
        trailers = {str(k): v for k, v in err.trailing_metadata() or ()}
    query_id = str(trailers[QUERY_ID_KEY]) if trailers.get(QUERY_ID_KEY) else None
    if ERROR_KEY not in trailers:  # the transport's status, not a server's verdict
        transport = _transport_error(code, details, peer, query_id)
        if transport is not None:
            return transport
    if code == grpc.StatusCode.UNAVAILABLE and ERROR_KEY not in trailers:
        hint = ""
        if any(word in details.lower() for word in ("handshake", "ssl", "certificate")):
            hint = (
                " (the TLS handshake failed: check that the certificate was issued by the "
                "consortium CA and that the peer trusts the same CA)"
            )
        return NodeUnavailableError(f"{peer} is unavailable: {details}{hint}")
    error = ERROR_CLASSES.get(str(trailers.get(ERROR_KEY, ""))) or _ERROR_FOR.get(
        code, InternalError
    )
    message = details if peer in details else f"{peer}: {details}"
    return error(message, query_id)


def _transport_error(
    code: grpc.StatusCode, details: str, peer: str, query_id: str | None
) -> GatewayError | None:
    """What gRPC itself ended the call with, in words that say what happened."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return RequestTooLargeError(
            f"{peer} refused the message as too large ({details}); see docs/limits.md "
            "for each method's limit",
            query_id,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return NoAnswerError(f"{peer} did not answer before the deadline", query_id)
    if code == grpc.StatusCode.CANCELLED:  # e.g. a server stopping with the call under way
        return NodeUnavailableError(
            f"{peer} ended the call before it answered (it was stopping, or the call was "
            f"cancelled): {details}",
            query_id,
        )
    return None
