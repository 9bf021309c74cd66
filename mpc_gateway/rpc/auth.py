"""Who is calling: the identity in the client certificate of a mutual-TLS call.

grpcio exposes the certificate's URI SAN as ``peer_spiffe_id`` in the call's
auth context. Authorisation uses that identity (role and name), never a field
of the request.
"""

from __future__ import annotations

import grpc

from mpc_gateway.errors import UnauthenticatedError
from mpc_gateway.pki import Identity

__all__ = ["caller_identity"]


def caller_identity(context: grpc.ServicerContext) -> Identity:
    auth = context.auth_context()
    spiffe = auth.get("peer_spiffe_id") or []
    if len(spiffe) != 1:
        raise UnauthenticatedError(
            "the client certificate carries no consortium identity (a spiffe:// URI SAN)"
        )
    return Identity.from_spiffe_id(spiffe[0].decode())
