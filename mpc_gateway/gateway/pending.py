"""What the gateway must remember across a restart: waiting queries, outcomes, open submissions.

One SQLite file (``queries_db``, by default ``queries.sqlite`` beside the audit
log). It is a file of its own, not a table in ``usage_db``: the usage file is the
budget ledgers' (it may be absent, in memory, in tests and tools), and what is
kept here is a different thing with its own lifetime: the analyst's request and
the approvals given so far, which an operator may need to inspect or purge
without touching anyone's budget.

Schema::

    queries(
        query_id     TEXT PRIMARY KEY,
        caller       TEXT NOT NULL,   -- the analyst, role/name
        state        TEXT NOT NULL,   -- waiting, running, released, failed, rejected, abandoned
        plan_hash    TEXT,
        request      TEXT,            -- the request as JSON (queries that needed approval)
        certificate  TEXT NOT NULL,   -- SHA-256 of the analyst's client certificate
        receiver     TEXT NOT NULL,   -- the analyst's key-agreement certificate (PEM)
        approvals    TEXT NOT NULL,   -- the signed decisions given so far, JSON
        submitted_ms INTEGER NOT NULL,
        reason       TEXT NOT NULL,   -- why it ended, for the status call
        ended_ms     INTEGER
    )
    decisions(signature_sha256 TEXT PRIMARY KEY, query_id TEXT NOT NULL)
    log_scan(id = 1, size INTEGER, open TEXT)  -- audit entries read so far, and the open ones

The audit log stays the authority on what happened; this file only lets a
restart find quickly what the log left open (:mod:`mpc_gateway.gateway.recovery`)
and carry on with it. Writes are durable before they return (WAL,
``synchronous=FULL``), as the audit log's are.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from mpc_gateway.computations import Request, computation
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.pki import Identity
from mpc_gateway.policy import SignedApproval

__all__ = ["EndedQuery", "OpenQuery", "QueryStore", "StoredQuery"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    query_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    state TEXT NOT NULL,
    plan_hash TEXT,
    request TEXT,
    certificate TEXT NOT NULL DEFAULT '',
    receiver TEXT NOT NULL DEFAULT '',
    approvals TEXT NOT NULL DEFAULT '[]',
    submitted_ms INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    ended_ms INTEGER
);
CREATE INDEX IF NOT EXISTS queries_by_end ON queries (ended_ms);
CREATE TABLE IF NOT EXISTS decisions (
    signature_sha256 TEXT PRIMARY KEY,
    query_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log_scan (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    open TEXT NOT NULL
);
"""

_APPROVALS = TypeAdapter(list[SignedApproval])


@dataclass(frozen=True)
class OpenQuery:
    """A query the audit log opened (pending or submitted) and has not closed yet."""

    query_id: str
    actor: str
    dataset: str | None
    plan_hash: str | None
    opened_by: str  # the kind of the entry that opened it

    def as_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "actor": self.actor,
            "dataset": self.dataset,
            "plan_hash": self.plan_hash,
            "opened_by": self.opened_by,
        }


@dataclass(frozen=True)
class StoredQuery:
    """A query kept while it waited for approval, as it was stored."""

    query_id: str
    caller: Identity
    request: Request
    certificate: str
    plan_hash: str
    approvals: tuple[SignedApproval, ...]
    submitted_ms: int
    receiver: str = ""


@dataclass(frozen=True)
class EndedQuery:
    """How a query ended, as a status call reports it after the query left memory."""

    query_id: str
    caller: str
    state: str
    plan_hash: str
    reason: str


def _request(text: str) -> Request:
    data = json.loads(text)
    request: Request = computation(data["kind"]).request_type.model_validate(data)
    return request


def _signature_sha256(signed: SignedApproval) -> str:
    return hashlib.sha256(signed.signature).hexdigest()


