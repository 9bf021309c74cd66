"""The audit API over one audit log: the gateway's log, or a node's witness log.

Auditors may read everything; analysts only the events of their own queries
(ListEvents filtered to them as actor); every other role is refused.
"""

from __future__ import annotations

import grpc

from mpc_gateway.audit.checkpoint import parse_checkpoint, parse_note
from mpc_gateway.audit.log import AuditLog
from mpc_gateway.errors import InvalidRequestError, PolicyDeniedError
from mpc_gateway.pki import Identity
from mpc_gateway.proto.v1 import audit_pb2, audit_pb2_grpc
from mpc_gateway.rpc.auth import caller_identity
from mpc_gateway.rpc.errors import translate_errors
from mpc_gateway.rpc.server import Service

__all__ = ["AuditServicer", "audit_service"]


def _auditor(context: grpc.ServicerContext) -> Identity:
    caller = caller_identity(context)
    if caller.role != "auditor":
        raise PolicyDeniedError(f"{caller} may not read the audit log: it needs the role auditor")
    return caller


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def ListEvents(
        self, request: audit_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ListEventsResponse:
        with translate_errors(context):
            caller = caller_identity(context)
            actor = request.actor or None
            if caller.role == "analyst":
                actor = str(caller)  # analysts see their own queries only
            elif caller.role != "auditor":
                raise PolicyDeniedError(f"{caller} may not read the audit log")
            found = self.log.events(
                kind=request.kind or None,
                actor=actor,
                dataset=request.dataset or None,
                decision=request.decision or None,
                query_id=request.query_id or None,
                since_ms=request.since_ms or None,
                until_ms=request.until_ms or None,
            )
            found = found[::-1][: request.limit or None]
            records = [
                audit_pb2.EventRecord(index=e.index, entry=e.event.entry_bytes()) for e in found
            ]
            return audit_pb2.ListEventsResponse(events=records)
        raise AssertionError("unreachable")

    def _head(self) -> audit_pb2.TreeHead:
        note = self.log.signed_tree_head()
        size = parse_checkpoint(parse_note(note)[0]).size
        return audit_pb2.TreeHead(
            checkpoint=note, key_name=self.log.key_name, origin=self.log.origin, size=size
        )

    def GetTreeHead(
        self, request: audit_pb2.TreeHeadRequest, context: grpc.ServicerContext
    ) -> audit_pb2.TreeHead:
        with translate_errors(context):
            _auditor(context)
            return self._head()
        raise AssertionError("unreachable")

    def GetInclusionProof(
        self, request: audit_pb2.InclusionProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.InclusionProof:
        with translate_errors(context):
            _auditor(context)
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
        raise AssertionError("unreachable")

    def GetConsistencyProof(
        self, request: audit_pb2.ConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ConsistencyProof:
        with translate_errors(context):
            _auditor(context)
            head = self._head()
            if not 0 <= request.old_size <= head.size:
                raise InvalidRequestError(
                    f"size {request.old_size} is beyond the log's {head.size} entries"
                )
            return audit_pb2.ConsistencyProof(
                old_size=request.old_size,
                new_size=head.size,
                checkpoint=head.checkpoint,
                hashes=self.log.consistency_proof(request.old_size, head.size),
            )
        raise AssertionError("unreachable")

    def Export(
        self, request: audit_pb2.ExportRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ExportResponse:
        with translate_errors(context):
            _auditor(context)
            self.log.signed_tree_head()
            return audit_pb2.ExportResponse(
                entries=self.log.entries(),
                tree_heads=self.log.tree_heads(),
                key_name=self.log.key_name,
                origin=self.log.origin,
            )
        raise AssertionError("unreachable")


def audit_service(log: AuditLog) -> Service:
    """The audit API over ``log``, ready for :func:`~mpc_gateway.rpc.server.build_server`."""
    return Service.of(audit_pb2, audit_pb2_grpc, "AuditService", AuditServicer(log))
