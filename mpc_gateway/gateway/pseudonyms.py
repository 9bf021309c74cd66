"""The gateway's part in persons' pseudonyms: check, log, ask every node, relay the answers.

A requester (an analyst screening a person, an institution pseudonymising its
customers as ``node/<name>``) sends national ids blinded (:mod:`mpc_gateway.oprf`).
The gateway checks the requester's signature on the request
(:mod:`mpc_gateway.oprf.request`; every node checks it again, so the gateway
cannot ask in anyone's name), the points and every policy's ``pseudonyms``
section and daily allowance, logs a ``pseudonyms.requested`` entry (the
requester, purpose, how many points, their digest and the signed request's;
never a point), seals it under a signed head and sends the points, the signed
request and that evidence to every node. It relays every node's
answers and logs the outcome. What it sees is uniform group points: it learns
how many ids were asked, by whom and why, nothing of the ids or pseudonyms.
Every node must answer: t + 1 proved answers give the pseudonyms, and the rest
outvote a node whose answers do not prove out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import digest_if_long
from mpc_gateway.errors import (
    BudgetExhaustedError,
    GatewayError,
    IntegrityError,
    InvalidRequestError,
    PolicyDeniedError,
)
from mpc_gateway.gateway.blame import root_cause
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.gateway.governance import Governance
from mpc_gateway.oprf import (
    MAX_POINTS,
    REQUESTED,
    SignedRequest,
    check_points,
    check_request,
    points_sha256,
    request_sha256,
)
from mpc_gateway.pki import Identity
from mpc_gateway.policy import usage_key
from mpc_gateway.proto.v1 import node_pb2

__all__ = ["Answers", "PseudonymRelay"]

_PURPOSE_CHARS = 500


@dataclass(frozen=True)
class Answers:
    """Every node's answers to one request, in party order."""

    query_id: str
    threshold: int
    nodes: tuple[node_pb2.PseudonymAnswers, ...]


class PseudonymRelay:
    def __init__(
        self,
        governance: Governance,
        audit: AuditTrail,
        dispatcher: Dispatcher,
        timeout_s: float,
        ca: x509.Certificate,
    ) -> None:
        self.policies, self.ledger = governance.policies, governance.ledger
        self.audit, self.dispatcher, self.timeout_s = audit, dispatcher, timeout_s
        self.ca = ca

    def pseudonymise(
        self, caller: Identity, points: Sequence[bytes], purpose: str, signed: SignedRequest
    ) -> Answers:
        """Every node's answers for ``points``; a refusal or failure is logged and raised."""
        query_id, who = uuid.uuid4().hex, str(caller)
        try:
            digest = points_sha256(points)
            check_request(signed, self.ca, caller.trust_domain, who, purpose, len(points), digest)
            self._admit(who, points, purpose)
        except GatewayError as err:
            err.query_id = query_id
            self._ended(query_id, who, "pseudonyms.refused", "refused", len(points), err)
            raise
        try:
            evidence = self.audit.sealed(
                [
                    lambda: self.audit.record(
                        REQUESTED,
                        who,
                        query_id=query_id,
                        decision="accepted",
                        details={
                            "purpose": purpose,
                            "count": len(points),
                            "points_sha256": digest,
                            "request_sha256": request_sha256(signed),
                        },
                    )
                ]
            )[0]
            order = node_pb2.PseudonymOrder(
                query_id=query_id,
                evidence=node_pb2.AuditEvidence(
                    entry=evidence.entry,
                    index=evidence.index,
                    proof=list(evidence.proof),
                    checkpoint=evidence.checkpoint,
                ),
                points=list(points),
                request=signed.body,
                request_signature=signed.signature,
                requester_certificate=signed.certificate,
            )
            answers = self._ask_every_node(order)
        except GatewayError as err:
            self.ledger.release(usage_key("pseudonyms", who), len(points))
            err.query_id = query_id
            self._ended(query_id, who, "pseudonyms.failed", "failed", len(points), err)
            raise
        self._ended(query_id, who, "pseudonyms.answered", "released", len(points))
        return Answers(query_id, answers[0].threshold, tuple(answers))

    def _admit(self, who: str, points: Sequence[bytes], purpose: str) -> None:
        if not 1 <= len(points) <= MAX_POINTS:
            raise InvalidRequestError(
                f"a request carries 1 to {MAX_POINTS} blinded national ids, not {len(points)}"
            )
        if len(purpose) > _PURPOSE_CHARS or not purpose.strip():
            raise InvalidRequestError(f"give a purpose of 1 to {_PURPOSE_CHARS} characters")
        check_points(points)
        for policy in self.policies:
            refusal = policy.pseudonym_refusal(who, purpose)
            if refusal is not None:
                raise PolicyDeniedError(refusal)
        limit = min(p.pseudonyms.limit(who) for p in self.policies if p.pseudonyms is not None)
        if not self.ledger.record_if_below(usage_key("pseudonyms", who), limit, count=len(points)):
            raise BudgetExhaustedError(
                f"refused by rule pseudonyms.daily_limit: {limit} national ids a day for "
                f"{who}; {len(points)} more would pass it",
                rule="pseudonyms.daily_limit",
            )

    def _ask_every_node(self, order: node_pb2.PseudonymOrder) -> list[node_pb2.PseudonymAnswers]:
        calls = self.dispatcher.calls.every_node(
            lambda _, stub: stub.Pseudonymise(order, timeout=self.timeout_s)
        )
        replies: list[node_pb2.PseudonymAnswers | GatewayError] = []
        for _, call in calls:
            try:
                replies.append(call.result())
            except GatewayError as err:
                replies.append(err)
        failures = [r for r in replies if isinstance(r, GatewayError)]
        if failures:
            raise root_cause(failures)
        answers = [r for r in replies if not isinstance(r, GatewayError)]
        parties = [a.party for a in answers]
        if sorted(parties) != list(range(1, len(answers) + 1)) or {
            a.threshold for a in answers
        } != {answers[0].threshold}:
            raise IntegrityError(
                "the nodes' key shares do not fit together (parties "
                f"{parties}, thresholds {sorted({a.threshold for a in answers})}): "
                "run the pseudonym key's ceremony again"
            )
        for name, answer in zip((n for n, _ in self.dispatcher.stubs), answers, strict=True):
            if len(answer.points) != len(order.points):
                raise IntegrityError(
                    f"node {name} answered {len(answer.points)} of {len(order.points)} points"
                )
        return answers

    def _ended(
        self,
        query_id: str,
        who: str,
        kind: str,
        decision: str,
        count: int,
        err: GatewayError | None = None,
    ) -> None:
        details: dict[str, object] = {"count": count}
        if err is not None:
            details["reason"] = digest_if_long(err.public_message, 2000)
        with self.audit.batch():
            self.audit.record(kind, who, query_id=query_id, decision=decision, details=details)
            self.audit.seal()
