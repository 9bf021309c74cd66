"""The audit log stored in one SQLite file (stdlib ``sqlite3``).

Schema::

    entries(
        idx       INTEGER PRIMARY KEY,  -- leaf index, 0, 1, 2, ... without gaps
        leaf_hash BLOB NOT NULL,        -- SHA-256(0x00 || data), RFC 9162
        data      BLOB NOT NULL         -- canonical JSON of the event, exactly as hashed
    )
    tree_heads(
        size         INTEGER NOT NULL,  -- tree size the head commits to
        timestamp_ms INTEGER NOT NULL,  -- signing time (also signed, in the note's time-ms line)
        note         TEXT NOT NULL      -- the C2SP checkpoint note, as signed
    )                                   -- rowid order = signing order

Durability: WAL journal with ``synchronous=FULL`` and one transaction per
append or signed head, so an entry is on disk before ``append`` returns and a
crash loses nothing acknowledged. One connection, used under the log's lock,
serves every thread.

The file is not trusted: whoever can write it can rewrite history. Tampering
is caught by re-hashing on open and, above all, by auditors running
:func:`mpc_gateway.audit.verify.verify_log` on :func:`load_raw` output against
tree heads they (or the nodes) kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditLog, Clock
from mpc_gateway.errors import ConfigurationError, StorageUnavailableError

__all__ = ["RawLog", "SqliteAuditLog", "load_raw"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tree_heads (
    size INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tree_heads_size ON tree_heads (size);
"""


class RawLog(NamedTuple):
    """A log store's contents as an auditor receives them: nothing checked yet."""

    entries: list[bytes]
    tree_heads: list[str]


class SqliteAuditLog(AuditLog):
    """:class:`~mpc_gateway.audit.log.AuditLog` in a SQLite file (created if missing).

    A file SQLite cannot read (damaged, or no database) is a :class:`ConfigurationError`
    saying so, as is one whose entries no longer match their hashes or signed heads.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        clock: Clock,
        key_name: str | None = None,
    ) -> None:
        self._path = Path(path)
        self._in_batch = False
        try:
            self._db = _connect(self._path)
        except sqlite3.Error as err:
            raise _unreadable(self._path, err) from err
        try:
            super().__init__(origin=origin, signing_key=signing_key, clock=clock, key_name=key_name)
        except sqlite3.Error as err:  # reading the entries or heads back hit a damaged page
            self._db.close()
            raise _unreadable(self._path, err) from err
        except BaseException:
            self._db.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _probe_write(self) -> None:
        # a page's worth written and deleted in one committed transaction: the WAL must grow
        with self._transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS storage_probe (pad BLOB)")
            self._db.execute("INSERT INTO storage_probe VALUES (zeroblob(65536))")
            self._db.execute("DELETE FROM storage_probe")

    def _stored_entries(self) -> Iterable[tuple[int, bytes, bytes]]:
        rows = self._db.execute("SELECT idx, leaf_hash, data FROM entries ORDER BY idx")
        return ((idx, _blob(leaf), _blob(data)) for idx, leaf, data in rows)

    def _write_entry(self, index: int, leaf: bytes, data: bytes) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO entries (idx, leaf_hash, data) VALUES (?, ?, ?)", (index, leaf, data)
            )

    def _read_entries(self, start: int, end: int) -> list[bytes]:
        rows = self._db.execute(
            "SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        return [_blob(row[0]) for row in rows]

    def _write_tree_head(self, size: int, timestamp_ms: int, note: str) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO tree_heads (size, timestamp_ms, note) VALUES (?, ?, ?)",
                (size, timestamp_ms, note),
            )

    def _replace_tree_head(self, size: int, stored: str, note: str) -> bool:
        with self._transaction():
            changed = self._db.execute(
                "UPDATE tree_heads SET note = ? WHERE size = ? AND note = ?", (note, size, stored)
            ).rowcount
        return changed > 0

    def _read_tree_heads(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT note FROM tree_heads ORDER BY rowid")]

    @contextmanager
    def _store_batch(self, durable: bool = True) -> Iterator[None]:
        # committed unsynced, it is in the write-ahead log, which the next synced commit syncs
        lazy = not durable and not self._in_batch  # inside a batch: the outer one's commit
        if lazy:
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._transaction():  # a batch inside a batch is part of the outer one
                outer, self._in_batch = self._in_batch, True
                try:
                    yield
                finally:
                    self._in_batch = outer
        finally:
            if lazy:
                self._db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._in_batch:  # part of an enclosing batch's transaction
            yield
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # e.g. COMMIT failed: leave no open transaction
                    self._db.execute("ROLLBACK")
                raise
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as err:
            problem = f"{_owner(self.origin)} audit log cannot be written: {_cause(err)}"
            self._storage_state(problem)
            raise StorageUnavailableError(problem) from err
        self._storage_state(None)


def _owner(origin: str) -> str:
    """Whose log an origin (``<trust domain>/<role>/<name>/audit``) is, for a message."""
    parts = origin.split("/")
    return f"the {parts[1]} {parts[2]}'s" if len(parts) == 4 else f"the {origin}"


def _cause(err: BaseException) -> str:
    """A failed write in words: what an operator must fix."""
    text = str(err).lower()
    if "full" in text or getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return "disk full"
    if "readonly" in text or "read-only" in text:
        return "the file or its disk is read-only"
    if "i/o" in text:
        return "disk I/O error"
    return f"storage error ({type(err).__name__})"


def _blob(value: object) -> bytes:
    """Stored bytes as bytes, even if someone rewrote a BLOB as TEXT (the hashes will tell)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are ours (BEGIN/COMMIT), never implicit.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigurationError(f"audit log {path} cannot use a WAL journal (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def load_raw(path: str | PathLike[str]) -> RawLog:
    """Read a log file's entries (in index order) and tree heads, read-only, unchecked.

    A missing file, or one that is not an audit log, is a :class:`ConfigurationError`.
    """
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            entries = [_blob(r[0]) for r in db.execute("SELECT data FROM entries ORDER BY idx")]
            heads = [r[0] for r in db.execute("SELECT note FROM tree_heads ORDER BY rowid")]
        finally:
            db.close()
    except sqlite3.Error as err:
        raise _unreadable(Path(path), err) from err
    return RawLog(entries, heads)


def _unreadable(path: Path, err: sqlite3.Error) -> ConfigurationError:
    """A log file SQLite cannot read, in words: a damaged one says what to do."""
    text = str(err)
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return ConfigurationError(
            f"the audit log file {path} is damaged ({text}): restore it from a backup, and "
            "have an auditor check the copy against the nodes' witness logs (mpcgw audit verify)"
        )
    return ConfigurationError(f"cannot read the audit log file {path}: {text}")
