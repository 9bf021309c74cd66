"""Who is calling: the identity in the client certificate of a mutual-TLS call.

grpcio exposes the certificate's URI SAN as ``peer_spiffe_id`` in the call's
auth context. Authorisation uses that identity (role and name), never a field
of the request.
"""

from __future__ import annotations

import hashlib

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mpc_gateway.errors import UnauthenticatedError
from mpc_gateway.pki import Identity

__all__ = ["caller_identity", "caller_certificate_sha256"]


def caller_identity(context: grpc.ServicerContext) -> Identity:
    auth = context.auth_context()
    spiffe = auth.get("peer_spiffe_id") or []
    if len(spiffe) != 1:
        raise UnauthenticatedError(
            "the client certificate carries no consortium identity (a spiffe:// URI SAN)"
        )
    return Identity.from_spiffe_id(spiffe[0].decode())


def caller_certificate_sha256(context: grpc.ServicerContext) -> str:
    """SHA-256 of the caller's certificate (DER), hex; recorded in the audit log."""
    pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
    if not pem:
        return ""
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()
