"""Writing an audit log as a service does: one call per event, heads signed as it goes.

:class:`AuditTrail` wraps an :class:`~mpc_gateway.audit.log.AuditLog` (SQLite by
default) with its owner's signing key and the wall clock. ``record`` appends
durably before returning, so the caller acts on an event only once it is
recorded; ``seal`` signs a tree head covering everything recorded so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.checkpoint import parse_checkpoint, parse_note, verify_checkpoint
from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.log import AppendedEntry, AuditEvent, AuditLog
from mpc_gateway.audit.sqlite import SqliteAuditLog

__all__ = ["AuditTrail", "wall_clock_ms"]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class AuditTrail:
    def __init__(self, log: AuditLog) -> None:
        self.log = log

    @classmethod
    def open(cls, path: Path, signing_key: Ed25519PrivateKey, origin: str) -> AuditTrail:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(
            SqliteAuditLog(path, origin=origin, signing_key=signing_key, clock=wall_clock_ms)
        )

    def record(
        self,
        kind: str,
        actor: str,
        *,
        query_id: str | None = None,
        dataset: str | None = None,
        decision: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AppendedEntry:
        event = AuditEvent(
            kind=kind,
            actor=actor,
            query_id=query_id,
            dataset=dataset,
            decision=decision,
            timestamp_ms=wall_clock_ms(),
            details=details or {},
        )
        return self.log.append(event)

    def batch(self, durable: bool = True) -> AbstractContextManager[None]:
        """Records and seals inside the block are written together, with one fsync.

        ``durable=False``: without it; the next durable write syncs them too.
        """
        return self.log.batch(durable)

    def seal(self) -> str:
        """Sign (and store) a tree head over every entry recorded so far."""
        return self.log.signed_tree_head()

    def sealed(self, writes: Sequence[Callable[[], AppendedEntry]]) -> list[DispatchEvidence]:
        """Every write in one durable batch under one new signed head; each one's evidence.

        A group commit: the entries of several queries written at the same moment
        cost one fsync and one signature, and each still gets its own inclusion proof.
        """
        with self.batch():
            entries = [write() for write in writes]
            checkpoint = self.seal()
        return [self.included(entry, checkpoint) for entry in entries]

    def evidence(self, appended: AppendedEntry) -> DispatchEvidence:
        """A signed head covering ``appended`` and the proof that it is included."""
        return self.included(appended, self.seal())

    def included(self, appended: AppendedEntry, checkpoint: str) -> DispatchEvidence:
        """The proof that ``appended`` is in the log ``checkpoint`` (sealed since) signs."""
        size = parse_checkpoint(parse_note(checkpoint)[0]).size
        return DispatchEvidence(
            entry=self.log.entry(appended.index),
            index=appended.index,
            proof=tuple(self.log.inclusion_proof(appended.index, size)),
            checkpoint=checkpoint,
        )

    def check_witnessed(self, witness: str, note: str) -> str | None:
        """Halt the log unless it holds ``note``, the checkpoint of it ``witness`` cosigned last.

        A log restored from an older copy, cut, or shortened by a damaged write-ahead
        log (SQLite drops every frame after a bad checksum, silently) no longer holds
        what its witnesses cosigned, and they cosign nothing that does not extend it:
        no result could be released any more, so the log takes no write at all
        (:meth:`AuditLog.halt`). Returns why (saying so if another report halted it
        first), or None. A note this log did not sign (``""``: none yet) is an
        :class:`IntegrityError` of the witness, not of the log.
        """
        if not note:
            return None
        log = self.log
        head = verify_checkpoint(note, log.key_name, log.public_key, origin=log.origin)
        size = log.size()
        if head.size > size:
            problem = (
                f"the audit log holds {size} entries, but {witness} cosigned its checkpoint "
                f"at size {head.size}: entries were lost"
            )
        elif log.root(head.size) != head.root_hash:
            problem = (
                f"the audit log's first {head.size} entries are not those {witness} "
                "cosigned: the log was rewritten"
            )
        else:
            return None
        problem += (
            " (a restored older copy, a damaged write-ahead log or an edit); no query is "
            "taken until the newest copy of the log file is restored"
        )
        if log.halt(problem) != problem:  # another witness's report halted it first
            problem += "; the log was halted already"
        return problem

    def close(self) -> None:
        self.log.close()
