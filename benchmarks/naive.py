"""Launch the naive MPyC baselines: one process per party, once per query or fit.

:func:`launch` starts an MPyC script at every party (``-M``/``-I``/``-P`` on
loopback) and returns party 0's JSON line; :func:`run_naive` runs
``naive_mpyc.py`` (one aggregate query) with it, :mod:`benchmarks.naive_train`
the training baseline. One run's time is the wall time from launching every
party's process to the last one exiting: interpreter start, imports, reading
the data, connecting, the MPC and shutdown, which is what a team pays per
query without a warm session. Parties talk plain TCP on loopback (no TLS).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mpc_gateway.devnet.demo import ExampleQuery
from mpc_gateway.devnet.localnet import ConsortiumFiles, free_ports

__all__ = ["NaiveRun", "NaiveFailed", "launch", "mpyc_arguments", "run_naive", "max_relative_error"]

SCRIPT = Path(__file__).with_name("naive_mpyc.py")


class NaiveFailed(RuntimeError):
    """A naive run that timed out, crashed or printed no result."""


@dataclass(frozen=True)
class NaiveRun:
    wall_ms: float
    timings: dict[str, float]  # party 0's own phases, in seconds
    groups: dict[str, list[Any]]  # group -> [count, mean, stddev]


def mpyc_arguments(pid: int, ports: list[int]) -> list[str]:
    """MPyC's own options for party ``pid`` of ``len(ports)``, plain TCP on loopback."""
    return [f"-M{len(ports)}", f"-I{pid}", *[a for p in ports for a in ("-P", f"localhost:{p}")]]


def _command(
    files: ConsortiumFiles, query: ExampleQuery, groups: list[str], ports: list[int], pid: int
) -> list[str]:
    column = query.aggregates[1].partition(":")[2]  # the query's one numeric column
    return [
        sys.executable,
        str(SCRIPT),
        *mpyc_arguments(pid, ports),
        "--data",
        str(files.data_file(files.nodes[pid])),
        "--column",
        column,
        "--where",
        query.where or "TRUE",
        "--group-by",
        str(query.group_by),
        "--groups",
        ",".join(groups),
    ]


def _wait_all(processes: list[subprocess.Popen[bytes]], deadline: float) -> bytes:
    output, _ = processes[0].communicate(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes[1:]:
        process.wait(timeout=max(0.1, deadline - time.monotonic()))
    return output


def _parse(output: bytes, log: Path) -> dict[str, Any]:
    lines = [line for line in output.decode(errors="replace").splitlines() if line.startswith("{")]
    if not lines:
        raise NaiveFailed(f"party 0 printed no result; see {log}")
    return dict(json.loads(lines[-1]))


def launch(
    command: Callable[[int, list[int]], list[str]], parties: int, timeout_s: float, log: Path
) -> tuple[float, dict[str, Any]]:
    """Run ``command(pid, ports)`` at every party; the wall ms and party 0's last JSON line.

    Raises NaiveFailed on a timeout, a failed party or no result; the parties' stderr
    is appended to ``log``.
    """
    ports = free_ports(parties)
    commands = [command(pid, ports) for pid in range(parties)]
    processes: list[subprocess.Popen[bytes]] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as errors:
        started = time.perf_counter()
        try:
            for pid, argv in enumerate(commands):
                out: int | IO[bytes] = subprocess.PIPE if pid == 0 else subprocess.DEVNULL
                processes.append(subprocess.Popen(argv, stdout=out, stderr=errors))
            output = _wait_all(processes, time.monotonic() + timeout_s)
        except subprocess.TimeoutExpired:
            raise NaiveFailed(f"timed out after {timeout_s:.0f} s") from None
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        wall_ms = (time.perf_counter() - started) * 1000
    codes = [p.returncode for p in processes]
    if any(codes):
        raise NaiveFailed(f"exit codes {codes}; see {log}")
    return wall_ms, _parse(output, log)


def run_naive(
    files: ConsortiumFiles, query: ExampleQuery, groups: list[str], timeout_s: float, log: Path
) -> NaiveRun:
    """Run the naive script once at every party; raises NaiveFailed on timeout or error."""

    def command(pid: int, ports: list[int]) -> list[str]:
        return _command(files, query, groups, ports, pid)

    wall_ms, parsed = launch(command, len(files.nodes), timeout_s, log)
    return NaiveRun(wall_ms, parsed["timings"], parsed["groups"])


def max_relative_error(run: NaiveRun, reference: list[Any]) -> float:
    """Largest relative difference from the plaintext answer over every released value."""
    worst = 0.0
    for group, expected in reference:
        for got, want in zip(run.groups[group], expected):
            if got is None or want is None:
                if got is not want:
                    return math.inf
                continue
            scale = max(abs(float(want)), 1e-12)
            worst = max(worst, abs(float(got) - float(want)) / scale)
    return worst
