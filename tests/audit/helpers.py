"""Shared builders for the audit tests: fixed keys, a stepping clock, events, SQLite tampering."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditEvent, AuditLog
from mpc_gateway.audit.merkle import leaf_hash

ORIGIN = "audit.example/mpc-gateway"
START_MS = 1_750_000_000_000


def fixed_key(seed_byte: int) -> Ed25519PrivateKey:
    """A deterministic Ed25519 key (Ed25519 signatures are deterministic too)."""
    return Ed25519PrivateKey.from_private_bytes(bytes([seed_byte]) * 32)


class StepClock:
    """Unix milliseconds that advance by ``step`` at every reading."""

    def __init__(self, start: int = START_MS, step: int = 1_000) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> int:
        current = self.now
        self.now += self.step
        return current


def make_event(number: int, **overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "kind": "query.submitted",
        "actor": f"analyst-{number % 3}",
        "query_id": f"q-{number}",
        "dataset": "loans",
        "decision": None,
        "timestamp_ms": START_MS + number,
        "details": {"n": number, "groups": ["region"], "flags": {"dp": True}},
    }
    fields.update(overrides)
    return AuditEvent.model_validate(fields)


def fill(log: AuditLog, count: int, *, sign_every: int = 1) -> list[str]:
    """Append ``count`` events, signing a head after every ``sign_every``; return the heads."""
    heads = []
    start = log.size()
    for number in range(start, start + count):
        log.append(make_event(number))
        if (number + 1) % sign_every == 0:
            heads.append(log.signed_tree_head())
    return heads


class TamperedFile:
    """Direct edits of an audit log's SQLite file, as an attacker with file access would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _run(self, sql: str, *params: object) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(sql, params)
        finally:
            db.close()

    def rows(self) -> dict[int, tuple[bytes, bytes]]:
        db = sqlite3.connect(self.path)
        try:
            return {
                i: (lh, d) for i, lh, d in db.execute("SELECT idx, leaf_hash, data FROM entries")
            }
        finally:
            db.close()

    def replace_entry(self, index: int, data: bytes) -> None:
        """New bytes with a recomputed leaf hash, so the row itself looks consistent."""
        self._run(
            "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = ?", data, leaf_hash(data), index
        )

    def delete_entry(self, index: int) -> None:
        self._run("DELETE FROM entries WHERE idx = ?", index)

    def swap_entries(self, first: int, second: int) -> None:
        rows = self.rows()
        self._run("DELETE FROM entries WHERE idx IN (?, ?)", first, second)
        for index, source in ((first, second), (second, first)):
            lh, data = rows[source]
            self._run("INSERT INTO entries VALUES (?, ?, ?)", index, lh, data)

    def truncate(self, keep: int) -> None:
        self._run("DELETE FROM entries WHERE idx >= ?", keep)

    def drop_heads_above(self, size: int) -> None:
        self._run("DELETE FROM tree_heads WHERE size > ?", size)

    def append_forged(self, data: bytes) -> int:
        index = max(self.rows()) + 1
        self._run("INSERT INTO entries VALUES (?, ?, ?)", index, leaf_hash(data), data)
        return index


def damage_wal_frame(wal: Path) -> None:
    """Flip one byte of the page in a write-ahead log's middle frame: its checksum fails, and
    SQLite, opening the file, silently drops that frame and every later one."""
    data = bytearray(wal.read_bytes())
    page_size = struct.unpack(">I", data[8:12])[0]
    frame = 24 + page_size
    frames = (len(data) - 32) // frame
    assert frames >= 4, frames
    offset = 32 + (frames // 2) * frame + 24 + page_size // 2
    data[offset] ^= 0xFF
    wal.write_bytes(bytes(data))
