"""A node's side of a release: result shares sealed to the receiver, handed over once witnessed.

After the MPC step a node splits its re-randomised shares of the result. The
blocks the computation's driver must open to go on (a policy check's bit, a
search's brackets: :meth:`Computation.visible`) go back to the gateway as
shares. Every other block is sealed with HPKE to the receiver's certified
key-agreement key (:mod:`mpc_gateway.pki.receiver`) and kept here: the gateway
learns its digest and size only.

The node hands the ciphertext over only against a checkpoint of the gateway's
log that the gateway signed, that includes the query's ``result.released``
entry naming this node's ciphertext digest and the receiver, and that extends
(an RFC 9162 consistency proof) the last checkpoint this node cosigned. It
cosigns that checkpoint (C2SP tlog-cosignature), records the cosignature in its
witness log, and only then returns the ciphertext. So every release the
receiver can open is witnessed by every node, and a gateway that later cuts or
rewrites its log cannot get another checkpoint cosigned: the node's last
cosigned checkpoint is its witness log's latest ``result.released`` entry, read
back on start, and never goes back. A witness log that lost its newest releases
is caught the other way round: the gateway keeps the checkpoints the nodes
cosigned, and shows each node the newest one bearing its cosignature; a node
that no longer holds it halts its witness log.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from mpc_gateway.audit.checkpoint import (
    Checkpoint,
    cosign,
    parse_checkpoint,
    parse_note,
    verify_checkpoint,
    verify_cosignature,
)
from mpc_gateway.audit.evidence import DispatchEvidence, logged_in
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.merkle import EMPTY_ROOT, verify_consistency
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import IntegrityError, InvalidRequestError, StorageUnavailableError
from mpc_gateway.orders import ExecutionOrder
from mpc_gateway.pki import Identity
from mpc_gateway.pki.receiver import receiver_public_key, seal, sealing_info

__all__ = ["Contribution", "Releases", "Handed", "order_receiver", "split_blocks"]

HOLD_S = 600.0  # a sealed result not asked for within this long is dropped
MAX_HELD = 4096

ShareBlocks = dict[str, tuple[int, list[int]]]
"""A node's shares per block: (field modulus, values)."""


def order_receiver(
    order: ExecutionOrder, ca: x509.Certificate, trust_domain: str
) -> X25519PublicKey:
    """The key ``order``'s results are sealed to: its plan's analyst's, certified by ``ca``."""
    analyst = Identity.parse(order.plan.analyst, trust_domain)
    return receiver_public_key(order.receiver.encode(), ca, analyst)


def split_blocks(blocks: ShareBlocks, visible: frozenset[str]) -> tuple[ShareBlocks, ShareBlocks]:
    """``(visible, sealed)``: what the driver opens, and what only the receiver may."""
    shown = {name: b for name, b in blocks.items() if name in visible}
    return shown, {name: b for name, b in blocks.items() if name not in visible}


@dataclass(frozen=True)
class Contribution:
    """This node's re-randomised shares of a query's result, with timings."""

    blocks: dict[str, Any]  # the blocks the driver opens (the result itself is sealed)
    local_ms: float
    mpc_ms: float
    sealed_sha256: str = ""  # this node's result shares, sealed to the receiver and held
    sealed_size: int = 0


@dataclass(frozen=True)
class _Held:
    plan_hash: str
    receiver: str
    digest: str
    ciphertext: bytes
    expires: float


@dataclass(frozen=True)
class Handed:
    """What a node returns for a witnessed release."""

    ciphertext: bytes
    cosignature: str
    cosigned_size: int


