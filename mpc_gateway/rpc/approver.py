"""The approver's client: see the queries that wait for you, sign your decision locally."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from mpc_gateway.computations import plan_from_json
from mpc_gateway.errors import IntegrityError, InvalidQueryError
from mpc_gateway.pki import Identity, load_layout, load_signing_key
from mpc_gateway.pki.ca import tls_from_pki
from mpc_gateway.policy import ApprovalBody, sign_approval
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc
from mpc_gateway.rpc.client import ServiceClient

__all__ = ["ApproverClient", "PendingQuery"]


@dataclass(frozen=True)
class PendingQuery:
    """A query waiting for an approver: the exact plan to sign, by its hash, and who must decide."""

    query_id: str
    analyst: str
    dataset: str
    purpose: str
    plan_hash: str
    plan_json: str
    waiting_for: tuple[str, ...]
    needs: tuple[gateway_pb2.ApprovalNeed, ...]
    submitted_ms: int


class ApproverClient(ServiceClient):
    """An approver's side: see the queries that wait for you, sign your decision locally.

    The signing key never leaves the approver: the decision is signed here, over
    the plan hash this client recomputed from the plan it was shown.
    """

    def __init__(
        self, pki_dir: str | Path, identity: str, address: str, timeout_s: float = 30.0
    ) -> None:
        layout = load_layout(Path(pki_dir))
        self.identity = Identity.parse(identity, layout.trust_domain)
        cert, key = layout.signing_paths(self.identity)
        self._cert, self._key = cert.read_bytes(), load_signing_key(key)
        super().__init__(
            address, tls_from_pki(pki_dir, identity), timeout_s, f"gateway at {address}"
        )
        self._stub = gateway_pb2_grpc.ApprovalServiceStub(self._channel)

    def pending(self) -> list[PendingQuery]:
        reply = self._call(self._stub.ListPending, gateway_pb2.ListPendingRequest())
        return [
            PendingQuery(
                q.query_id,
                q.analyst,
                q.dataset,
                q.purpose,
                q.plan_hash,
                q.plan_json,
                tuple(q.waiting_for),
                tuple(q.needs),
                q.submitted_ms,
            )
            for q in reply.queries
        ]

    def decide(self, query_id: str, decision: Literal["approve", "reject"], reason: str) -> str:
        """Approve or reject query ``query_id``; returns its state afterwards."""
        query = next((q for q in self.pending() if q.query_id == query_id), None)
        if query is None:
            raise InvalidQueryError(f"query {query_id} is not waiting for your decision")
        plan = plan_from_json(query.plan_json)
        if plan.plan_hash != query.plan_hash:
            raise IntegrityError(
                "the gateway's plan does not hash to the plan hash it asks you to sign"
            )
        need = next(n for n in query.needs if str(self.identity) in n.approvers)
        body = ApprovalBody.issue(
            plan_hash=plan.plan_hash,
            query_id=query_id,
            approver=str(self.identity),
            decision=decision,
            reason=reason,
            institution=need.institution,
            now=datetime.now(UTC),
            valid_for_hours=need.valid_for_hours,
        )
        signed = sign_approval(body, self._key, self._cert)
        request = gateway_pb2.ApprovalDecision(
            query_id=query_id, signed_approval_json=signed.model_dump_json()
        )
        return str(self._call(self._stub.Decide, request).state)
