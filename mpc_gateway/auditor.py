"""The auditor's side: read the logs, verify them independently, cross-check the nodes.

An auditor trusts only the consortium CA. It takes the gateway's and each
node's log as raw entries plus signed tree heads (over gRPC from the running
services, or from the SQLite files directly), recomputes every Merkle tree,
checks every signature against the keys certified by the CA, checks that the
gateway's log is consistent with the last head this auditor saw (kept in a
local state file), and compares the checkpoints each node recorded when it
received an order with the gateway's log: a gateway that showed different
histories to different parties, rewrote or dropped entries is caught there.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpc_gateway.audit.checkpoint import Checkpoint, parse_checkpoint, parse_note, verify_checkpoint
from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.merkle import leaf_hash, verify_inclusion
from mpc_gateway.audit.sqlite import load_raw
from mpc_gateway.audit.verify import compare_views, verify_log
from mpc_gateway.errors import IntegrityError
from mpc_gateway.pki import Identity, load_ca, load_layout, load_verified_signing_cert
from mpc_gateway.proto.v1 import audit_pb2, audit_pb2_grpc
from mpc_gateway.rpc.client import ServiceClient
from mpc_gateway.rpc.server import TlsMaterial

__all__ = [
    "LogCopy",
    "AuditorClient",
    "AuditOutcome",
    "certified_log_key",
    "verify_consortium",
    "load_last_seen",
    "save_last_seen",
    "check_proof",
]


@dataclass(frozen=True)
class LogCopy:
    """One party's log as an auditor receives it: unchecked bytes and notes."""

    owner: Identity
    entries: list[bytes]
    tree_heads: list[str]

    @property
    def key_name(self) -> str:
        return log_origin(self.owner.trust_domain, self.owner.role, self.owner.name)

    @classmethod
    def from_file(cls, owner: Identity, path: Path) -> LogCopy:
        raw = load_raw(path)
        return cls(owner, raw.entries, raw.tree_heads)


def certified_log_key(pki_dir: Path, owner: Identity) -> Ed25519PublicKey:
    """The Ed25519 key of ``owner``'s log, as certified by the consortium CA."""
    layout = load_layout(pki_dir)
    cert, _ = layout.signing_paths(owner)
    return load_verified_signing_cert(cert.read_bytes(), load_ca(layout.ca_cert), owner)


class AuditorClient(ServiceClient):
    """The audit API of one service (the gateway, or a node's witness log)."""

    def __init__(self, address: str, tls: TlsMaterial, timeout_s: float = 30.0) -> None:
        super().__init__(address, tls, timeout_s)
        self._stub = audit_pb2_grpc.AuditServiceStub(self._channel)

    def events(self, **filters: Any) -> list[tuple[int, AuditEvent]]:
        reply = self._call(self._stub.ListEvents, audit_pb2.ListEventsRequest(**filters))
        return [(e.index, AuditEvent.from_entry(e.entry)) for e in reply.events]

    def export(self, owner: Identity) -> LogCopy:
        reply = self._call(self._stub.Export, audit_pb2.ExportRequest())
        return LogCopy(owner, list(reply.entries), list(reply.tree_heads))

    def inclusion_proof(self, index: int) -> dict[str, Any]:
        """A self-contained inclusion proof document (JSON-able)."""
        proof = self._call(
            self._stub.GetInclusionProof, audit_pb2.InclusionProofRequest(index=index)
        )
        return {
            "format": "RFC 9162 inclusion proof; tree head as C2SP checkpoint",
            "index": proof.index,
            "tree_size": proof.tree_size,
            "entry_base64": base64.b64encode(proof.entry).decode(),
            "leaf_hash_hex": leaf_hash(proof.entry).hex(),
            "audit_path_hex": [h.hex() for h in proof.hashes],
            "checkpoint": proof.checkpoint,
        }


def check_proof(
    document: Mapping[str, Any], public_key: Ed25519PublicKey, key_name: str
) -> AuditEvent:
    """Verify an inclusion proof document; returns the proven event, or raises IntegrityError."""
    head = verify_checkpoint(document["checkpoint"], key_name, public_key)
    entry = base64.b64decode(document["entry_base64"])
    if head.size != document["tree_size"]:
        raise IntegrityError("the proof's tree size is not the signed head's")
    path = [bytes.fromhex(h) for h in document["audit_path_hex"]]
    if not verify_inclusion(leaf_hash(entry), document["index"], head.size, path, head.root_hash):
        raise IntegrityError(f"entry {document['index']} is not included in the signed tree head")
    return AuditEvent.from_entry(entry)


@dataclass
class AuditOutcome:
    """What verification found: a line per check, and problems (empty when all is well)."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    latest: Checkpoint | None = None
    latest_note: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _recorded_gateway_heads(node_log: LogCopy) -> list[str]:
    heads = []
    for entry in node_log.entries:
        event = AuditEvent.from_entry(entry)
        note = event.details.get("gateway_checkpoint") if event.kind == "order.received" else None
        if isinstance(note, str):
            heads.append(note)
    return heads


def _note_for(notes: list[str], head: Checkpoint | None) -> str | None:
    for note in reversed(notes):
        if head is not None and parse_checkpoint(parse_note(note)[0]) == head:
            return note
    return None


def verify_consortium(
    gateway: LogCopy,
    gateway_key: Ed25519PublicKey,
    nodes: Mapping[str, tuple[LogCopy, Ed25519PublicKey]],
    last_seen: str | None = None,
) -> AuditOutcome:
    """Verify the gateway's log, each node's witness log, and that their views agree."""
    outcome = AuditOutcome()
    previous = verify_checkpoint(last_seen, gateway.key_name, gateway_key) if last_seen else None
    report = verify_log(
        gateway.entries, gateway.tree_heads, gateway_key, gateway.key_name, previous
    )
    outcome.problems += [f"gateway log: {p}" for p in report.problems]
    outcome.latest = report.latest
    outcome.latest_note = _note_for(gateway.tree_heads, report.latest)
    outcome.checked.append(
        f"gateway log: {report.size} entries, {report.heads_verified} signed tree heads verified"
        + (f", consistent with the head you last saw (size {previous.size})" if previous else "")
    )
    recorded = {}
    for name, (node_log, node_key) in nodes.items():
        node_report = verify_log(node_log.entries, node_log.tree_heads, node_key, node_log.key_name)
        outcome.problems += [f"node {name} log: {p}" for p in node_report.problems]
        recorded[name] = _recorded_gateway_heads(node_log)
        outcome.checked.append(
            f"node {name} witness log: {node_report.size} entries, "
            f"{len(recorded[name])} gateway tree heads recorded with orders"
        )
    views = compare_views(
        gateway.tree_heads, recorded, gateway_key, gateway.key_name, gateway.entries
    )
    outcome.problems += [f"split view: {c.message}" for c in views.conflicts]
    outcome.problems += list(views.unverifiable)
    if nodes:
        outcome.checked.append(
            "every gateway tree head the nodes recorded matches the gateway's log"
        )
    return outcome


def load_last_seen(state: Path, origin: str) -> str | None:
    if not state.exists():
        return None
    value = json.loads(state.read_text()).get(origin)
    return value if isinstance(value, str) else None


def save_last_seen(state: Path, origin: str, note: str) -> None:
    state.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(state.read_text()) if state.exists() else {}
    data[origin] = note
    state.write_text(json.dumps(data, indent=2))


def raw_public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
