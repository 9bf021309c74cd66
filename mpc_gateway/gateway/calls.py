"""Calls to every node on long-lived threads: releases and pseudonym requests.

Blocking gRPC calls on a thread pool, not gRPC futures: a future starts a thread
per call (its channel's spin thread) whenever none runs, and that cost a third of
a witnessed release's time here. Orders have their own pool (the dispatcher's),
so these never queue behind queries waiting for their turn at the nodes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import grpc

from mpc_gateway.errors import ShuttingDownError
from mpc_gateway.proto.v1 import node_pb2_grpc
from mpc_gateway.rpc.errors import error_from_rpc

__all__ = ["NodeCalls"]

T = TypeVar("T")
Stub = node_pb2_grpc.NodeServiceStub


class NodeCalls:
    def __init__(self, stubs: Sequence[tuple[str, Stub]], workers: int) -> None:
        self._stubs = list(stubs)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calls")
        self._lock = threading.Lock()
        self._closed: str | None = None  # why no call starts any more

    def every_node(self, call: Callable[[str, Stub], T]) -> list[tuple[str, Future[T]]]:
        """``call(name, stub)`` for every node, in party order, each on a pool thread.

        A failed call's future raises its GatewayError, the node named; once closed,
        ShuttingDownError (raised here, or by a call the closed channel cut short).
        """

        def guarded(name: str, stub: Stub) -> T:
            try:
                return call(name, stub)
            except grpc.RpcError as err:
                raise error_from_rpc(err, f"node {name}") from None
            except ValueError as err:  # gRPC's "closed channel": close() came in between
                if self._closed is None:
                    raise
                raise ShuttingDownError(self._closed) from err

        with self._lock:
            if self._closed is not None:
                raise ShuttingDownError(self._closed)
            return [(name, self._pool.submit(guarded, name, stub)) for name, stub in self._stubs]

    def close(self, reason: str | None) -> None:
        """Start no call any more; those queued still run, and fail on the closed channels."""
        with self._lock:
            self._closed = reason or "the gateway has stopped"
        self._pool.shutdown(wait=False)
