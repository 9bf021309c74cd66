"""The consortium's MPC lanes: independent sessions, each with its own global order.

A *short* lane carries the queries that answer in milliseconds (aggregates,
entity checks); a *long* lane carries the jobs that take seconds to minutes
(large score batches, quantile searches, histograms). Each lane is its own MPC
session (its own worker process at every node, on its own MPC port) with its
own epoch and sequence numbers, so a long job never holds up a short query, and
a failure in one lane tears down that lane's session only. Every computation
declares its lane; every node checks that an order names the lane of the
computation it carries.
"""

from __future__ import annotations

import os
from typing import Literal, TypeGuard

__all__ = ["IDLE", "LANES", "Lane", "NICENESS", "SWITCH_INTERVAL_S", "is_lane", "lower_priority"]

Lane = Literal["short", "long"]
"""Short computations answer in milliseconds; long ones (large batches, searches) take seconds."""

LANES: tuple[Lane, ...] = ("short", "long")
"""Every lane, in the order sessions are opened."""

NICENESS: dict[Lane, int] = {"short": 0, "long": 10}
"""The CPU niceness of each lane's MPC workers (``os.nice``). A long job's workers yield
the processor to a short query's: on a node with fewer cores than busy workers, a
short query would otherwise wait its turn for the CPU behind the long job, which keeps
every cycle nobody else wants (the long lane's benchmark, benchmarks/lanes_bench.py)."""

IDLE: dict[Lane, bool] = {"short": False, "long": True}
"""Whether a lane's MPC workers run under Linux's ``SCHED_IDLE`` policy as well: the
kernel then preempts them the moment any other process wakes up, where niceness only
shrinks their share (a short query wakes a dozen processes on its way, and each waited
behind a long job's worker for the rest of its time slice). A long job then gets the
CPU that short queries leave; beside a load that keeps every core busy it can run
past its deadline and fail, releasing nothing."""


def lower_priority(lane: Lane) -> str | None:
    """Give this process (a lane's MPC worker) its lane's CPU priority.

    Returns why ``SCHED_IDLE`` could not be set where the lane asks for it (not
    Linux, or a sandbox that refuses the call), None otherwise: niceness still holds.
    """
    if NICENESS[lane]:
        os.nice(NICENESS[lane])
    if not IDLE[lane]:
        return None
    if not hasattr(os, "sched_setscheduler"):
        return "this system has no SCHED_IDLE"
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as err:
        return f"SCHED_IDLE refused: {err}"
    return None


SWITCH_INTERVAL_S = 0.0005
"""How long a Python thread keeps the interpreter while another waits for it
(``sys.setswitchinterval``), in the gateway, every node and every MPC worker. A query
hops between threads (gRPC handlers, a worker's pipe reader, the MPC event loop) in
every process on its path; with Python's default of 5 ms each hop may wait that long
behind a busy thread. Measured on this 2-core machine while it was shared (load average
2 to 5): one analyst's median in the throughput benchmark was lower at 0.5 ms in all
five paired runs (45, 40, 45, 46, 44 ms against 49, 66, 55, 50, 47 ms at 5 ms), and 48
against 43 queries/s with 32 analysts; in one pair of the lanes benchmark the idle
aggregate's median was 55 against 50 ms, within that benchmark's noise."""


def is_lane(name: str) -> TypeGuard[Lane]:
    """Whether ``name`` (as a wire message carries it) names a lane."""
    return name in LANES
