"""Several appends and a tree head written as one durable unit."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditLog
from mpc_gateway.audit.sqlite import SqliteAuditLog, load_raw
from tests.audit.helpers import ORIGIN, make_event


def test_batch_stores_entries_and_head_together(log: AuditLog) -> None:
    with log.batch():
        log.append(make_event(1))
        log.append(make_event(2))
        note = log.signed_tree_head()
    assert log.size() == 2
    assert log.tree_heads() == [note]


def test_failed_batch_stores_nothing_and_keeps_the_tree_consistent(
    db_path: Path, log_key: Ed25519PrivateKey, clock
) -> None:
    with SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock) as log:
        log.append(make_event(0))
        root = log.root()
        with pytest.raises(RuntimeError), log.batch():
            log.append(make_event(1))
            log.signed_tree_head()
            raise RuntimeError("crash between writes")
        assert log.size() == 1 and log.root() == root
        log.append(make_event(2))  # the log goes on from where the store is
    raw = load_raw(db_path)
    assert len(raw.entries) == 2 and raw.tree_heads == []


def test_a_batch_inside_a_batch_is_part_of_the_outer_one(
    db_path: Path, log_key: Ed25519PrivateKey, clock
) -> None:
    """The inner batch's end leaves the outer transaction open: a later failure undoes all."""
    with SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock) as log:
        with pytest.raises(RuntimeError), log.batch():
            with log.batch():
                log.append(make_event(1))
            log.append(make_event(2))  # still inside the outer batch
            raise RuntimeError("crash after the inner batch")
        assert log.size() == 0
    assert load_raw(db_path).entries == []


def _commits(log: SqliteAuditLog) -> list[str]:
    """The sync mode each COMMIT on ``log``'s connection ran under, from here on."""
    modes: list[str] = []
    mode = ["FULL"]

    def trace(statement: str) -> None:
        if statement.startswith("PRAGMA synchronous="):
            mode[0] = statement.split("=", 1)[1]
        elif statement == "COMMIT":
            modes.append(mode[0])

    log._db.set_trace_callback(trace)
    return modes


def test_a_batch_that_need_not_be_durable_commits_unsynced_and_the_next_one_syncs(
    db_path: Path, log_key: Ed25519PrivateKey, clock
) -> None:
    """Stored at once (a second connection reads it), synced by the next durable commit."""
    with SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock) as log:
        commits = _commits(log)
        with log.batch(durable=False):
            log.append(make_event(0))
            lazy = log.signed_tree_head()
        assert load_raw(db_path).tree_heads == [lazy]
        assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
        with log.batch():
            log.append(make_event(1))
            log.signed_tree_head()
        log.append(make_event(2))
        assert commits == ["NORMAL", "FULL", "FULL"]
    assert len(load_raw(db_path).entries) == 3


def test_a_lazy_batch_inside_a_durable_one_is_synced_with_it(
    db_path: Path, log_key: Ed25519PrivateKey, clock
) -> None:
    with SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock) as log:
        commits = _commits(log)
        with log.batch():
            with log.batch(durable=False):
                log.append(make_event(0))
            log.signed_tree_head()
        assert commits == ["FULL"]


def test_a_failed_lazy_batch_stores_nothing_and_later_commits_are_synced(
    db_path: Path, log_key: Ed25519PrivateKey, clock
) -> None:
    with SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock) as log:
        commits = _commits(log)
        with pytest.raises(RuntimeError), log.batch(durable=False):
            log.append(make_event(0))
            raise RuntimeError("crash inside the batch")
        log.append(make_event(1))
        assert log.size() == 1 and commits == ["FULL"]
