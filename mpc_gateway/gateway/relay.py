"""How a result leaves the gateway: logged, witnessed by every node, relayed still sealed.

Once a plan's MPC steps are done, the gateway writes the query's
``result.released`` entry (naming every node's sealed shares by digest) and
seals a checkpoint over it. Every node then checks that checkpoint extends the
last one it cosigned (an RFC 9162 consistency proof from the size it reports),
cosigns it, records that in its witness log and hands over its shares, still
sealed to the receiver (``NodeService.Release``). Releases go one batch at a
time, so the checkpoints each node cosigns only grow; the releases that queue
meanwhile share the next checkpoint and one request to every node
(``NodeService.ReleaseBatch``: one cosignature, one witness-log write). What the
receiver gets is a :class:`~mpc_gateway.orders.release.Relayed`: the gateway has
no key to open it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpc_gateway.audit.checkpoint import (
    append_signature,
    parse_checkpoint,
    parse_note,
    verify_cosignature,
)
from mpc_gateway.audit.evidence import DispatchEvidence, log_origin
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import Blocks, Plan
from mpc_gateway.errors import ConfigurationError, GatewayError, IntegrityError
from mpc_gateway.gateway.batching import Batcher, Queued
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.gateway.recombine import Dispatched
from mpc_gateway.gateway.record import QueryRecord
from mpc_gateway.orders.release import Relayed, SealedShare
from mpc_gateway.pki import ConsortiumLayout, Identity
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.proto.v1.node_pb2 import SealedShares
from mpc_gateway.query.schema import DatasetSchema

__all__ = ["Relay", "RELEASE_BATCH"]

_RELEASE_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)
RELEASE_BATCH = 32  # releases waiting together share one checkpoint, at most this many


@dataclass(eq=False)
class _Pending(Queued):
    """A query whose MPC steps are done, waiting for its release to be logged and witnessed."""

    record: QueryRecord
    plan: Plan
    public: Blocks
    steps: Sequence[Dispatched]
    total_ms: float


@dataclass(frozen=True)
class _Witnessed:
    release: DispatchEvidence  # the query's release entry, in the cosigned checkpoint
    shares: tuple[SealedShare, ...]  # every node's, in party order


class Relay:
    """Releases one batch at a time, so the checkpoints each node cosigns only grow.

    Releases that queue while one is being witnessed go together (:mod:`.batching`):
    one checkpoint over all their release entries, one request to every node, one
    cosignature each; every query still gets its own entry, proof and sealed shares.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        audit: AuditTrail,
        layout: ConsortiumLayout,
        gateway: Identity,
        batch_max: int = RELEASE_BATCH,
    ) -> None:
        """``batch_max``: the most releases one checkpoint covers (1: each has its own)."""
        self.dispatcher, self.audit = dispatcher, audit
        signers = [gateway, *(Identity("node", n, layout.trust_domain) for n in layout.nodes)]
        # what the receiver checks the gateway's signature and the cosignatures with
        self.signing_certificates = tuple(
            layout.signing_paths(who)[0].read_bytes() for who in signers
        )
        witnesses = {
            who.name: (log_origin(layout.trust_domain, "node", who.name), _signing_key(pem))
            for who, pem in zip(signers[1:], self.signing_certificates[1:], strict=True)
        }
        # per node: the size of our log it cosigned last, and that checkpoint with its cosignature
        self._cosigned = _newest_cosigned(audit.log.tree_heads(), witnesses)
        self._batcher = Batcher(self._release_all, min(batch_max, RELEASE_BATCH), in_flight=1)

    def release(
        self,
        query: QueryRecord,
        plan: Plan,
        schema: DatasetSchema,
        public: Blocks,
        steps: Sequence[Dispatched],
        total_ms: float,
    ) -> Relayed:
        """Log the release, have every node witness it, and return the sealed result."""
        started = time.perf_counter()
        witnessed: _Witnessed = self._batcher.submit(
            _Pending(query.query_id, query, plan, public, steps, total_ms)
        )
        release_ms = (time.perf_counter() - started) * 1000
        return Relayed(
            query_id=query.query_id,
            plan=plan,
            schema=schema,
            parties=len(self.dispatcher.parties),
            public=public,
            shares=witnessed.shares,
            release=witnessed.release,
            signing_certificates=self.signing_certificates,
            sequence=steps[-1].order.sequence,
            lane=steps[-1].order.lane,
            rounds=len(steps),
            total_ms=total_ms + release_ms,
            mpc_ms=sum(s.mpc_ms for s in steps),
            local_ms=sum(s.local_ms for s in steps),
            release_ms=release_ms,
        )

    def shown(self, node: str) -> str:
        """The newest checkpoint ``node`` cosigned, with its cosignature ("" if none kept)."""
        return self._cosigned.get(node, _NOTHING)[1]

    def _release_all(self, batch: Sequence[_Pending]) -> list[_Pending]:
        """Log every release under one checkpoint, have every node witness it; end each."""
        for pending in batch:  # a node further on than we know: what we kept of it was lost
            for name, size in pending.steps[-1].cosigned.items():
                if size > self._cosigned.get(name, _NOTHING)[0]:
                    self._cosigned[name] = (size, "")
        writes = [partial(p.record.released, p.plan, p.public, p.steps, p.total_ms) for p in batch]
        try:
            releases = self.audit.sealed(writes)
        except GatewayError as err:  # an unwritable log: nothing was released
            for pending in batch:
                pending.fail(err)
            return []
        try:
            note, shares = self._witnessed(batch, releases, self.audit.log.consistency_proof)
        except GatewayError as err:
            for pending in batch:
                pending.record.undelivered(err)
                pending.fail(err)
            return []
        for pending, release, own in zip(batch, releases, shares, strict=True):
            pending.succeed(_Witnessed(replace(release, checkpoint=note), own))
        return []

    def _witnessed(
        self,
        batch: Sequence[_Pending],
        releases: Sequence[DispatchEvidence],
        consistency: Callable[[int, int], list[bytes]],
    ) -> tuple[str, list[tuple[SealedShare, ...]]]:
        """Every node's cosignature on the releases' checkpoint, and each one's sealed shares."""
        checkpoint = releases[0].checkpoint
        size = parse_checkpoint(parse_note(checkpoint)[0]).size

        def ask(name: str, stub: node_pb2_grpc.NodeServiceStub) -> Any:
            start, shown = self._cosigned.get(name, _NOTHING)
            proof = consistency(start, size) if start <= size else []  # a cut log
            return _ask(stub, batch, releases, start, proof, shown)

        calls = self.dispatcher.calls.every_node(ask)
        note, shares, failures, cosigners = checkpoint, [], [], []
        for name, call in calls:
            try:
                reply = call.result()
            except GatewayError as err:
                failures.append(err)
                continue
            ciphertexts = (
                [reply.ciphertext] if isinstance(reply, SealedShares) else reply.ciphertexts
            )
            if len(ciphertexts) != len(batch):
                failures.append(
                    IntegrityError(
                        f"node {name} handed over {len(ciphertexts)} of {len(batch)} sealed results"
                    )
                )
                continue
            cosigners.append((name, reply.cosigned_size))
            note = append_signature(note, reply.cosignature)
            shares.append([SealedShare(reply.node, reply.party_index, c) for c in ciphertexts])
        self._keep(checkpoint, note, cosigners)
        if failures:
            raise failures[0]
        return note, [tuple(node[i] for node in shares) for i in range(len(batch))]

    def _keep(self, checkpoint: str, note: str, cosigners: Sequence[tuple[str, int]]) -> None:
        """Remember ``note`` (``checkpoint`` as ``cosigners`` cosigned it); keep it in our log.

        Not synced: a crash may lose it, and the nodes' reports of what they cosigned
        take its place. A log that cannot keep it loses nothing released.
        """
        for name, size in cosigners:
            self._cosigned[name] = (size, note)
        if not cosigners:
            return
        try:
            with self.audit.batch(durable=False):
                self.audit.log.add_cosignatures(checkpoint, note)
        except GatewayError as err:
            log.warning("the cosigned checkpoint was not kept: %s", err.public_message)


