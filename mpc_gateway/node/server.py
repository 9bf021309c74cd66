"""The node's gRPC face: a thin servicer over :class:`~mpc_gateway.node.service.Node`.

Only the consortium's gateway may call the node service (:func:`node_access`);
auditors read the witness log through the audit service.
"""

from __future__ import annotations

import logging
import time

import grpc

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.errors import IntegrityError
from mpc_gateway.lanes import is_lane
from mpc_gateway.node.service import Contribution, Node
from mpc_gateway.oprf import SignedRequest
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.rpc.audit_servicer import audit_service
from mpc_gateway.rpc.auth import current_caller
from mpc_gateway.rpc.drain import Gate
from mpc_gateway.rpc.server import Readiness, Service, build_server, serve_until_signalled
from mpc_gateway.settings import NodeSettings

__all__ = ["NodeServicer", "node_access", "node_services", "serve_node"]

log = logging.getLogger(__name__)


def node_access(gateway: str) -> dict[str, tuple[str, ...]]:
    """Every node method is for the consortium's gateway ``gateway/<gateway>`` only."""
    return {
        method: (f"gateway/{gateway}",)
        for method in (
            "Execute",
            "ExecuteBatch",
            "AbortSession",
            "OpenSession",
            "Release",
            "ReleaseBatch",
            "Pseudonymise",
        )
    }


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    def Execute(
        self, request: node_pb2.SignedOrder, context: grpc.ServicerContext
    ) -> node_pb2.ResultShares:
        done = self.node.execute(
            current_caller(),
            request.order,
            request.signature,
            _evidence(request.evidence),
            context.time_remaining(),
        )
        return self._shares(done)

    def ExecuteBatch(
        self, request: node_pb2.SignedBatch, context: grpc.ServicerContext
    ) -> node_pb2.BatchShares:
        done = self.node.execute_batch(
            current_caller(),
            list(request.orders),
            request.signature,
            [_evidence(e) for e in request.evidence],
            context.time_remaining(),
        )
        return node_pb2.BatchShares(results=[self._shares(d) for d in done])

    def _shares(self, done: Contribution) -> node_pb2.ResultShares:
        blocks = [
            node_pb2.ShareBlock(name=name, modulus=str(modulus), values=[str(v) for v in values])
            for name, (modulus, values) in done.blocks.items()
        ]
        return node_pb2.ResultShares(
            node=self.node.settings.name,
            party_index=self.node.party_index,
            blocks=blocks,
            local_ms=done.local_ms,
            mpc_ms=done.mpc_ms,
            sealed_sha256=done.sealed_sha256,
            sealed_size=done.sealed_size,
            cosigned_size=self.node.releases.cosigned_size,
        )

    def Release(
        self, request: node_pb2.ReleaseRequest, context: grpc.ServicerContext
    ) -> node_pb2.SealedShares:
        handed = self.node.releases.release(
            request.query_id,
            _released(request, request.checkpoint),
            request.from_size,
            list(request.consistency),
            request.cosigned,
        )
        return node_pb2.SealedShares(
            node=self.node.settings.name,
            party_index=self.node.party_index,
            ciphertext=handed.ciphertext,
            cosignature=handed.cosignature,
            cosigned_size=handed.cosigned_size,
        )

    def ReleaseBatch(
        self, request: node_pb2.ReleaseBatchRequest, context: grpc.ServicerContext
    ) -> node_pb2.SealedBatch:
        releases = [(r.query_id, _released(r, request.checkpoint)) for r in request.releases]
        ciphertexts, cosignature, size = self.node.releases.release_all(
            releases, request.from_size, list(request.consistency), request.cosigned
        )
        return node_pb2.SealedBatch(
            node=self.node.settings.name,
            party_index=self.node.party_index,
            ciphertexts=ciphertexts,
            cosignature=cosignature,
            cosigned_size=size,
        )

    def Pseudonymise(
        self, request: node_pb2.PseudonymOrder, context: grpc.ServicerContext
    ) -> node_pb2.PseudonymAnswers:
        done = self.node.pseudonyms.answer(
            str(current_caller()),
            request.query_id,
            _evidence(request.evidence),
            request.points,
            SignedRequest(
                request.request, request.request_signature, request.requester_certificate
            ),
        )
        return node_pb2.PseudonymAnswers(
            node=self.node.settings.name,
            party=done.key.party,
            threshold=done.key.threshold,
            points=done.points,
            proof=done.proof,
            key_statement=done.shown.statement,
            key_signature=done.shown.signature,
            signing_certificate=done.shown.signing_certificate,
        )

    def OpenSession(
        self, request: node_pb2.SignedOrder, context: grpc.ServicerContext
    ) -> node_pb2.SessionReply:
        order = self.node.open_session(
            request.order, request.signature, context.time_remaining(), request.cosigned
        )
        return node_pb2.SessionReply(
            epoch=order.epoch,
            lane=order.lane,
            cosigned_checkpoint=self.node.releases.cosigned_checkpoint,
        )

    def AbortSession(
        self, request: node_pb2.AbortRequest, context: grpc.ServicerContext
    ) -> node_pb2.AbortReply:
        lane = request.lane or "short"  # a gateway from before lanes had one session
        if not is_lane(lane):
            raise IntegrityError(f"there is no MPC lane {lane[:40]!r}")
        self.node.abort(lane, request.epoch, request.reason)
        return node_pb2.AbortReply()


