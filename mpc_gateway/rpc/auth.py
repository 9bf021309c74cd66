"""Who is calling: the identity in the client certificate of a mutual-TLS call.

grpcio exposes the certificate's URI SAN as ``peer_spiffe_id`` in the call's
auth context. Authorisation uses that identity (role, name and trust domain),
never a field of the request. The server's interceptor
(:mod:`mpc_gateway.rpc.interceptor`) reads it once per call, checks it against
the method's access rule and makes it available to the servicer as
:func:`current_caller`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mpc_gateway.errors import UnauthenticatedError
from mpc_gateway.pki import Identity

__all__ = ["caller_identity", "caller_certificate_sha256", "current_caller", "calling_as"]

_CALLER: ContextVar[Identity | None] = ContextVar("mpcgw_caller", default=None)


def _auth_values(context: grpc.ServicerContext, key: str) -> list[bytes]:
    value = context.auth_context().get(key)
    return [value] if isinstance(value, bytes) else list(value or [])


def caller_identity(context: grpc.ServicerContext, trust_domain: str | None = None) -> Identity:
    """The caller's identity; UnauthenticatedError for none, or one of another trust domain."""
    spiffe = _auth_values(context, "peer_spiffe_id")
    if len(spiffe) != 1:
        raise UnauthenticatedError(
            "the client certificate carries no consortium identity (a spiffe:// URI SAN)"
        )
    return Identity.from_spiffe_id(spiffe[0].decode(), trust_domain=trust_domain)


def caller_certificate_sha256(context: grpc.ServicerContext) -> str:
    """SHA-256 of the caller's certificate (DER), hex; recorded in the audit log."""
    pems = _auth_values(context, "x509_pem_cert")
    if not pems or not pems[0]:
        return ""
    der = x509.load_pem_x509_certificate(pems[0]).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@contextmanager
def calling_as(identity: Identity) -> Iterator[None]:
    """Within the block, :func:`current_caller` is ``identity`` (the interceptor's doing)."""
    token = _CALLER.set(identity)
    try:
        yield
    finally:
        _CALLER.reset(token)


def current_caller() -> Identity:
    """The authenticated, authorised caller of the RPC being served."""
    caller = _CALLER.get()
    if caller is None:
        raise UnauthenticatedError("no authenticated caller: the call bypassed the interceptor")
    return caller
