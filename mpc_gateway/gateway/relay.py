"""How a result leaves the gateway: logged, witnessed by every node, relayed still sealed.

Once a plan's MPC steps are done, the gateway writes the query's
``result.released`` entry (naming every node's sealed shares by digest) and
seals a checkpoint over it. Every node then checks that checkpoint extends the
last one it cosigned (an RFC 9162 consistency proof from the size it reports),
cosigns it, records that in its witness log and hands over its shares, still
sealed to the receiver (``NodeService.Release``). Releases go one at a time, so
the checkpoints each node cosigns only grow. What the receiver gets is a
:class:`~mpc_gateway.orders.release.Relayed`: the gateway has no key to open it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import grpc

from mpc_gateway.audit.checkpoint import append_signature, parse_checkpoint, parse_note
from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import Blocks, Plan
from mpc_gateway.errors import GatewayError
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.gateway.recombine import Dispatched
from mpc_gateway.gateway.record import QueryRecord
from mpc_gateway.orders.release import Relayed, SealedShare
from mpc_gateway.pki import ConsortiumLayout, Identity
from mpc_gateway.proto.v1 import node_pb2
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.rpc.errors import error_from_rpc

__all__ = ["Relay"]

_RELEASE_TIMEOUT_S = 10.0


class Relay:
    def __init__(
        self, dispatcher: Dispatcher, audit: AuditTrail, layout: ConsortiumLayout, gateway: Identity
    ) -> None:
        self.dispatcher, self.audit = dispatcher, audit
        signers = [gateway, *(Identity("node", n, layout.trust_domain) for n in layout.nodes)]
        # what the receiver checks the gateway's signature and the cosignatures with
        self.signing_certificates = tuple(
            layout.signing_paths(who)[0].read_bytes() for who in signers
        )
        self._cosigned: dict[str, int] = {}  # per node: the size of our log it cosigned last
        self._lock = threading.Lock()

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
        with self._lock:
            for name, size in steps[-1].cosigned.items():
                self._cosigned.setdefault(name, size)
            release = query.released(plan, public, steps, total_ms)
            started = time.perf_counter()
            try:
                checkpoint, shares = self._witnessed(
                    query.query_id, release, self.audit.log.consistency_proof
                )
            except GatewayError as err:
                query.undelivered(err)
                raise
            release_ms = (time.perf_counter() - started) * 1000
        return Relayed(
            query_id=query.query_id,
            plan=plan,
            schema=schema,
            parties=len(self.dispatcher.parties),
            public=public,
            shares=shares,
            release=replace(release, checkpoint=checkpoint),
            signing_certificates=self.signing_certificates,
            sequence=steps[-1].order.sequence,
            lane=steps[-1].order.lane,
            rounds=len(steps),
            total_ms=total_ms + release_ms,
            mpc_ms=sum(s.mpc_ms for s in steps),
            local_ms=sum(s.local_ms for s in steps),
            release_ms=release_ms,
        )

    def _witnessed(
        self,
        query_id: str,
        release: DispatchEvidence,
        consistency: Callable[[int, int], list[bytes]],
    ) -> tuple[str, tuple[SealedShare, ...]]:
        """Every node's cosignature on the release's checkpoint, and its sealed shares."""
        size = parse_checkpoint(parse_note(release.checkpoint)[0]).size
        calls = []
        for name, stub in self.dispatcher.stubs:
            start = self._cosigned.get(name, 0)
            request = node_pb2.ReleaseRequest(
                query_id=query_id,
                checkpoint=release.checkpoint,
                entry=release.entry,
                index=release.index,
                inclusion=release.proof,
                from_size=start,
                consistency=consistency(start, size) if start <= size else [],  # a cut log
            )
            calls.append((name, stub.Release.future(request, timeout=_RELEASE_TIMEOUT_S)))
        note, shares, failures = release.checkpoint, [], []
        for name, call in calls:
            try:
                reply = call.result()
            except grpc.RpcError as err:
                failures.append(error_from_rpc(err, f"node {name}"))
                continue
            self._cosigned[name] = reply.cosigned_size
            note = append_signature(note, reply.cosignature)
            shares.append(SealedShare(reply.node, reply.party_index, reply.ciphertext))
        if failures:
            raise failures[0]
        return note, tuple(shares)
