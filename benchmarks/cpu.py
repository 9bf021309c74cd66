"""CPU time of a running consortium's processes (Linux ``/proc``), to split a query's cost.

Taken before and after a measured run, it gives the CPU milliseconds one query
costs in the gateway, in the nodes, in their MPC workers and in this process
(the analysts). On other systems every figure is None.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mpc_gateway.devnet.localnet import LocalConsortium

__all__ = ["consortium_processes", "cpu_snapshot", "cpu_per_query_ms"]

_PROC = Path("/proc")


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in (_PROC / str(pid) / "task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def consortium_processes(consortium: LocalConsortium) -> dict[str, list[int]]:
    """PIDs by role: the gateway, the nodes, their MPC workers, and this process."""
    nodes = [p.pid for name, p in consortium.processes.items() if name != "gateway"]
    return {
        "gateway": [consortium.processes["gateway"].pid],
        "nodes": nodes,
        "mpc_workers": [child for pid in nodes for child in _children(pid)],
        "analysts": [os.getpid()],
    }


def cpu_snapshot(processes: dict[str, list[int]]) -> dict[str, dict[int, float | None]]:
    return {role: {pid: _cpu_seconds(pid) for pid in pids} for role, pids in processes.items()}


def cpu_per_query_ms(
    before: dict[str, dict[int, float | None]],
    after: dict[str, dict[int, float | None]],
    queries: int,
) -> dict[str, Any]:
    """CPU ms per query for each role (summed over its processes), and in all."""
    if not queries or not _PROC.exists():
        return {}
    result: dict[str, Any] = {}
    for role, start in before.items():
        spent, seen = 0.0, False
        for pid, start_s in start.items():
            end_s = after[role].get(pid)
            if start_s is not None and end_s is not None:
                spent, seen = spent + end_s - start_s, True
        result[role] = round(spent * 1000 / queries, 3) if seen else None
    result["total"] = round(sum(v for v in result.values() if v is not None), 3)
    return result