def _ask(
    stub: node_pb2_grpc.NodeServiceStub,
    batch: Sequence[_Pending],
    releases: Sequence[DispatchEvidence],
    start: int,
    proof: list[bytes],
    shown: str,
) -> Any:
    """One node's release call (blocking): one query alone, or a batch under one checkpoint."""
    if len(batch) == 1:
        release = releases[0]
        request = node_pb2.ReleaseRequest(
            query_id=batch[0].query_id,
            checkpoint=release.checkpoint,
            entry=release.entry,
            index=release.index,
            inclusion=release.proof,
            from_size=start,
            consistency=proof,
            cosigned=shown,
        )
        return stub.Release(request, timeout=_RELEASE_TIMEOUT_S)
    many = node_pb2.ReleaseBatchRequest(
        checkpoint=releases[0].checkpoint,
        from_size=start,
        consistency=proof,
        cosigned=shown,
        releases=[
            node_pb2.ReleasedEntry(
                query_id=p.query_id, entry=r.entry, index=r.index, inclusion=r.proof
            )
            for p, r in zip(batch, releases, strict=True)
        ],
    )
    return stub.ReleaseBatch(many, timeout=_RELEASE_TIMEOUT_S)


_NOTHING = (0, "")


def _signing_key(pem: bytes) -> Ed25519PublicKey:
    key = x509.load_pem_x509_certificate(pem).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError("a node's signing certificate must hold an Ed25519 key")
    return key


def _newest_cosigned(
    heads: Sequence[str], witnesses: Mapping[str, tuple[str, Ed25519PublicKey]]
) -> dict[str, tuple[int, str]]:
    """Per node, the newest of ``heads`` (oldest first) it cosigned: its size, and the note."""
    found: dict[str, tuple[int, str]] = {}
    for note in reversed(heads):
        for name, (key_name, key) in witnesses.items():
            if name in found:
                continue
            try:
                verify_cosignature(note, key_name, key)
            except IntegrityError:
                continue
            found[name] = (parse_checkpoint(parse_note(note)[0]).size, note)
        if len(found) == len(witnesses):
            break
    return found