def _released(
    release: node_pb2.ReleaseRequest | node_pb2.ReleasedEntry, checkpoint: str
) -> DispatchEvidence:
    """A release entry and its inclusion proof, in ``checkpoint``."""
    return DispatchEvidence(
        entry=release.entry,
        index=release.index,
        proof=tuple(release.inclusion),
        checkpoint=checkpoint,
    )


def _evidence(proof: node_pb2.AuditEvidence) -> DispatchEvidence:
    return DispatchEvidence(
        entry=proof.entry, index=proof.index, proof=tuple(proof.proof), checkpoint=proof.checkpoint
    )


def node_services(node: Node) -> list[Service]:
    """Everything a node serves, with who may call what."""
    access = node_access(node.settings.gateway)
    return [
        Service.of(node_pb2, node_pb2_grpc, "NodeService", NodeServicer(node), access),
        audit_service(node.witness.log),
    ]


def serve_node(settings: NodeSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain and stop cleanly (the MPC worker included).

    Draining refuses new orders (UNAVAILABLE) and lets the orders under way finish
    within ``shutdown_grace_s``; closing the node then ends any still running.
    """
    node = Node(settings)
    services = node_services(node)
    # a draining node still lets the gateway abort a session and collect the sealed shares of
    # an order it completed: those end work, they start none
    gate = Gate(f"node {settings.name}", always=("AbortSession", "Release", "ReleaseBatch"))
    server, port, health = build_server(
        settings.listen, node.tls, services, node.layout.trust_domain, gate=gate
    )
    readiness = Readiness(health, [s.name for s in services])
    node.witness.log.watch_storage(readiness.storage)
    readiness.recheck("storage", node.witness.log.recheck_storage)
    server.start()
    log.info(
        "node %s (MPC party %d) serving on port %d; MPC ports %d (short lane), %d (long); "
        "datasets: %s",
        settings.name,
        node.party_index,
        port,
        settings.mpc_port,
        settings.mpc_long_port,
        ", ".join(f"{n} ({d.rows} rows)" for n, d in node.datasets.items()),
    )

    def drain(deadline: float) -> None:
        if not gate.wait_idle(deadline - time.monotonic()):
            log.warning(
                "node %s: %d orders did not finish in time; ending them", settings.name, gate.busy
            )
        node.close()

    serve_until_signalled(server, health, gate, drain, settings.shutdown_grace_s)
