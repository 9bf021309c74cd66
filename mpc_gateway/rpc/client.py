"""What every client of a gateway or node service shares: the channel, deadlines, errors.

A client checks its own certificate before it connects
(:func:`~mpc_gateway.pki.own_certificate.check_own_certificate`: none, expired,
another CA), because a server that refuses it during the TLS handshake only
closes the connection; a handshake that fails anyway is reported naming the
certificate and the likely cause, never as a bare "Socket closed".

:class:`HealthClient` probes the standard gRPC health service any of our servers runs.
"""

from __future__ import annotations

from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2

from mpc_gateway.errors import GatewayError, NodeUnavailableError
from mpc_gateway.pki.own_certificate import check_own_certificate, describe
from mpc_gateway.rpc.errors import error_from_rpc
from mpc_gateway.rpc.server import TlsMaterial, client_channel

__all__ = ["ServiceClient", "HealthClient"]


class ServiceClient:
    """A mutual-TLS channel to one service; calls raise domain errors, never grpc.RpcError."""

    def __init__(self, address: str, tls: TlsMaterial, timeout_s: float, peer: str = "") -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._peer = peer or address
        self._certificate = describe(check_own_certificate(tls[0], tls[1]))
        self._channel = client_channel(address, tls)

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise self._error(err) from None

    def _send(self, method: Any, request: Any) -> grpc.Future[Any]:
        """The call, sent without waiting: so a client works on one reply while the server
        computes the next (:meth:`_reply` waits for it)."""
        sent: grpc.Future[Any] = method.future(request, timeout=self.timeout_s)
        return sent

    def _reply(self, sent: grpc.Future[Any]) -> Any:
        """A sent call's reply, raising as :meth:`_call` does."""
        try:
            return sent.result()
        except grpc.RpcError as err:
            raise self._error(err) from None

    def _error(self, err: grpc.RpcError) -> GatewayError:
        return _handshake_error(error_from_rpc(err, self._peer), self._peer, self._certificate)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HealthClient(ServiceClient):
    """The standard health service of a gateway or node, over mutual TLS."""

    def __init__(self, address: str, tls: TlsMaterial, timeout_s: float = 3.0) -> None:
        super().__init__(address, tls, timeout_s)
        # the method by name: grpc_health's stub class is untyped
        self._check = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    def status(self, service: str = "") -> str:
        """``SERVING``, ``NOT_SERVING``, ...; a domain error if the server cannot be asked."""
        reply = self._call(self._check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


# what gRPC reports for a TLS handshake that failed, and what each means for this client
_HANDSHAKE_CAUSES = (
    (
        "certificate_verify_failed",
        "the server's certificate was not issued by the consortium CA this client trusts "
        "(unknown CA): check that the client's CA file is the consortium's",
    ),
    (
        "socket closed",
        "if every attempt ends so, the server refuses this client's {certificate} in the "
        "TLS handshake: a server of another consortium, or one that no longer trusts it",
    ),
    (
        "handshake",
        "the TLS handshake failed with {certificate}: check that it and the server's "
        "certificate were issued by the same consortium CA",
    ),
)


def _handshake_error(err: GatewayError, peer: str, certificate: str) -> GatewayError:
    """``err`` in words naming the certificate, when it is a TLS handshake that failed."""
    if not isinstance(err, NodeUnavailableError):
        return err
    text = err.public_message.lower()
    for marker, cause in _HANDSHAKE_CAUSES:
        if marker in text:
            said = err.public_message.split(" (the TLS handshake failed", 1)[0]
            return NodeUnavailableError(
                f"{said} ({cause.format(certificate=certificate)})", err.query_id
            )
    return err
