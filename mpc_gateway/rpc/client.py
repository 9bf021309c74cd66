"""What every client of a gateway or node service shares: the channel, deadlines, errors.

:class:`HealthClient` probes the standard gRPC health service any of our servers runs.
"""

from __future__ import annotations

from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2

from mpc_gateway.rpc.errors import error_from_rpc
from mpc_gateway.rpc.server import TlsMaterial, client_channel

__all__ = ["ServiceClient", "HealthClient"]


class ServiceClient:
    """A mutual-TLS channel to one service; calls raise domain errors, never grpc.RpcError."""

    def __init__(self, address: str, tls: TlsMaterial, timeout_s: float, peer: str = "") -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._peer = peer or address
        self._channel = client_channel(address, tls)

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise error_from_rpc(err, self._peer) from None

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
