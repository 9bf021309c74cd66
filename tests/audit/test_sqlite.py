"""What only the SQLite backend promises: durability, schema, and refusing a tampered store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mpc_gateway.audit.checkpoint import (
    append_signature,
    cosign,
    format_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
)
from mpc_gateway.audit.merkle import MerkleTree, leaf_hash
from mpc_gateway.audit.sqlite import SqliteAuditLog, load_raw
from mpc_gateway.errors import ConfigurationError, IntegrityError
from tests.audit.helpers import ORIGIN, StepClock, TamperedFile, fill, fixed_key, make_event


def reopen(path: Path, origin: str = ORIGIN) -> SqliteAuditLog:
    return SqliteAuditLog(path, origin=origin, signing_key=fixed_key(7), clock=StepClock())


def test_reopened_log_has_the_same_entries_root_and_heads(sqlite_log: SqliteAuditLog) -> None:
    fill(sqlite_log, 11, sign_every=5)
    entries, heads, root = sqlite_log.entries(), sqlite_log.tree_heads(), sqlite_log.root()
    sqlite_log.close()
    with reopen(sqlite_log.path) as again:
        assert (again.entries(), again.tree_heads(), again.root()) == (entries, heads, root)
        assert again.append(make_event(11)).index == 11


def test_cosignatures_a_head_gathered_are_on_disk_after_the_next_durable_write(
    sqlite_log: SqliteAuditLog,
) -> None:
    note = fill(sqlite_log, 2, sign_every=2)[0]
    line = cosign(parse_note(note)[0], 1, "witness.example/w", fixed_key(9))
    with sqlite_log.batch(durable=False):
        sqlite_log.add_cosignatures(note, append_signature(note, line))
    sqlite_log.append(make_event(2))
    assert load_raw(sqlite_log.path).tree_heads == [append_signature(note, line)]
    sqlite_log.close()
    with reopen(sqlite_log.path) as again:  # the stored heads still check
        assert again.tree_heads() == [append_signature(note, line)]


def test_an_append_is_on_disk_before_it_returns(sqlite_log: SqliteAuditLog) -> None:
    sqlite_log.append(make_event(0))
    note = sqlite_log.signed_tree_head()
    raw = load_raw(sqlite_log.path)  # a second, read-only connection
    assert raw.entries == [make_event(0).entry_bytes()]
    assert raw.tree_heads == [note]


def test_reading_a_missing_file_or_one_that_is_no_audit_log_is_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the audit log file .*missing"):
        load_raw(tmp_path / "missing.sqlite")
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(ConfigurationError, match="no such table: entries"):
        load_raw(other)


def test_store_uses_wal_full_sync_and_the_documented_schema(sqlite_log: SqliteAuditLog) -> None:
    assert sqlite_log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db = sqlite3.connect(sqlite_log.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = {
            table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            for table in ("entries", "tree_heads")
        }
    finally:
        db.close()
    assert columns == {
        "entries": ["idx", "leaf_hash", "data"],
        "tree_heads": ["size", "timestamp_ms", "note"],
    }


def test_stored_timestamp_is_the_signed_one(sqlite_log: SqliteAuditLog) -> None:
    note = fill(sqlite_log, 2, sign_every=2)[0]
    db = sqlite3.connect(sqlite_log.path)
    try:
        size, stamp = db.execute("SELECT size, timestamp_ms FROM tree_heads").fetchone()
    finally:
        db.close()
    head = verify_checkpoint(note, ORIGIN, sqlite_log.public_key)
    assert (size, stamp) == (head.size, head.timestamp_ms)


def test_reopening_refuses_an_entry_whose_bytes_no_longer_match(
    sqlite_log: SqliteAuditLog,
) -> None:
    fill(sqlite_log, 4)
    sqlite_log.close()
    db = sqlite3.connect(sqlite_log.path, isolation_level=None)
    db.execute("UPDATE entries SET data = ? WHERE idx = 2", (b'{"forged":true}',))
    db.close()
    with pytest.raises(IntegrityError, match="stored entry 2 does not match its leaf hash"):
        reopen(sqlite_log.path)


def test_reopening_refuses_entries_that_no_longer_match_a_signed_head(
    sqlite_log: SqliteAuditLog,
) -> None:
    fill(sqlite_log, 4)
    sqlite_log.close()
    TamperedFile(sqlite_log.path).replace_entry(3, make_event(99).entry_bytes())
    with pytest.raises(IntegrityError, match="tree head at size 4 does not match"):
        reopen(sqlite_log.path)


def test_reopening_checks_the_signature_of_the_largest_head_and_every_heads_root(
    sqlite_log: SqliteAuditLog,
) -> None:
    """An attacker without the key: a forged head past the signed ones is refused, and so
    are entries rewritten with every head re-made to match them; one check of a signature."""
    fill(sqlite_log, 4, sign_every=2)
    root = sqlite_log.root()
    sqlite_log.close()
    forger = fixed_key(8)
    forged = sign_checkpoint(format_checkpoint(ORIGIN, 4, root), ORIGIN, forger)
    db = sqlite3.connect(sqlite_log.path, isolation_level=None)
    db.execute("INSERT INTO tree_heads (size, timestamp_ms, note) VALUES (4, 9, ?)", (forged,))
    db.close()
    with pytest.raises(IntegrityError, match="key id"):
        reopen(sqlite_log.path)
    db = sqlite3.connect(sqlite_log.path, isolation_level=None)
    db.execute("DELETE FROM tree_heads")
    db.execute(
        "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = 0",
        (make_event(99).entry_bytes(), leaf_hash(make_event(99).entry_bytes())),
    )
    tree = MerkleTree(
        leaf_hash(bytes(d)) for (d,) in db.execute("SELECT data FROM entries ORDER BY idx")
    )
    for size in (2, 4):
        note = sign_checkpoint(format_checkpoint(ORIGIN, size, tree.root(size)), ORIGIN, forger)
        db.execute(
            "INSERT INTO tree_heads (size, timestamp_ms, note) VALUES (?, 9, ?)", (size, note)
        )
    db.close()
    with pytest.raises(IntegrityError, match="key id"):
        reopen(sqlite_log.path)


def test_reopening_refuses_a_gap_in_the_entries(sqlite_log: SqliteAuditLog) -> None:
    fill(sqlite_log, 4, sign_every=100)
    sqlite_log.close()
    TamperedFile(sqlite_log.path).delete_entry(1)
    with pytest.raises(IntegrityError, match="skips from entry 1 to 2"):
        reopen(sqlite_log.path)


def test_reopening_as_another_log_is_a_configuration_error(sqlite_log: SqliteAuditLog) -> None:
    fill(sqlite_log, 2)
    sqlite_log.close()
    with pytest.raises(ConfigurationError, match="belongs to log 'audit.example/mpc-gateway'"):
        reopen(sqlite_log.path, origin="other.example/log")
