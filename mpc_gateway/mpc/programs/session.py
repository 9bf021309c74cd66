"""One warm MPyC session inside a worker process: connect once, run many jobs.

The worker connects to its peers (mutual TLS with the consortium's party
certificates), checks that each peer's certificate belongs to the node expected
at that party index (MPyC's listener does not bind the index a peer claims to
its certificate), reports ``ready``, then runs jobs strictly one after another
in the order the node sends them; the node sends them in the gateway's global
sequence order, so every party issues the same MPyC operations in the same
order.

Failure policy: MPyC has no timeouts, and a lost peer leaves the others hanging
or crashing. Here any lost peer connection or failed job ends the worker
process at once; the node sees the end of the stream, fails the query and
starts a new session for the next one.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pkgutil
import threading
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import IO, Any

from mpyc import asyncoro
from mpyc.runtime import mpc

from mpc_gateway.mpc.wire import WorkerConfig, read_frame, write_frame
from mpc_gateway.pki import Identity, check_mpc_peer

__all__ = ["program", "serve"]

log = logging.getLogger("mpc_gateway.mpc")

_PACKAGE = "mpc_gateway.mpc.programs"


@cache
def program(name: str) -> Callable[..., Awaitable[Any]]:
    """The program ``module:function`` of this package (a computation names its program so).

    Only what a program module exports in its ``__all__`` can be run.
    """
    module_name, _, function = name.partition(":")
    if not module_name.isidentifier() or module_name in ("session", "common", "output"):
        raise ValueError(f"no MPC program {name!r}")
    module = importlib.import_module(f"{_PACKAGE}.{module_name}")
    if function not in getattr(module, "__all__", ()):
        raise ValueError(f"no MPC program {name!r}")
    found: Callable[..., Awaitable[Any]] = getattr(module, function)
    return found


def _die(stdout: IO[bytes], reason: str, code: int) -> None:
    try:
        write_frame(stdout, {"type": "fatal", "error": reason})
    finally:
        os._exit(code)


def _fail_fast_on_disconnect(stdout: IO[bytes]) -> None:
    def connection_lost(protocol: Any, exc: Exception | None) -> None:
        _die(stdout, f"lost the MPC connection to party {protocol.peer_pid}", 3)

    asyncoro.MessageExchanger.connection_lost = connection_lost


def _check_peers(config: WorkerConfig) -> None:
    for peer in mpc.parties:
        if peer.pid == mpc.pid:
            continue
        peercert = peer.protocol.transport.get_extra_info("peercert")
        check_mpc_peer(peercert, peer.pid, Identity.from_spiffe_id(config.identities[peer.pid]))


def _stdin_to_queue(
    stdin: IO[bytes], loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]
) -> None:
    def pump() -> None:
        while True:
            message = read_frame(stdin)
            if message is None:  # the node is gone: nobody is left to report to
                os._exit(0)
            loop.call_soon_threadsafe(queue.put_nowait, message)

    threading.Thread(target=pump, name="mpc-worker-stdin", daemon=True).start()


async def _run_jobs(stdout: IO[bytes], queue: asyncio.Queue[Any]) -> None:
    while True:
        message = await queue.get()
        if message.get("type") == "stop":
            os._exit(0)
        started = time.perf_counter()
        try:
            blocks = await program(message["program"])(**message["args"])
        except Exception as err:  # the session's state is unknown now: end it
            log.exception("job %s failed", message.get("id"))
            _die(stdout, f"MPC program failed: {type(err).__name__}: {err}", 2)
        elapsed = (time.perf_counter() - started) * 1000
        # plain ints only: the node must not need mpyc (or this module) to read the frame
        plain = {name: (b.modulus, b.values) for name, b in blocks.items()}
        write_frame(
            stdout, {"type": "result", "id": message["id"], "blocks": plain, "mpc_ms": elapsed}
        )


def _import_programs() -> None:
    """Load every program module before connecting, so no query pays for an import."""
    package = importlib.import_module(_PACKAGE)
    for found in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{_PACKAGE}.{found.name}")


async def _session(config: WorkerConfig, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    _fail_fast_on_disconnect(stdout)
    _import_programs()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    _stdin_to_queue(stdin, asyncio.get_running_loop(), queue)
    await mpc.start()
    try:
        _check_peers(config)
    except Exception as err:
        _die(stdout, f"peer certificate check failed: {getattr(err, 'public_message', err)}", 4)
    write_frame(stdout, {"type": "ready", "epoch": config.epoch})
    await _run_jobs(stdout, queue)


def serve(config: WorkerConfig, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Run the session until stdin closes, a ``stop`` arrives, or anything fails."""
    try:
        mpc.run(_session(config, stdin, stdout))
    except BaseException as err:  # noqa: BLE001 - the worker reports every end
        _die(stdout, f"MPC session ended: {type(err).__name__}: {err}", 5)
