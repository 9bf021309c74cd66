"""Every node's reply to one order, recombined: the opened blocks, timings, sealed digests.

The blocks a computation opens to steer itself are reconstructed from every
node's re-randomised shares; the result stays sealed to its receiver at the
nodes until :class:`~mpc_gateway.gateway.relay.Relay` shows them the logged release.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpc_gateway.errors import IntegrityError
from mpc_gateway.orders import ExecutionOrder, recombine_block
from mpc_gateway.proto.v1 import node_pb2

__all__ = ["Dispatched", "recombined"]


@dataclass(frozen=True)
class Dispatched:
    """A joint result as signed integers per block, with where and how long it ran."""

    order: ExecutionOrder
    blocks: dict[str, list[int]]
    local_ms: float
    mpc_ms: float
    participation: list[dict[str, object]]  # per node: name, party index, timings (audit)
    sealed: dict[str, str]  # per node: the digest of its result shares, sealed and held there
    sealed_bytes: int
    cosigned: dict[str, int]  # per node: the size of our log it had cosigned last


def recombined(order: ExecutionOrder, replies: dict[str, node_pb2.ResultShares]) -> Dispatched:
    """What every node's reply to ``order`` adds up to; IntegrityError for a misplaced node."""
    shares: dict[str, list[tuple[int, int, list[int]]]] = {}
    for party in order.parties:
        reply = replies[party.name]
        if reply.party_index != party.index:
            raise IntegrityError(f"node {party.name} answered as party {reply.party_index}")
        for block in reply.blocks:
            point = (party.index + 1, int(block.modulus), [int(v) for v in block.values])
            shares.setdefault(block.name, []).append(point)
    parties = len(order.parties)
    blocks = {name: recombine_block(name, points, parties) for name, points in shares.items()}
    return Dispatched(
        order=order,
        blocks=blocks,
        local_ms=max(r.local_ms for r in replies.values()),
        mpc_ms=max(r.mpc_ms for r in replies.values()),
        participation=[
            {
                "node": r.node,
                "party": r.party_index,
                "local_us": int(r.local_ms * 1000),
                "mpc_us": int(r.mpc_ms * 1000),
            }
            for r in sorted(replies.values(), key=lambda r: r.party_index)
        ],
        sealed={name: r.sealed_sha256 for name, r in replies.items()},
        cosigned={name: r.cosigned_size for name, r in replies.items()},
        sealed_bytes=sum(r.sealed_size for r in replies.values()),
    )
