"""How a result leaves the gateway: logged, witnessed by every node, relayed still sealed.

Once a plan's MPC steps are done, the gateway writes the query's
``result.released`` entry (naming every node's sealed shares by digest) and
seals a checkpoint over it; every node checks that checkpoint extends the last
one it cosigned, cosigns it and hands over its shares, still sealed to the
receiver (:meth:`Dispatcher.release`). Releases go one at a time, so the
checkpoints each node cosigns only grow. What the receiver gets is a
:class:`~mpc_gateway.orders.release.Relayed`: the gateway has no key to open it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import Blocks, Plan
from mpc_gateway.errors import GatewayError
from mpc_gateway.gateway.dispatch import Dispatched, Dispatcher
from mpc_gateway.gateway.record import QueryRecord
from mpc_gateway.orders.release import Relayed
from mpc_gateway.pki import ConsortiumLayout, Identity
from mpc_gateway.query.schema import DatasetSchema

__all__ = ["Relay"]


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
            release = query.released(plan, public, steps, total_ms)
            started = time.perf_counter()
            try:
                checkpoint, shares = self.dispatcher.release(
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
            rounds=len(steps),
            total_ms=total_ms + release_ms,
            mpc_ms=sum(s.mpc_ms for s in steps),
            local_ms=sum(s.local_ms for s in steps),
            release_ms=release_ms,
        )