class Releases:
    """The sealed results this node holds, and the last gateway checkpoint it cosigned."""

    def __init__(
        self,
        node: str,
        party: int,
        key_name: str,
        signing_key: Ed25519PrivateKey,
        gateway_key: Ed25519PublicKey,
        gateway_log: str,
        witness: AuditTrail,
    ) -> None:
        self.node, self.party, self._name = node, party, key_name
        self._key, self._gateway_key, self._gateway_log = signing_key, gateway_key, gateway_log
        self._witness = witness
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._size, self._root, self._note = _last_cosigned(witness)

    @property
    def cosigned_size(self) -> int:
        return self._size

    @property
    def cosigned_checkpoint(self) -> str:
        """The gateway's checkpoint this node cosigned last, as the gateway signed it ("": none)."""
        return self._note

    def hold(
        self, order: ExecutionOrder, sealed: ShareBlocks, receiver: X25519PublicKey
    ) -> tuple[str, int]:
        """Seal ``sealed`` to ``receiver`` for ``order``'s query; keep it; digest and size."""
        plaintext = canonical_bytes(
            {
                name: {"modulus": str(m), "values": [str(v) for v in vs]}
                for name, (m, vs) in sealed.items()
            }
        )
        info = sealing_info(order.query_id, order.plan_hash, self.node, self.party)
        ciphertext = seal(plaintext, receiver, info)
        digest = hashlib.sha256(ciphertext).hexdigest()
        now = time.monotonic()
        with self._lock:
            for query_id in [q for q, h in self._held.items() if h.expires < now]:
                del self._held[query_id]
            while len(self._held) >= MAX_HELD:
                del self._held[next(iter(self._held))]
            self._held[order.query_id] = _Held(
                order.plan_hash, order.plan.analyst, digest, ciphertext, now + HOLD_S
            )
        return digest, len(ciphertext)

    def release(
        self,
        query_id: str,
        evidence: DispatchEvidence,
        from_size: int,
        consistency: list[bytes],
        cosigned: str = "",
    ) -> Handed:
        """Cosign the checkpoint that logs ``query_id``'s release; hand over its ciphertext."""
        ciphertexts, cosignature, size = self.release_all(
            [(query_id, evidence)], from_size, consistency, cosigned
        )
        return Handed(ciphertexts[0], cosignature, size)

    def release_all(
        self,
        releases: Sequence[tuple[str, DispatchEvidence]],
        from_size: int,
        consistency: list[bytes],
        cosigned: str = "",
    ) -> tuple[list[bytes], str, int]:
        """Cosign the one checkpoint that logs every query's release; hand over each ciphertext.

        Each query is checked as if it came alone, before anything is cosigned or handed
        over: one that does not check refuses them all (its query named). Returns the
        ciphertexts, in order, the cosignature and the size of the log it covers.
        ``cosigned``: the gateway's checkpoint at ``from_size`` with this node's
        cosignature, as the gateway kept it (see :meth:`_check_extends`).
        """
        notes = {evidence.checkpoint for _, evidence in releases}
        if not releases or len(notes) != 1:
            raise IntegrityError("the releases of one request must share one checkpoint")
        if len({query_id for query_id, _ in releases}) != len(releases):
            raise IntegrityError("a release request names one query twice")
        note = notes.pop()
        with self._lock:
            checked = [self._holding(query_id) for query_id, _ in releases]
            head = verify_checkpoint(note, self._gateway_log, self._gateway_key)  # once for all
            for (query_id, evidence), held in zip(releases, checked, strict=True):
                self._check_logged(query_id, evidence, head, held)
            self._check_extends(head.size, head.root_hash, from_size, consistency, cosigned)
            cosignature = cosign(parse_note(note)[0], int(time.time()), self._name, self._key)
            with self._witness.batch():
                for (query_id, evidence), held in zip(releases, checked, strict=True):
                    self._witness.record(
                        "result.released",
                        held.receiver,
                        query_id=query_id,
                        decision="released",
                        details={
                            "plan_hash": held.plan_hash,
                            "sealed_sha256": held.digest,
                            "gateway_checkpoint": note,
                            "cosignature": cosignature,
                            "gateway_log_size": head.size,
                            "release_index": evidence.index,
                        },
                    )
                self._witness.seal()
            self._size, self._root, self._note = head.size, head.root_hash, note
            for query_id, _ in releases:
                del self._held[query_id]
            return [held.ciphertext for held in checked], cosignature, head.size

    def _holding(self, query_id: str) -> _Held:
        """What this node holds of ``query_id``."""
        held = self._held.get(query_id)
        if held is None:
            raise InvalidRequestError(
                f"node {self.node} holds no sealed result of query {query_id}: it never "
                "completed here, was already handed over, or expired",
                query_id=query_id,
            )
        return held

    def _check_logged(
        self, query_id: str, evidence: DispatchEvidence, head: Checkpoint, held: _Held
    ) -> None:
        """``held`` is what the release entry of ``query_id`` in ``head`` (verified) names."""
        details = logged_in(evidence, head, query_id, "result.released").details
        sealed = details.get("sealed")
        if (
            details.get("plan_hash") != held.plan_hash
            or details.get("receiver") != held.receiver
            or not isinstance(sealed, dict)
            or sealed.get(self.node) != held.digest
        ):
            raise IntegrityError(
                f"the gateway's release entry of query {query_id} does not name this "
                f"node's sealed result ({held.digest[:12]}), its plan and its receiver",
                query_id=query_id,
            )

    def check_shown(self, cosigned: str) -> None:
        """Halt the witness log if ``cosigned`` shows it lost releases it recorded.

        ``cosigned`` is what the gateway kept of the newest checkpoint this node
        cosigned (``""``: nothing). Signed by the gateway and bearing this node's
        own cosignature at a size beyond the newest release in the witness log, it
        shows that the log lost what it recorded (a restored older copy, a damaged
        write-ahead log, an edit): the record of what the node witnessed since is
        gone. The witness log halts (the node takes no order and turns NOT_SERVING)
        until the newest copy is restored. Anything else shown halts nothing.
        """
        size = self._cosigned_size(cosigned)
        if size is None or size <= self._size:
            return
        problem = (
            f"node {self.node}'s witness log lost releases it recorded: the gateway "
            f"shows this node's own cosignature on the gateway's log at size {size}, but "
            f"the newest release in the witness log is at size {self._size} (a restored "
            "older copy, a damaged write-ahead log or an edit); this node takes no order "
            "until the newest copy of its witness log is restored"
        )
        raise StorageUnavailableError(self._witness.log.halt(problem))

    def _check_extends(
        self, size: int, root: bytes, from_size: int, proof: list[bytes], cosigned: str
    ) -> None:
        """The checkpoint at ``size`` extends the last one this node cosigned
        (:meth:`check_shown` first: it may show that the witness log lost it)."""
        if size < self._size:
            raise IntegrityError(
                f"the gateway's checkpoint at size {size} is older than the one at size "
                f"{self._size} node {self.node} cosigned: the gateway's log was cut or rolled back"
            )
        self.check_shown(cosigned)
        if from_size != self._size:
            raise IntegrityError(
                f"the consistency proof starts at size {from_size}, but node {self.node} last "
                f"cosigned the gateway's log at size {self._size}"
            )
        if not verify_consistency(self._size, size, self._root, root, proof):
            raise IntegrityError(
                f"the gateway's log at size {size} does not extend the checkpoint at size "
                f"{self._size} node {self.node} cosigned: its log was rewritten"
            )

    def _cosigned_size(self, note: str) -> int | None:
        """The size of ``note``, a gateway checkpoint this node cosigned; None if it is not."""
        if not note:
            return None
        try:
            head = verify_checkpoint(note, self._gateway_log, self._gateway_key)
            verify_cosignature(note, self._name, self._key.public_key())
        except IntegrityError:
            return None
        return head.size


def _last_cosigned(witness: AuditTrail) -> tuple[int, bytes, str]:
    """The gateway checkpoint this node cosigned last (its latest ``result.released`` entry):
    its size, root hash and note."""
    log = witness.log
    for index in range(log.size() - 1, -1, -1):
        event = AuditEvent.from_entry(log.entry(index))
        if event.kind == "result.released":
            note = str(event.details["gateway_checkpoint"])
            head = parse_checkpoint(parse_note(note)[0])
            return head.size, head.root_hash, note
    return 0, EMPTY_ROOT, ""
