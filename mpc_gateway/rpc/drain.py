"""Draining a server before it stops: refuse new work, let the work under way finish.

A :class:`Gate` counts the work in progress. The server's interceptor lets a
call in through :meth:`Gate.admit`, which refuses (:class:`ShuttingDownError`,
UNAVAILABLE) once the gate is closed; work that must finish whatever happens
(a query an approval started) counts itself with :meth:`Gate.hold` or
:meth:`Gate.holding`. On SIGTERM
the server closes the gate and waits with :meth:`Gate.wait_idle` for what is
under way, up to its grace period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mpc_gateway.errors import ShuttingDownError

__all__ = ["Gate"]


class Gate:
    """Work in progress on a server that may start draining; thread-safe."""

    def __init__(self, what: str, always: tuple[str, ...] = ()) -> None:
        self.what = what  # "the gateway", "node bank-a": who is shutting down
        self.always = always  # methods admitted even while draining (they end work, not start it)
        self._changed = threading.Condition()
        self._busy = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    @property
    def busy(self) -> int:
        with self._changed:
            return self._busy

    def close(self) -> None:
        """Refuse every new call from now on."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @contextmanager
    def admit(
        self, method: str = "", refused: Callable[[ShuttingDownError], None] | None = None
    ) -> Iterator[None]:
        """Run a new call, unless the gate is closed (ShuttingDownError, UNAVAILABLE).

        ``refused`` hears of a refusal before it is raised (the server records it).
        """
        with self._changed:
            refusal = None
            if self._closed and method not in self.always:
                refusal = ShuttingDownError(
                    f"{self.what} is shutting down: try again after it restarts"
                )
            else:
                self._busy += 1
        if refusal is not None:
            if refused is not None:
                refused(refusal)
            raise refusal
        try:
            yield
        finally:
            self._done()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Count work that was already accepted, even while draining."""
        self._enter()
        try:
            yield
        finally:
            self._done()

    def holding(self, work: Callable[[], None]) -> Callable[[], None]:
        """``work``, counted from now (before a thread runs it) until it returns."""
        self._enter()

        def counted() -> None:
            try:
                work()
            finally:
                self._done()

        return counted

    def _enter(self) -> None:
        with self._changed:
            self._busy += 1

    def _done(self) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until no work is in progress; True if none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._busy == 0, timeout=max(timeout_s, 0.0))
