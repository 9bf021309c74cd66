"""The gateway's tamper-evident audit log and the tools to verify it.

* :mod:`.merkle`: RFC 9162 tree hashing, inclusion and consistency proofs;
* :mod:`.checkpoint`: C2SP signed-note checkpoints (signed tree heads) and
  witness cosignatures;
* :mod:`.log`: :class:`AuditEvent` and the :class:`AuditLog` interface;
* :mod:`.memory`, :mod:`.sqlite`: the storage backends;
* :mod:`.verify`: what auditors and witnessing nodes run;
* :mod:`.reconcile`: the events of the gateway's and the nodes' logs, cross-checked.
"""

from mpc_gateway.audit.checkpoint import (
    Checkpoint,
    NoteSignature,
    append_signature,
    cosign,
    format_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_cosignature,
    verify_witnessed_checkpoint,
)
from mpc_gateway.audit.log import AppendedEntry, AuditEvent, AuditLog, Clock, LoggedEvent
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.merkle import MerkleTree, verify_consistency, verify_inclusion
from mpc_gateway.audit.sqlite import RawLog, SqliteAuditLog, load_raw
from mpc_gateway.audit.verify import (
    Conflict,
    VerificationReport,
    ViewComparison,
    compare_views,
    verify_log,
)

__all__ = [
    "AppendedEntry",
    "AuditEvent",
    "AuditLog",
    "Checkpoint",
    "Clock",
    "Conflict",
    "InMemoryAuditLog",
    "LoggedEvent",
    "MerkleTree",
    "NoteSignature",
    "RawLog",
    "SqliteAuditLog",
    "VerificationReport",
    "ViewComparison",
    "append_signature",
    "compare_views",
    "cosign",
    "format_checkpoint",
    "load_raw",
    "parse_checkpoint",
    "parse_note",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_log",
    "verify_witnessed_checkpoint",
]
