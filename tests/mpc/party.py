"""One MPyC party of a loopback test run: ``python -m tests.mpc.party JOB_FILE``.

The job file (a pickle the harness wrote) names this party's index, every
party's port, and the calls to run: ``[(\"module:function\", kwargs), ...]``.
The party sets ``sys.argv`` to MPyC's ``-P`` form (its own entry ``:port``,
plain TCP on loopback, no TLS) *before* importing mpyc, connects, runs the
calls one after another in one session, and pickles what each returned as plain
ints (``{block: (modulus, values)}``) with the seconds each took to
``job["out"]``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _mpyc_argv(pid: int, ports: list[int]) -> list[str]:
    argv = ["mpc-test-party", "--no-log"]
    for index, port in enumerate(ports):
        argv += ["-P", f":{port}" if index == pid else f"127.0.0.1:{port}"]
    return argv


def _plain(blocks: Any) -> Any:
    """``{name: ReceiverShares}`` as ``{name: (modulus, values)}``; anything else as is."""
    if isinstance(blocks, dict) and all(hasattr(b, "modulus") for b in blocks.values()):
        return {name: (b.modulus, list(b.values)) for name, b in blocks.items()}
    return blocks


async def _session(mpc: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    await mpc.start()
    outcomes = []
    for target, kwargs in calls:
        module, name = target.split(":")
        if "." not in module:  # a computation's short name, "score:entity_scores"
            module = f"mpc_gateway.mpc.programs.{module}"
        program = getattr(importlib.import_module(module), name)
        started = time.perf_counter()
        result = await program(**kwargs)
        outcomes.append({"result": _plain(result), "seconds": time.perf_counter() - started})
    await mpc.shutdown()
    return outcomes


def main(job_file: str) -> None:
    job = pickle.loads(Path(job_file).read_bytes())
    sys.argv = _mpyc_argv(job["pid"], job["ports"])
    from mpyc.runtime import mpc

    try:
        outcomes = mpc.run(_session(mpc, job["calls"]))
    except BaseException:  # exit at once: MPyC's open connections would keep the process alive
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    Path(job["out"]).write_bytes(pickle.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1])
