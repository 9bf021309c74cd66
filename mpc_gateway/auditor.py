"""The auditor's side: read the logs, verify them independently, cross-check the nodes.

An auditor trusts only the consortium CA. It takes the gateway's and each
node's log as raw entries plus signed tree heads (over gRPC from the running
services, or from the SQLite files directly), recomputes every Merkle tree,
checks every signature against the keys certified by the CA, checks that every
log (the gateway's and each node's) is consistent with the last head of it this
auditor verified (kept in a local state file), and compares the checkpoints each
node recorded when it received an order with the gateway's log: a gateway that
showed different histories to different parties, rewrote or dropped entries is
caught there. Last, the events are reconciled (:mod:`mpc_gateway.audit.reconcile`):
what every node completed must have its dispatch and outcome in the gateway's
log, and every release the completions of the nodes it names, so a tail erased
from the gateway's log together with its tree heads is caught too.
"""

from __future__ import annotations

import base64
import json
import os
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
from mpc_gateway.audit.reconcile import decode_events, reconcile
from mpc_gateway.audit.sqlite import load_raw
from mpc_gateway.audit.verify import compare_views, verify_log
from mpc_gateway.errors import ConfigurationError, IntegrityError
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
    "load_state",
    "save_last_seen",
    "save_state",
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
    """What verification found: a line per check, problems (empty when all is well), warnings.

    ``latest_notes`` holds, per log origin, the newest signed head that verified:
    what the auditor's state file keeps for the next visit.
    """

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    latest: Checkpoint | None = None
    latest_note: str | None = None
    latest_notes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problems": self.problems,
            "warnings": self.warnings,
            "verified_heads": {o: _head_summary(n) for o, n in self.latest_notes.items()},
        }


def _head_summary(note: str) -> dict[str, Any]:
    """A verified head's size and root hash, with the signed checkpoint they come from."""
    head = parse_checkpoint(parse_note(note)[0])
    root = base64.b64encode(head.root_hash).decode()
    return {"size": head.size, "root_hash": root, "checkpoint": note}


def _recorded_gateway_heads(events: list[AuditEvent | None]) -> list[str]:
    heads = []
    for event in events:
        # the heads nodes received with orders, and the ones they cosigned for releases
        if event is None or event.kind not in ("order.received", "result.released"):
            continue
        note = event.details.get("gateway_checkpoint")
        if isinstance(note, str):
            heads.append(note)
    return heads


def _note_for(notes: list[str], head: Checkpoint | None) -> str | None:
    for note in reversed(notes):
        if head is not None and parse_checkpoint(parse_note(note)[0]) == head:
            return note
    return None


def _verify_one(
    outcome: AuditOutcome,
    label: str,
    log: LogCopy,
    key: Ed25519PublicKey,
    last_seen: Mapping[str, str],
) -> tuple[str, Checkpoint | None]:
    """Verify one log on its own and against the head of it last seen.

    Returns what was checked, in words, and the newest head that verified.
    """
    note, previous = last_seen.get(log.key_name), None
    try:
        previous = verify_checkpoint(note, log.key_name, key) if note else None
    except IntegrityError as err:
        outcome.problems.append(
            f"{label}: the head you last saw (in your state file) does not verify under the "
            f"key the CA certified: {err.public_message}"
        )
    report = verify_log(log.entries, log.tree_heads, key, log.key_name, previous)
    outcome.problems += [f"{label}: {p}" for p in report.problems]
    latest_note = _note_for(log.tree_heads, report.latest)
    if latest_note is not None:
        outcome.latest_notes[log.key_name] = latest_note
    said = f"{report.size} entries, {report.heads_verified} signed tree heads verified"
    if previous is not None:
        said += f", consistent with the head you last saw (size {previous.size})"
    return said, report.latest


def verify_consortium(
    gateway: LogCopy,
    gateway_key: Ed25519PublicKey,
    nodes: Mapping[str, tuple[LogCopy, Ed25519PublicKey]],
    last_seen: Mapping[str, str] | None = None,
) -> AuditOutcome:
    """Verify the gateway's log and each node's witness log, then that they tell one story.

    ``last_seen`` maps a log's origin to the newest head of it this auditor
    verified before (:func:`load_state`): each log must be consistent with it,
    so a log truncated, emptied, restored from an older copy or forked since is
    caught. Then the heads nodes recorded are compared with the gateway's log
    (split views) and the events of all logs are reconciled (:func:`reconcile`).
    """
    seen = last_seen or {}
    outcome = AuditOutcome()
    said, outcome.latest = _verify_one(outcome, "gateway log", gateway, gateway_key, seen)
    outcome.latest_note = outcome.latest_notes.get(gateway.key_name)
    outcome.checked.append(f"gateway log: {said}")
    recorded, node_events = {}, {}
    for name, (node_log, node_key) in nodes.items():
        said, _ = _verify_one(outcome, f"node {name} log", node_log, node_key, seen)
        node_events[name] = decode_events(node_log.entries)
        recorded[name] = _recorded_gateway_heads(node_events[name])
        outcome.checked.append(
            f"node {name} witness log: {said}, "
            f"{len(recorded[name])} gateway tree heads recorded with orders"
        )
    views = compare_views(
        gateway.tree_heads, recorded, gateway_key, gateway.key_name, gateway.entries
    )
    outcome.problems += [f"split view: {c.message}" for c in views.conflicts]
    outcome.problems += list(views.unverifiable)
    if not nodes:
        outcome.warnings.append(
            "no node witness logs given: the gateway's log is checked on its own, and a "
            "tail erased from it together with its tree heads cannot be noticed"
        )
        return outcome
    outcome.checked.append("every gateway tree head the nodes recorded matches the gateway's log")
    events = reconcile(decode_events(gateway.entries), node_events)
    outcome.checked += events.checked
    outcome.problems += events.problems
    outcome.warnings += events.warnings
    return outcome


def load_state(state: Path) -> dict[str, str]:
    """The auditor's state: per log origin, the newest signed head it verified (a note)."""
    if not state.exists():
        return {}
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"the audit state file {state} is unreadable: {err}") from err
    if not isinstance(data, dict):
        raise ConfigurationError(f"the audit state file {state} is not a JSON object")
    found = {}
    for origin, value in data.items():
        note = value.get("checkpoint") if isinstance(value, dict) else value  # or a bare note
        if isinstance(note, str):
            found[str(origin)] = note
    return found


def save_state(state: Path, notes: Mapping[str, str]) -> None:
    """Merge ``notes`` (origin -> verified head) into the state file, atomically.

    Each log keeps its size and root hash next to the signed checkpoint they come
    from, so the file can be read by eye and the checkpoint shown to anyone.
    """
    merged = {**load_state(state), **notes}
    data = {origin: _head_summary(note) for origin, note in sorted(merged.items())}
    state.parent.mkdir(parents=True, exist_ok=True)
    partial = state.with_name(state.name + ".partial")
    partial.write_text(json.dumps(data, indent=2))
    os.replace(partial, state)


def load_last_seen(state: Path, origin: str) -> str | None:
    """The newest head of log ``origin`` verified before, if any."""
    return load_state(state).get(origin)


def save_last_seen(state: Path, origin: str, note: str) -> None:
    save_state(state, {origin: note})


def raw_public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
