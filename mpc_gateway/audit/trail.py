"""The gateway's way of writing its audit log: one call per event.

:class:`AuditTrail` wraps an :class:`~mpc_gateway.audit.log.AuditLog` (SQLite by
default) with the gateway's signing key and the wall clock, and appends each
event durably before returning, so the caller can act on the event only after
it is recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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

    def close(self) -> None:
        self.log.close()
