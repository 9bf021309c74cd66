"""How many queries each analyst ran each day: the input to ``dataset.daily_limit``.

:class:`UsageLedger` counts MPC steps per analyst per UTC day (a query is one
step; a quantile search one per round), in memory or, with a path, in a SQLite
file that survives restarts. It is thread-safe; use
:meth:`UsageLedger.record_if_below` to check a limit and count in one step, so
two concurrent queries cannot both take the last slot, and
:meth:`UsageLedger.release` to give back what a query that released nothing
took (a refused or failed order counts nowhere). The clock is injected, so tests
are deterministic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType

__all__ = ["UsageLedger", "usage_key"]

Clock = Callable[[], datetime]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    analyst TEXT NOT NULL,
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (analyst, day)
)
"""


def usage_key(dataset: str, analyst: str) -> str:
    """What daily limits count under: an analyst's steps on one dataset."""
    return f"{dataset}:{analyst}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UsageLedger:
    """Per-analyst, per-day query counts; in memory, or persisted in SQLite at ``path``."""

    def __init__(self, path: Path | None = None, *, clock: Clock = _utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], int] = {}
        self._db: sqlite3.Connection | None = None
        self._persistent = path is not None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # every commit synced, unless told
            self._db.execute(_SCHEMA)

    def today(self) -> date:
        """The current UTC day by the injected clock."""
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the ledger's clock must return timezone-aware datetimes")
        return now.astimezone(UTC).date()

    def _key(self, analyst: str, day: date | None) -> tuple[str, str]:
        if self._persistent and self._db is None:
            raise RuntimeError("the usage ledger is closed")
        return analyst, (day or self.today()).isoformat()

    def _get(self, key: tuple[str, str]) -> int:
        if self._db is None:
            return self._memory.get(key, 0)
        row = self._db.execute(
            "SELECT count FROM usage WHERE analyst = ? AND day = ?", key
        ).fetchone()
        return int(row[0]) if row else 0

    def _increment(self, key: tuple[str, str], by: int = 1, *, durable: bool = True) -> int:
        if self._db is None:
            self._memory[key] = max(self._memory.get(key, 0) + by, 0)
            return self._memory[key]
        if not durable:  # written, not yet synced: a later commit to the file syncs it
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute(
                "INSERT INTO usage (analyst, day, count) VALUES (?, ?, max(?, 0)) "
                "ON CONFLICT (analyst, day) DO UPDATE SET count = max(count + ?, 0)",
                (*key, by, by),
            )
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")
        return self._get(key)

    def count(self, analyst: str, day: date | None = None) -> int:
        """Queries ``analyst`` ran on ``day`` (default: today, UTC)."""
        with self._lock:
            return self._get(self._key(analyst, day))

    def record(self, analyst: str, day: date | None = None) -> int:
        """Count one more query of ``analyst`` on ``day``; the new count."""
        with self._lock:
            return self._increment(self._key(analyst, day))

    def record_if_below(
        self,
        analyst: str,
        limit: int | None,
        day: date | None = None,
        count: int = 1,
        *,
        durable: bool = True,
    ) -> bool:
        """Count ``count`` more unless that would take ``analyst`` past ``limit`` that day.

        ``None`` is no limit. Returns whether they were counted. ``durable=False``
        saves the fsync when the caller commits to the same file next (the privacy
        ledger's charge, synced with ``synchronous=FULL``): one sync of the
        write-ahead log makes both durable, since it holds this write too.
        """
        with self._lock:
            key = self._key(analyst, day)
            if limit is not None and self._get(key) + count > limit:
                return False
            self._increment(key, count, durable=durable)
            return True

    def release(self, analyst: str, count: int = 1, day: date | None = None) -> None:
        """Give back ``count`` that were counted for something that released nothing."""
        with self._lock:
            self._increment(self._key(analyst, day), -count)

    def forget(self, prefix: str, before: date) -> None:
        """Drop the counts of keys starting with ``prefix`` on days before ``before``."""
        with self._lock:
            cutoff = before.isoformat()
            if self._db is None:
                for key in [k for k in self._memory if k[0].startswith(prefix) and k[1] < cutoff]:
                    del self._memory[key]
                return
            self._db.execute(
                "DELETE FROM usage WHERE substr(analyst, 1, ?) = ? AND day < ?",
                (len(prefix), prefix, cutoff),
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
