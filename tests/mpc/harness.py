"""Run MPC programs across m real parties, each its own process, on loopback.

No TLS, no worker supervision, no gRPC: just the programs. Each party runs
:mod:`tests.mpc.party` with its own arguments; the harness waits for all of
them (with a deadline, killing every party on failure) and plays the outside
receiver: it recombines the parties' re-randomised shares of each released
block into the joint (signed) integers.

    results = run_parties("mpc_gateway.mpc.programs.aggregate:joint_aggregates", args_per_party)
    opened = open_blocks(results)          # {block: [int, ...]}
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_gateway.devnet.localnet import free_ports
from mpc_gateway.mpc.wire import NODES_ONLY
from mpc_gateway.orders import recombine_shares, signed

__all__ = ["PartyOutcome", "PartyRunError", "open_blocks", "run_calls", "run_parties"]

REPO = Path(__file__).resolve().parents[2]
Blocks = dict[str, tuple[int, list[int]]]


class PartyRunError(RuntimeError):
    """A party process failed or did not finish in time."""


@dataclass(frozen=True)
class PartyOutcome:
    """What one party returned from one call, and the seconds the call took there."""

    result: Any
    seconds: float


def _wait(procs: list[subprocess.Popen[bytes]], deadline: float, tmp: str) -> None:
    """Until every party has exited, or one failed (the others are then killed), or the deadline."""
    try:
        while any(p.poll() is None for p in procs) and all(p.poll() in (None, 0) for p in procs):
            if time.monotonic() > deadline:
                raise PartyRunError("a party did not finish before the deadline")
            time.sleep(0.02)
    finally:
        killed = [p for p in procs if p.poll() is None]
        for proc in killed:
            proc.kill()
            proc.wait()
    failed = [(i, p) for i, p in enumerate(procs) if p.returncode != 0 and p not in killed]
    if failed:
        i, proc = failed[0]
        stderr = Path(tmp, f"err{i}.txt").read_text(errors="replace")
        raise PartyRunError(f"party {i} exited with {proc.returncode}:\n{stderr[-4000:]}")


def run_calls(
    calls_per_party: Sequence[Sequence[tuple[str, dict[str, Any]]]], timeout: float = 120.0
) -> list[list[PartyOutcome]]:
    """Run each party's calls (``("module:function", kwargs)``, same sequence everywhere).

    Returns, per party, one :class:`PartyOutcome` per call, in call order.
    """
    parties = len(calls_per_party)
    ports = free_ports(parties)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory(prefix="mpc-harness-") as tmp:
        procs = []
        for pid, calls in enumerate(calls_per_party):
            job = {"pid": pid, "ports": ports, "calls": list(calls), "out": f"{tmp}/out{pid}.pkl"}
            Path(tmp, f"job{pid}.pkl").write_bytes(pickle.dumps(job))
            with open(Path(tmp, f"err{pid}.txt"), "wb") as stderr:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.mpc.party", f"{tmp}/job{pid}.pkl"],
                        cwd=REPO,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
        _wait(procs, time.monotonic() + timeout, tmp)
        outcomes = [pickle.loads(Path(tmp, f"out{pid}.pkl").read_bytes()) for pid in range(parties)]
    return [[PartyOutcome(o["result"], o["seconds"]) for o in party] for party in outcomes]


def run_parties(
    program: str, args_per_party: Sequence[dict[str, Any]], timeout: float = 120.0
) -> list[Blocks]:
    """Run one program once at every party; each party's ``{block: (modulus, shares)}``."""
    outcomes = run_calls([[(program, args)] for args in args_per_party], timeout)
    return [party[0].result for party in outcomes]


def open_blocks(results: Sequence[Blocks]) -> dict[str, list[int]]:
    """Play the receiver: recombine every party's shares of each block into signed ints."""
    opened = {}
    for name in results[0]:
        modulus = results[0][name][0]
        if any(r[name][0] != modulus for r in results):
            raise AssertionError(f"parties disagree on the modulus of block {name!r}")
        columns = [r[name][1] for r in results]
        if modulus == NODES_ONLY:  # opened to the parties: the same plain values at each
            if any(column != columns[0] for column in columns):
                raise AssertionError(f"parties disagree on the opened block {name!r}")
            opened[name] = list(columns[0])
            continue
        opened[name] = [
            signed(recombine_shares([(i + 1, v) for i, v in enumerate(shares)], modulus), modulus)
            for shares in zip(*columns)
        ]
    return opened
