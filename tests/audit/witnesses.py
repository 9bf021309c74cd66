"""A consortium's logs without processes: the gateway's and each node's, written as they do."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.audit.log import AuditEvent, AuditLog
from mpc_gateway.audit.sqlite import SqliteAuditLog
from mpc_gateway.auditor import AuditOutcome, LogCopy, verify_consortium
from mpc_gateway.pki import Identity
from tests.audit.helpers import START_MS, StepClock, fixed_key

TRUST_DOMAIN = "audit.example"
NODES = ("bank-a", "bank-b", "broker-c")
EPOCH = 1_750_000_000_000


def event(kind: str, actor: str, query_id: str | None, **details: Any) -> AuditEvent:
    return AuditEvent(
        kind=kind,
        actor=actor,
        query_id=query_id,
        dataset="loans",
        decision=None,
        timestamp_ms=START_MS,
        details=details,
    )


def plan_of(query_id: str) -> str:
    return f"plan-of-{query_id}"


def order(
    query_id: str, sequence: int, epoch: int = EPOCH, lane: str | None = "short"
) -> dict[str, Any]:
    """An order's fields as the logs name it; ``lane`` None: as written before lanes."""
    named = {"plan_hash": plan_of(query_id), "epoch": epoch, "sequence": sequence}
    return named if lane is None else {**named, "lane": lane}


class Consortium:
    """The gateway's and three nodes' logs in SQLite files under ``root``, signed as they go."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.owners = {"gateway": Identity("gateway", "gateway", TRUST_DOMAIN)}
        self.owners |= {name: Identity("node", name, TRUST_DOMAIN) for name in NODES}
        self.keys = {name: fixed_key(10 + i) for i, name in enumerate(self.owners)}
        self.logs: dict[str, AuditLog] = {name: self._open(name) for name in self.owners}
        self.sequence = 0

    def path(self, name: str) -> Path:
        return self.root / f"{name}.sqlite"

    def _open(self, name: str) -> SqliteAuditLog:
        owner = self.owners[name]
        origin = log_origin(TRUST_DOMAIN, owner.role, owner.name)
        return SqliteAuditLog(
            self.path(name), origin=origin, signing_key=self.keys[name], clock=StepClock()
        )

    def write(self, name: str, *events: AuditEvent) -> str:
        """Append ``events`` to ``name``'s log and sign a head over them; return the head."""
        for item in events:
            self.logs[name].append(item)
        return self.logs[name].signed_tree_head()

    def query(
        self,
        query_id: str,
        *,
        failing: Iterable[str] = (),
        outcome: str = "result.released",
        witnessed: bool = False,
    ) -> dict[str, Any]:
        """One query run to its end, every log written in the order things happen.

        ``witnessed``: every node then cosigns the gateway's head covering the release,
        as a node does before it hands over its sealed shares.
        """
        sequence, failing = self.sequence, set(failing)
        self.sequence += 1
        head = self.write(
            "gateway",
            event("query.submitted", "analyst/alice", query_id, plan_hash=plan_of(query_id)),
        )
        for name in NODES:
            fields = order(query_id, sequence)
            self.write(
                name,
                event(
                    "order.received", "gateway/gateway", query_id, **fields, gateway_checkpoint=head
                ),
            )
            kind = "order.failed" if name in failing else "order.completed"
            self.write(name, event(kind, "gateway/gateway", query_id, **fields))
        released = self.close_query(query_id, sequence, outcome)
        if witnessed:
            size = self.logs["gateway"].size()
            for name in NODES:
                self.write(
                    name,
                    event(
                        "result.released",
                        "analyst/alice",
                        query_id,
                        plan_hash=plan_of(query_id),
                        gateway_checkpoint=released,
                        gateway_log_size=size,
                    ),
                )
        return order(query_id, sequence)

    def close_query(self, query_id: str, sequence: int, outcome: str) -> str:
        """The gateway's dispatch and outcome entries; returns the head signed over them."""
        dispatch = event(
            "query.dispatched",
            "analyst/alice",
            query_id,
            **order(query_id, sequence),
            nodes=list(NODES),
        )
        return self.write(
            "gateway",
            dispatch,
            event(outcome, "analyst/alice", query_id, plan_hash=plan_of(query_id)),
        )

    def close(self) -> None:
        for log in self.logs.values():
            log.close()

    def rewrite(self, name: str, edit: Callable[[list[bytes]], list[bytes]]) -> None:
        """Rebuild ``name``'s log from ``edit(entries)``, every head signed anew with its key.

        What the holder of a log's key can do: the result is a valid log of its own.
        """
        self.logs[name].close()
        entries = edit(LogCopy.from_file(self.owners[name], self.path(name)).entries)
        for suffix in ("", "-wal", "-shm"):
            self.path(name).with_name(self.path(name).name + suffix).unlink(missing_ok=True)
        self.logs[name] = self._open(name)
        for data in entries:
            self.write(name, AuditEvent.from_entry(data))

    def copy(self, name: str, target: Path | None = None) -> LogCopy:
        """``name``'s log as an auditor receives it (from ``target``, a file, if given)."""
        return LogCopy.from_file(self.owners[name], target or self.path(name))

    def verify(
        self,
        last_seen: dict[str, str] | None = None,
        *,
        nodes: Iterable[str] = NODES,
        files: dict[str, Path] | None = None,
    ) -> AuditOutcome:
        files = files or {}
        given = {
            name: (self.copy(name, files.get(name)), self.keys[name].public_key()) for name in nodes
        }
        gateway = self.copy("gateway", files.get("gateway"))
        return verify_consortium(gateway, self.keys["gateway"].public_key(), given, last_seen)


def snapshot(source: Path, target: Path) -> Path:
    """A consistent copy of a SQLite log file, live or not (its WAL included), as a backup takes."""
    for suffix in ("", "-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def erase_tail(path: Path, keep: int) -> None:
    """Delete every entry from ``keep`` on and every tree head above it: no key needed."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DELETE FROM entries WHERE idx >= ?", (keep,))
        db.execute("DELETE FROM tree_heads WHERE size > ?", (keep,))


def entry_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
