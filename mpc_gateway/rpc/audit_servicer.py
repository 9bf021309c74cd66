"""The audit API over one audit log: the gateway's log, or a node's witness log.

Auditors may read everything; analysts only the events of their own queries
(ListEvents filtered to them as actor); :data:`AUDIT_ACCESS` says so for the
server's interceptor, which refuses every other role.
"""

from __future__ import annotations

import grpc

from mpc_gateway.audit.checkpoint import parse_checkpoint, parse_note
from mpc_gateway.audit.log import AuditLog
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.proto.v1 import audit_pb2, audit_pb2_grpc
from mpc_gateway.rpc.auth import current_caller
from mpc_gateway.rpc.server import Service

__all__ = ["AUDIT_ACCESS", "AuditServicer", "audit_service"]

AUDIT_ACCESS = {
    "ListEvents": ("auditor/*", "analyst/*"),
    "GetTreeHead": ("auditor/*",),
    "GetInclusionProof": ("auditor/*",),
    "GetConsistencyProof": ("auditor/*",),
    "Export": ("auditor/*",),
}


def _size(note: str) -> int:
    return parse_checkpoint(parse_note(note)[0]).size


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def ListEvents(
        self, request: audit_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ListEventsResponse:
        caller = current_caller()
        actor = str(caller) if caller.role == "analyst" else request.actor or None
        found = self.log.events(
            kind=request.kind or None,
            actor=actor,  # analysts see their own queries only
            dataset=request.dataset or None,
            decision=request.decision or None,
            query_id=request.query_id or None,
            since_ms=request.since_ms or None,
            until_ms=request.until_ms or None,
        )
        found = found[::-1][: request.limit or None]
        records = [audit_pb2.EventRecord(index=e.index, entry=e.event.entry_bytes()) for e in found]
        return audit_pb2.ListEventsResponse(events=records)

    def _head(self) -> audit_pb2.TreeHead:
        note = self.log.signed_tree_head()
        return audit_pb2.TreeHead(
            checkpoint=note, key_name=self.log.key_name, origin=self.log.origin, size=_size(note)
        )

    def GetTreeHead(
        self, request: audit_pb2.TreeHeadRequest, context: grpc.ServicerContext
    ) -> audit_pb2.TreeHead:
        return self._head()

    def GetInclusionProof(
        self, request: audit_pb2.InclusionProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.InclusionProof:
        head = self._head()
        if request.index >= head.size:
            raise InvalidRequestError(
                f"entry {request.index} does not exist: the log has {head.size} entries"
            )
        return audit_pb2.InclusionProof(
            index=request.index,
            tree_size=head.size,
            entry=self.log.entry(request.index),
            hashes=self.log.inclusion_proof(request.index, head.size),
            checkpoint=head.checkpoint,
        )

    def GetConsistencyProof(
        self, request: audit_pb2.ConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ConsistencyProof:
        """From ``old_size`` to ``new_size`` (0: a fresh head), with the head signed there."""
        if request.new_size:
            checkpoint = self._signed_at(request.new_size)
        else:
            checkpoint = self._head().checkpoint
        new_size = _size(checkpoint)
        if request.old_size > new_size:
            raise InvalidRequestError(
                f"size {request.old_size} is beyond the {new_size} entries of the head asked for"
            )
        return audit_pb2.ConsistencyProof(
            old_size=request.old_size,
            new_size=new_size,
            checkpoint=checkpoint,
            hashes=self.log.consistency_proof(request.old_size, new_size),
        )

    def _signed_at(self, size: int) -> str:
        """The latest tree head this log signed at exactly ``size`` entries."""
        found = [note for note in self.log.tree_heads() if _size(note) == size]
        if not found:
            raise InvalidRequestError(
                f"the log signed no tree head at size {size} (it has {self.log.size()} entries)"
            )
        return found[-1]

    def Export(
        self, request: audit_pb2.ExportRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ExportResponse:
        self.log.signed_tree_head()
        return audit_pb2.ExportResponse(
            entries=self.log.entries(),
            tree_heads=self.log.tree_heads(),
            key_name=self.log.key_name,
            origin=self.log.origin,
        )


def audit_service(log: AuditLog) -> Service:
    """The audit API over ``log``, ready for :func:`~mpc_gateway.rpc.server.build_server`."""
    return Service.of(audit_pb2, audit_pb2_grpc, "AuditService", AuditServicer(log), AUDIT_ACCESS)