class QueryStore:
    """The durable side of the gateway's queries; thread-safe."""

    def __init__(self, path: Path, trust_domain: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._trust_domain = trust_domain
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # --- queries waiting for approval -------------------------------------------------

    def keep_waiting(
        self,
        query_id: str,
        caller: Identity,
        request: Request,
        certificate: str,
        plan_hash: str,
        submitted_ms: int,
        receiver: str = "",
    ) -> None:
        """Store a query before the audit log says it waits (so a restart can resume it)."""
        self._write(
            "INSERT OR IGNORE INTO queries (query_id, caller, state, plan_hash, request, "
            "certificate, submitted_ms, receiver) VALUES (?, ?, 'waiting', ?, ?, ?, ?, ?)",
            (
                query_id,
                str(caller),
                plan_hash,
                request.model_dump_json(),
                certificate,
                submitted_ms,
                receiver,
            ),
        )

    def keep_approvals(self, query_id: str, approvals: list[SignedApproval]) -> None:
        """The decisions given so far on a waiting query, and each one's use by it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE queries SET approvals = ? WHERE query_id = ?",
                    (_APPROVALS.dump_json(approvals).decode(), query_id),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO decisions (signature_sha256, query_id) VALUES (?, ?)",
                    [(_signature_sha256(a), query_id) for a in approvals],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def check_decision_is_new(self, signed: SignedApproval, query_id: str) -> None:
        """Refuse a signed decision already given on another query (each needs its own)."""
        with self._lock:
            row = self._db.execute(
                "SELECT query_id FROM decisions WHERE signature_sha256 = ?",
                (_signature_sha256(signed),),
            ).fetchone()
        if row is not None and row[0] != query_id:
            raise InvalidRequestError(
                f"this signed decision was given on query {row[0]}; query {query_id} needs "
                "a decision of its own (sign one for it): it was not recorded"
            )

    def started(self, query_id: str) -> None:
        """Its approvals are in and it runs: a restart must not resume it."""
        self._write("UPDATE queries SET state = 'running' WHERE query_id = ?", (query_id,))

    def waiting(self) -> list[StoredQuery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT query_id, caller, request, certificate, plan_hash, approvals, "
                "submitted_ms, receiver FROM queries WHERE state = 'waiting' "
                "ORDER BY submitted_ms"
            ).fetchall()
        return [
            StoredQuery(
                query_id=query_id,
                caller=Identity.parse(caller, self._trust_domain),
                request=_request(request),
                certificate=certificate,
                plan_hash=plan_hash,
                approvals=tuple(_APPROVALS.validate_json(approvals)),
                submitted_ms=submitted_ms,
                receiver=receiver,
            )
            for (
                query_id,
                caller,
                request,
                certificate,
                plan_hash,
                approvals,
                submitted_ms,
                receiver,
            ) in rows
        ]

    # --- outcomes ------------------------------------------------------------------------

    def ended(
        self,
        query_id: str,
        caller: str,
        state: str,
        plan_hash: str | None,
        reason: str,
        now_ms: int,
    ) -> None:
        """How a query ended (after its audit outcome); its request is no longer kept."""
        self._write(
            "INSERT INTO queries (query_id, caller, state, plan_hash, reason, submitted_ms, "
            "ended_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (query_id) DO UPDATE SET "
            "state = excluded.state, reason = excluded.reason, ended_ms = excluded.ended_ms, "
            "request = NULL, approvals = '[]'",
            (query_id, caller, state, plan_hash, reason, now_ms, now_ms),
        )

    def ending(self, query_id: str) -> EndedQuery | None:
        """How ``query_id`` ended, if this store knows."""
        with self._lock:
            row = self._db.execute(
                "SELECT caller, state, plan_hash, reason FROM queries "
                "WHERE query_id = ? AND ended_ms IS NOT NULL",
                (query_id,),
            ).fetchone()
        if row is None:
            return None
        caller, state, plan_hash, reason = row
        return EndedQuery(query_id, caller, state, plan_hash or "", reason)

    def forget_ended_before(self, ms: int) -> None:
        self._write("DELETE FROM queries WHERE ended_ms IS NOT NULL AND ended_ms < ?", (ms,))

    def drop(self, query_id: str) -> None:
        self._write("DELETE FROM queries WHERE query_id = ? AND ended_ms IS NULL", (query_id,))

    # --- where the last scan of the audit log stopped ---------------------------------

    def scanned(self) -> tuple[int, list[OpenQuery]]:
        """Audit entries read so far, and the queries they left open."""
        with self._lock:
            row = self._db.execute("SELECT size, open FROM log_scan WHERE id = 1").fetchone()
        if row is None:
            return 0, []
        return row[0], [OpenQuery(**item) for item in json.loads(row[1])]

    def keep_scan(self, size: int, open_queries: list[OpenQuery]) -> None:
        self._write(
            "INSERT OR REPLACE INTO log_scan (id, size, open) VALUES (1, ?, ?)",
            (size, json.dumps([q.as_dict() for q in open_queries], sort_keys=True)),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
