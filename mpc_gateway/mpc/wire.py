"""Length-prefixed frames between a node and its MPC worker process.

The worker is a child process the node itself starts, over its own pipes, so
frames are pickles: nothing crosses a trust boundary here. mpyc is not imported.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from typing import IO, Any

from mpc_gateway.lanes import Lane

__all__ = ["NODES_ONLY", "WorkerConfig", "read_frame", "write_frame"]

_HEADER = struct.Struct(">I")

NODES_ONLY = 0
"""The modulus of a result block every party opened in the clear: it stays at the nodes.

Every other block of a job's result is ``(field modulus, this party's shares)``."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to join one MPC session."""

    pid: int
    addresses: tuple[tuple[str, int], ...]  # (host, port) per party index
    identities: tuple[str, ...]  # spiffe id expected of each party's certificate
    mpc_dir: str  # holds .config/party_{pid}.crt|.key and .config/mpyc_ca.crt
    epoch: int
    lane: Lane = "short"  # the MPC lane whose session this is
    log_level: str = "WARNING"

    def mpyc_argv(self) -> list[str]:
        argv = ["mpc-worker", "--ssl", "--no-log"]
        for index, (host, port) in enumerate(self.addresses):
            # MPyC marks its own entry by an empty host
            argv += ["-P", f":{port}" if index == self.pid else f"{host}:{port}"]
        return argv


def write_frame(stream: IO[bytes], message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message, or None at end of stream."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    payload = _read_exactly(stream, _HEADER.unpack(header)[0])
    return None if payload is None else pickle.loads(payload)
