"""How many queries each analyst ran each day: the input to ``dataset.daily_limit``.

:class:`UsageLedger` counts queries per analyst per UTC day, in memory or, with a
path, in a SQLite file that survives restarts. It is thread-safe; use
:meth:`UsageLedger.record_if_below` to check a limit and count a query in one
step, so two concurrent queries cannot both take the last slot. The clock is
injected, so tests are deterministic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType

__all__ = ["UsageLedger"]

Clock = Callable[[], datetime]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    analyst TEXT NOT NULL,
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (analyst, day)
)
"""


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

    def _increment(self, key: tuple[str, str]) -> int:
        if self._db is None:
            self._memory[key] = self._memory.get(key, 0) + 1
            return self._memory[key]
        self._db.execute(
            "INSERT INTO usage (analyst, day, count) VALUES (?, ?, 1) "
            "ON CONFLICT (analyst, day) DO UPDATE SET count = count + 1",
            key,
        )
        return self._get(key)

    def count(self, analyst: str, day: date | None = None) -> int:
        """Queries ``analyst`` ran on ``day`` (default: today, UTC)."""
        with self._lock:
            return self._get(self._key(analyst, day))

    def record(self, analyst: str, day: date | None = None) -> int:
        """Count one more query of ``analyst`` on ``day``; the new count."""
        with self._lock:
            return self._increment(self._key(analyst, day))

    def record_if_below(self, analyst: str, limit: int | None, day: date | None = None) -> bool:
        """Count one more query unless ``analyst`` already ran ``limit`` that day.

        ``None`` is no limit. Returns whether the query was counted.
        """
        with self._lock:
            key = self._key(analyst, day)
            if limit is not None and self._get(key) >= limit:
                return False
            self._increment(key)
            return True

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
