"""Evidence that the gateway logged a query before dispatching it.

With every execution order the gateway sends the query's ``query.submitted``
entry, its RFC 9162 inclusion proof, and the signed checkpoint the proof leads
to. A node verifies all three before it contributes anything, and keeps the
checkpoint in its own witness log; an auditor later compares the checkpoints
nodes kept with the gateway's log, which exposes a gateway that showed
different histories to different parties or rewrote its log.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpc_gateway.audit.checkpoint import Checkpoint, verify_checkpoint
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.merkle import leaf_hash, verify_inclusion
from mpc_gateway.errors import IntegrityError

__all__ = ["DispatchEvidence", "log_origin", "logged_in", "verify_evidence", "verify_logged"]


def log_origin(trust_domain: str, role: str, name: str) -> str:
    """The checkpoint origin (and key name) of ``role/name``'s audit log."""
    return f"{trust_domain}/{role}/{name}/audit"


@dataclass(frozen=True)
class DispatchEvidence:
    entry: bytes
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str


def verify_logged(
    evidence: DispatchEvidence,
    query_id: str,
    kind: str,
    gateway_key: Ed25519PublicKey,
    key_name: str,
) -> tuple[Checkpoint, AuditEvent]:
    """The verified checkpoint and the ``kind`` entry of ``query_id`` it provably includes."""
    head = verify_checkpoint(evidence.checkpoint, key_name, gateway_key)
    return head, logged_in(evidence, head, query_id, kind)


def logged_in(evidence: DispatchEvidence, head: Checkpoint, query_id: str, kind: str) -> AuditEvent:
    """The ``kind`` entry of ``query_id``, provably in ``head`` (its signature checked already)."""
    if not verify_inclusion(
        leaf_hash(evidence.entry), evidence.index, head.size, list(evidence.proof), head.root_hash
    ):
        raise IntegrityError(
            f"the gateway's audit entry for query {query_id} is not included in the tree "
            "head it signed"
        )
    try:
        event = AuditEvent.from_entry(evidence.entry)
    except (ValueError, TypeError) as err:
        raise IntegrityError(
            f"the gateway's audit entry for query {query_id} is malformed"
        ) from err
    if (event.kind, event.query_id) != (kind, query_id):
        raise IntegrityError(
            f"the gateway's audit entry is not the {kind} entry of query {query_id}"
        )
    return event


def verify_evidence(
    evidence: DispatchEvidence,
    query_id: str,
    plan_hash: str,
    gateway_key: Ed25519PublicKey,
    key_name: str,
) -> Checkpoint:
    """The verified checkpoint, or IntegrityError if the query is not provably logged."""
    head, event = verify_logged(evidence, query_id, "query.submitted", gateway_key, key_name)
    if event.details.get("plan_hash") != plan_hash:
        raise IntegrityError(
            f"the gateway's audit entry does not record the submission of query {query_id} "
            "with this plan"
        )
    return head
