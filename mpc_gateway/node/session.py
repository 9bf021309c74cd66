"""Supervision of a node's MPC worker process and the order of its MPC jobs.

:class:`WorkerProcess` is one running MPC session (a child process running
:mod:`mpc_gateway.mpc.worker`); every wait on it has a deadline, and killing it
is always safe. :class:`SessionSequencer` keeps one warm session per epoch and
runs jobs strictly in the gateway's sequence order: MPyC matches messages by
program counter, so every node must issue the same jobs in the same order.
Any failure breaks the epoch's session at this node; the gateway then aborts
the epoch everywhere and the next query starts a fresh session.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from mpc_gateway.errors import DeadlineExceededError, GatewayError, ProtocolAbortedError
from mpc_gateway.mpc.wire import WorkerConfig, read_frame, write_frame

__all__ = ["WorkerProcess", "SessionSequencer"]

log = logging.getLogger(__name__)

_ABORTED_AHEAD = 8  # aborts remembered for epochs a node has not entered


class WorkerProcess:
    """One MPC session: a worker process connected to its peers."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.ready = False
        self._ready_lock = threading.Lock()
        self._messages: queue.Queue[Any] = queue.Queue()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mpc_gateway.mpc.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        write_frame(self._proc.stdin, config)
        self._pump_thread = threading.Thread(target=self._pump, name="mpc-worker-out", daemon=True)
        self._pump_thread.start()
        self._job_ids = iter(range(1 << 62))

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        try:
            while (message := read_frame(self._proc.stdout)) is not None:
                self._messages.put(message)
        except Exception:
            log.exception("unreadable message from the MPC worker")
            if self._proc.poll() is None:
                self._proc.kill()
        finally:
            self._messages.put(None)

    def _next(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        try:
            message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise DeadlineExceededError(
                f"MPC session: {waiting_for} did not finish in time"
            ) from None
        if message is None:
            self._messages.put(None)  # the end is permanent: every later waiter sees it too
            raise ProtocolAbortedError("MPC session ended unexpectedly")
        if message["type"] == "fatal":
            raise ProtocolAbortedError(f"MPC session failed: {message['error']}")
        return dict(message)

    def wait_ready(self, deadline: float) -> None:
        with self._ready_lock:  # a warm-up and the first job may wait together
            if not self.ready:
                self._next(deadline, "connecting to every other node")
                self.ready = True

    def run(
        self, program: str, args: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any], float]:
        self.wait_ready(deadline)
        job_id = next(self._job_ids)
        assert self._proc.stdin is not None
        try:
            write_frame(
                self._proc.stdin, {"type": "job", "id": job_id, "program": program, "args": args}
            )
        except (BrokenPipeError, OSError) as err:
            raise ProtocolAbortedError("MPC session ended unexpectedly") from err
        result = self._next(deadline, "the MPC step")
        if result.get("id") != job_id:
            raise ProtocolAbortedError("MPC session answered out of order")
        return result["blocks"], float(result["mpc_ms"])

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if threading.current_thread() is not self._pump_thread:
            self._pump_thread.join(timeout=2)  # it ends at the closed pipe's end of stream
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass  # a broken pipe to a dead worker: nothing left to flush


