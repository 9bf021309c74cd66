"""What every client of a gateway or node service shares: the channel, deadlines, errors."""

from __future__ import annotations

from typing import Any, Self

import grpc

from mpc_gateway.rpc.errors import error_from_rpc
from mpc_gateway.rpc.server import TlsMaterial, client_channel

__all__ = ["ServiceClient"]


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
