"""A batch: several orders of one lane, consecutive in its sequence, run as one MPC job.

Parties: all m nodes, each running the same members in the same order (the
order of the gateway's signed batch). Each member is the job its own order
would have been, with that order's inputs; its output blocks come back under
``<position>:<block>`` so the node tells them apart and seals each member's to
its own receiver. Leakage: exactly the members' own outputs, nothing across
members. The members run one after another: MPyC matches messages by program
counter, so interleaving them would need every party to interleave alike.
"""

from __future__ import annotations

from typing import Any

from mpc_gateway.mpc.programs.session import program

__all__ = ["run_all"]


async def run_all(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every member's blocks, named ``<position>:<block>``."""
    blocks: dict[str, Any] = {}
    for position, job in enumerate(jobs):
        if job["program"].partition(":")[0] == "batch":
            raise ValueError("a batch member cannot be a batch")
        done = await program(job["program"])(**job["args"])
        blocks.update({f"{position}:{name}": block for name, block in done.items()})
    return blocks
