"""One place for who may call what: a default-deny method-to-principal table, and error statuses.

Every server of the project is built with :class:`AccessInterceptor`. For each
call it looks up the method's rule: a method the table does not list is refused
(PERMISSION_DENIED) whoever calls; health and reflection are open to any
consortium certificate; every other method names the principals that may call
it (``role/*`` or ``role/name``). The caller is the identity in its client
certificate, in the consortium's trust domain only. A request larger than its
method's limit (:mod:`mpc_gateway.rpc.limits`) is refused as RESOURCE_EXHAUSTED
before the servicer sees it, and one that is not a well-formed message (invalid
UTF-8 in a text field, say) as INVALID_ARGUMENT; both are reported to the refusal
hook (the gateway logs them). The servicer then runs with
:func:`~mpc_gateway.rpc.auth.current_caller` set, and any domain error it raises
ends the call with that error's status and public message (anything else is
INTERNAL with a reference id), so servicers contain no status handling at all.
With a :class:`~mpc_gateway.rpc.drain.Gate`, each authorised call is counted
while it runs, and refused (UNAVAILABLE) once the server has started draining.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import grpc

from mpc_gateway.errors import (
    GatewayError,
    InvalidRequestError,
    PolicyDeniedError,
    RequestTooLargeError,
)
from mpc_gateway.pki import Identity
from mpc_gateway.rpc.auth import caller_identity, calling_as
from mpc_gateway.rpc.drain import Gate
from mpc_gateway.rpc.errors import abort_internal, abort_with
from mpc_gateway.rpc.limits import request_limit, too_large_message

__all__ = ["ANYONE", "AccessInterceptor", "allows"]

log = logging.getLogger(__name__)

ANYONE = "*"
"""A rule for methods any consortium certificate may call (health, reflection)."""

Rules = Mapping[str, Sequence[str]]
RefusalHook = Callable[[Identity, str, GatewayError], None]
"""Told of each request refused before its servicer ran (the caller, the method, why)."""
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


def allows(principals: Sequence[str], caller: Identity) -> bool:
    """Whether ``caller`` matches one of ``principals`` (``role/*`` or ``role/name``)."""
    for pattern in principals:
        role, _, name = pattern.partition("/")
        if role == caller.role and name in ("*", caller.name):
            return True
    return False


def _refusal(caller: Identity, method: str, principals: Sequence[str]) -> str:
    if all(p.endswith("/*") for p in principals):
        roles = " or ".join(p.removesuffix("/*") for p in principals)
        return f"{caller} may not call {method}: it needs the role {roles}"
    return f"{caller} may not call {method}: only {' or '.join(principals)} may"


class AccessInterceptor(grpc.ServerInterceptor):
    """Default-deny authorisation and error translation for every method of a server."""

    def __init__(
        self,
        rules: Rules,
        trust_domain: str,
        gate: Gate | None = None,
        on_refusal: RefusalHook | None = None,
    ) -> None:
        self._rules = dict(rules)
        self._trust_domain = trust_domain
        self._gate = gate
        self._on_refusal = on_refusal
        self._guarded: dict[str, Handler] = {}  # by method: wrapped once, not per call

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        if method in self._guarded:
            return self._guarded[method]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        rule = self._rules.get(method)
        if rule is not None and ANYONE in rule:
            return handler
        if handler.request_streaming or handler.response_streaming or handler.unary_unary is None:
            guarded = _refusing(handler, f"{method} is not open to callers")
        else:
            guarded = grpc.unary_unary_rpc_method_handler(
                self._guard(method, rule, handler.unary_unary, handler.request_deserializer),
                request_deserializer=None,  # read in the guard: a malformed one is refused there
                response_serializer=handler.response_serializer,
            )
        self._guarded[method] = guarded
        return guarded

    def _guard(
        self,
        method: str,
        rule: Sequence[str] | None,
        behaviour: Callable[[Any, grpc.ServicerContext], Any],
        deserialize: Callable[[bytes], Any] | None,
    ) -> Callable[[bytes, grpc.ServicerContext], Any]:
        short = method.rsplit("/", 1)[-1]
        limit = request_limit(method)

        def guarded(raw: bytes, context: grpc.ServicerContext) -> Any:
            try:
                caller = caller_identity(context, self._trust_domain)
                if len(raw) > limit:
                    refusal: GatewayError = RequestTooLargeError(
                        too_large_message(method, len(raw), limit)
                    )
                    self._report(caller, short, refusal)
                    raise refusal
                try:
                    request = raw if deserialize is None else deserialize(raw)
                except Exception:  # noqa: BLE001 - protobuf's DecodeError, or any other
                    refusal = InvalidRequestError(
                        f"the {short} request cannot be read: it is not a well-formed message "
                        "(text fields must be UTF-8)"
                    )
                    self._report(caller, short, refusal)
                    raise refusal from None
                if rule is None:
                    raise PolicyDeniedError(f"{caller} may not call {short}: no one may")
                if not allows(rule, caller):
                    raise PolicyDeniedError(_refusal(caller, short, rule))
                with self._admit(caller, short), calling_as(caller):
                    return behaviour(request, context)
            except GatewayError as err:
                abort_with(context, err)
            except Exception:
                abort_internal(context)

        return guarded

    def _admit(self, caller: Identity, method: str) -> AbstractContextManager[None]:
        if self._gate is None:
            return nullcontext()
        return self._gate.admit(method, lambda err: self._report(caller, method, err))

    def _report(self, caller: Identity, method: str, refusal: GatewayError) -> None:
        """Tell the refusal hook (the gateway's audit log), if any: best effort.

        A store that cannot take it (full, or already closed at the end of a drain)
        must not turn the refusal the caller gets into another error.
        """
        if self._on_refusal is None:
            return
        try:
            self._on_refusal(caller, method, refusal)
        except Exception:  # noqa: BLE001 - the refusal stands; only its record is lost
            log.warning("could not record the refusal of %s by %s", method, caller, exc_info=True)


def _refusing(handler: Handler, reason: str) -> Handler:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