class SessionSequencer:
    """Runs each epoch's MPC jobs in sequence order over one warm session."""

    def __init__(self, spawn: Callable[[int, Any], WorkerProcess]) -> None:
        self._spawn = spawn
        self._cond = threading.Condition()
        self._epoch = -1
        self._parties: Any = None
        self._next = 0
        self._broken: str | None = None
        self._worker: WorkerProcess | None = None
        self._aborted_ahead: dict[int, str] = {}  # aborts for epochs not entered yet

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _enter(self, epoch: int, parties: Any) -> None:
        if epoch < self._epoch:
            raise ProtocolAbortedError(f"MPC session epoch {epoch} was superseded by {self._epoch}")
        if epoch in self._aborted_ahead:
            raise ProtocolAbortedError(f"MPC session was torn down: {self._aborted_ahead[epoch]}")
        if epoch > self._epoch:
            self._drop_worker()
            self._epoch, self._parties, self._next, self._broken = epoch, parties, 0, None
            self._aborted_ahead = {e: r for e, r in self._aborted_ahead.items() if e > epoch}
            self._cond.notify_all()
        elif self._broken is not None:
            raise ProtocolAbortedError(f"MPC session was torn down: {self._broken}")
        elif parties != self._parties:
            raise ProtocolAbortedError("order names other parties than its session")

    def _break(self, epoch: int, reason: str) -> None:
        if epoch == self._epoch and self._broken is None:
            self._broken = reason
            self._drop_worker()
            self._cond.notify_all()

    def _await_turn(
        self, epoch: int, sequence: int, deadline: float, spawn: bool = True
    ) -> WorkerProcess | None:
        if sequence < self._next:
            raise ProtocolAbortedError(
                f"sequence number {sequence} was already used in this session"
            )
        while self._epoch == epoch and self._broken is None and self._next != sequence:
            if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                self._break(epoch, f"queries before sequence number {sequence} never arrived")
        if self._epoch != epoch:
            raise ProtocolAbortedError(f"MPC session epoch {epoch} was superseded")
        if self._broken is not None:
            raise ProtocolAbortedError(f"MPC session was torn down: {self._broken}")
        if self._worker is None and spawn:
            self._worker = self._spawn(epoch, self._parties)
        return self._worker

    def run(
        self,
        epoch: int,
        sequence: int,
        parties: Any,
        program: str,
        args: dict[str, Any],
        deadline: float,
        turns: int = 1,
    ) -> tuple[dict[str, Any], float]:
        """Run one job at its place in the global order; raises on any failure.

        A batch of ``turns`` consecutive orders (from ``sequence`` on) runs as one job.
        """
        with self._cond:
            self._enter(epoch, parties)
            worker = self._await_turn(epoch, sequence, deadline)
            assert worker is not None  # spawned on its turn
        try:
            result = worker.run(program, args, deadline)
        except GatewayError as err:
            with self._cond:
                reason = (
                    self._broken if self._broken and self._epoch == epoch else err.public_message
                )
                self._break(epoch, reason)
            raise type(err)(reason) from err
        with self._cond:
            if self._epoch == epoch:
                self._next += turns
                self._cond.notify_all()
        return result

    def skip(
        self, epoch: int, sequence: int, parties: Any, deadline: float, turns: int = 1
    ) -> bool:
        """Pass over the turn of an order this node refused before joining its MPC step.

        Every node checks every order identically, so all of them refuse it and the
        session goes on with the next sequence number, not torn down by one bad
        query. Waits for the turn like a job would; False if the session ended first.
        """
        with self._cond:
            try:
                self._enter(epoch, parties)
                self._await_turn(epoch, sequence, deadline, spawn=False)
            except GatewayError:
                return False
            self._next += turns
            self._cond.notify_all()
            return True

    def open(self, epoch: int, parties: Any, deadline: float) -> None:
        """Connect the session of ``epoch`` now, so its first job does not wait for it."""
        with self._cond:
            self._enter(epoch, parties)
            if self._broken is not None:
                raise ProtocolAbortedError(f"MPC session was torn down: {self._broken}")
            if self._worker is None:
                self._worker = self._spawn(epoch, self._parties)
            worker = self._worker
        try:
            worker.wait_ready(deadline)
        except GatewayError as err:
            with self._cond:
                self._break(epoch, err.public_message)
            raise

    def abort(self, epoch: int, reason: str) -> bool:
        """Tear down the session of ``epoch``; False (nothing changes) for any other epoch.

        Only the current session can be torn down: an older one is gone already, and
        an abort for an epoch this node has not entered names no session. It is
        remembered (a few at most) so that an order of that epoch arriving after
        its abort is refused, but it moves nothing: an abort for epoch 2**63 - 1
        must not make every real epoch look superseded.
        """
        with self._cond:
            if epoch > self._epoch:
                self._aborted_ahead[epoch] = reason
                while len(self._aborted_ahead) > _ABORTED_AHEAD:
                    del self._aborted_ahead[min(self._aborted_ahead)]
                return False
            if epoch < self._epoch:
                return False
            self._break(epoch, reason)
            return True

    def close(self) -> None:
        with self._cond:
            self._broken = self._broken or "node is shutting down"
            self._drop_worker()
            self._cond.notify_all()
