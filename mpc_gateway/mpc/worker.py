"""Entry point of the supervised MPC worker: ``python -m mpc_gateway.mpc.worker``.

The node starts one worker process per MPC session and talks to it over the
worker's stdin/stdout (see :mod:`mpc_gateway.mpc.wire`). The first frame is a
:class:`WorkerConfig`; the worker then builds MPyC's runtime for exactly that
party list. MPyC reads its options from ``sys.argv`` when imported, so the worker
sets ``sys.argv`` itself before the import: the node's own flags never reach it.
"""

from __future__ import annotations

import logging
import os
import sys

from mpc_gateway.lanes import SWITCH_INTERVAL_S, lower_priority
from mpc_gateway.mpc.wire import WorkerConfig, read_frame

__all__ = ["main"]


def main() -> None:
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by libraries goes to stderr, not into the frame stream
    config = read_frame(stdin)
    if not isinstance(config, WorkerConfig):
        raise SystemExit("mpc worker: first frame must be a WorkerConfig")
    logging.basicConfig(
        level=config.log_level,
        format=f"%(asctime)s mpc-worker[{config.pid} {config.lane}] %(levelname)s %(message)s",
    )
    unset = lower_priority(config.lane)  # a long job's worker yields the CPU to a short query's
    if unset is not None:
        logging.getLogger(__name__).warning("%s; the worker runs niced only", unset)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # its pipe reader hands each job to the event loop
    os.chdir(config.mpc_dir)
    sys.argv = config.mpyc_argv()
    from mpc_gateway.mpc.programs.session import serve

    serve(config, stdin, stdout)


if __name__ == "__main__":
    main()
