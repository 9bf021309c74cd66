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
