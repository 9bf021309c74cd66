"""A node's part in persons' pseudonyms: raise blinded ids to its share of the joint key.

The gateway forwards a requester's blinded national ids (:mod:`mpc_gateway.oprf`)
with the requester's signed request and the proof that it logged the request:
its ``pseudonyms.requested`` entry, which names the requester, the purpose, how
many points, their digest and the signed request's, the inclusion proof and the
signed checkpoint. The node checks all of it (the signature: the gateway cannot
ask in the name of a requester who did not, :mod:`mpc_gateway.oprf.request`), then its
own policy's ``pseudonyms`` section (who, why), that it has not answered this
signed request before (a gateway replaying one within its time, under a new
log entry, would spend the requester's allowance again), and the requester's
daily allowance, records the evaluation in its witness log, and only then answers.
It never sees a national id or a pseudonym: each point is uniform in the group.
With its answers it sends a proof that they use its key share, and its signed
statement of the key's public values (:mod:`mpc_gateway.oprf.proof`), so the
requester can check every answer against the key itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpc_gateway.audit.evidence import DispatchEvidence, verify_logged
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.errors import (
    BudgetExhaustedError,
    ConfigurationError,
    GatewayError,
    IntegrityError,
    InvalidRequestError,
    PolicyDeniedError,
)
from mpc_gateway.oprf import (
    MAX_POINTS,
    REQUESTED,
    CheckedPoints,
    KeyShare,
    SignedRequest,
    check_points,
    check_request,
    evaluate,
    key_statement,
    load_key_share,
    points_sha256,
    prove,
    request_sha256,
)
from mpc_gateway.policy import Policy, UsageLedger, usage_key

__all__ = ["Evaluated", "Evaluator", "KeyIdentity"]

_ANSWERED = "pseudonym-request:"
"""The usage ledger's key prefix of the signed requests a node answered (their digests)."""


@dataclass(frozen=True)
class KeyIdentity:
    """What a node shows with every answer: its statement of the key, signed, and its cert."""

    statement: bytes
    signature: bytes
    signing_certificate: bytes


@dataclass(frozen=True)
class _Admitted:
    """A request that passed every check: its points, checked, who asked, and the digests."""

    points: CheckedPoints
    requester: str
    points_sha256: str
    request_sha256: str


@dataclass(frozen=True)
class Evaluated:
    """One request's answers, their proof, and who answered with which share."""

    key: KeyShare
    points: list[bytes]
    proof: bytes
    shown: KeyIdentity


class Evaluator:
    """Everything a node checks and records before it evaluates blinded ids."""

    def __init__(
        self,
        node: str,
        party: int,
        parties: int,
        key_path: Path | None,
        policy: Policy,
        usage: UsageLedger,
        witness: AuditTrail,
        gateway_key: Ed25519PublicKey,
        gateway_log: str,
        signing: tuple[Ed25519PrivateKey, bytes],  # the node's signing key and its cert (PEM)
        ca: x509.Certificate,
        trust_domain: str,
    ) -> None:
        self.node, self.policy, self.usage, self.witness = node, policy, usage, witness
        self._ca, self._domain = ca, trust_domain
        self._gateway_key, self._gateway_log = gateway_key, gateway_log
        self.key = None if key_path is None else load_key_share(key_path)
        if self.key is not None and (self.key.party, self.key.parties) != (party, parties):
            raise ConfigurationError(
                f"{key_path} is party {self.key.party}'s share among {self.key.parties} nodes; "
                f"{node} is party {party} of {parties}"
            )
        self._shown: KeyIdentity | None = None
        self._pruned: date | None = None
        if self.key is not None:
            statement = key_statement(node, party, self.key.public)
            self._shown = KeyIdentity(statement, signing[0].sign(statement), signing[1])

    def answer(
        self,
        caller: str,
        query_id: str,
        evidence: DispatchEvidence,
        points: Sequence[bytes],
        signed: SignedRequest,
    ) -> Evaluated:
        """This node's answers, once every check passed; refusals are witnessed too."""
        try:
            admitted = self._admit(query_id, evidence, points, signed)
        except GatewayError as err:
            err.query_id = err.query_id or query_id
            reason = err.public_message[:2000]
            self._witness(
                caller, query_id, "pseudonyms.refused", "refused", len(points), reason=reason
            )
            raise
        key, shown = self.key, self._shown
        assert key is not None and shown is not None  # _admit refuses without one
        try:
            self._witness(
                caller,
                query_id,
                "pseudonyms.evaluated",
                "contributed",
                len(points),
                requester=admitted.requester,
                points_sha256=admitted.points_sha256,
                request_sha256=admitted.request_sha256,
                gateway_checkpoint=evidence.checkpoint,
                request_index=evidence.index,
            )
            answers = evaluate(key.share, admitted.points)
            return Evaluated(key, answers, prove(key.share, points, answers), shown)
        except BaseException:
            self.usage.release(usage_key("pseudonyms", admitted.requester), len(points))
            raise

    def _admit(
        self,
        query_id: str,
        evidence: DispatchEvidence,
        points: Sequence[bytes],
        signed: SignedRequest,
    ) -> _Admitted:
        """The request, once every check passed and the ids counted."""
        if self.key is None:
            raise ConfigurationError(
                f"{self.node} holds no share of the pseudonym key: run the key ceremony "
                "(mpcgw oprf deal, then combine) and set pseudonym_key_share"
            )
        _, event = verify_logged(
            evidence, query_id, REQUESTED, self._gateway_key, self._gateway_log
        )
        details, digest = event.details, points_sha256(points)
        if not 1 <= len(points) <= MAX_POINTS:  # even if the gateway logged them
            raise InvalidRequestError(
                f"a request carries 1 to {MAX_POINTS} blinded national ids, not {len(points)}"
            )
        if details.get("count") != len(points) or details.get("points_sha256") != digest:
            raise IntegrityError(
                f"the points sent are not the {details.get('count')} the gateway logged for "
                f"query {query_id}"
            )
        checked = check_points(points)
        requester, purpose = event.actor, str(details.get("purpose", ""))
        issued = check_request(
            signed, self._ca, self._domain, requester, purpose, len(points), digest
        )
        request_digest = request_sha256(signed)
        if details.get("request_sha256") != request_digest:
            raise IntegrityError(
                f"the request {requester} signed is not the one the gateway logged for "
                f"query {query_id}"
            )
        refusal = self.policy.pseudonym_refusal(requester, purpose)
        if refusal is not None:
            raise PolicyDeniedError(refusal)
        assert self.policy.pseudonyms is not None  # else refused above
        self._forget_stale()
        # under the day it was issued, so a replay after midnight finds it; not synced on its
        # own: the allowance's write below syncs the file, and nothing is answered before it
        issued_day = datetime.fromtimestamp(issued / 1000, UTC).date()
        if not self.usage.record_if_below(
            _ANSWERED + request_digest, 1, day=issued_day, durable=False
        ):
            raise IntegrityError(
                f"{self.node} answered the request {requester} signed (sha256 "
                f"{request_digest[:16]}...) already: each signed request is answered once; "
                "a new one must be signed"
            )
        limit = self.policy.pseudonyms.limit(requester)
        if not self.usage.record_if_below(
            usage_key("pseudonyms", requester), limit, count=len(points)
        ):
            raise BudgetExhaustedError(
                f"refused by rule pseudonyms.daily_limit: {self.node} evaluates {limit} national "
                f"ids a day for {requester}; {len(points)} more would pass it",
                rule="pseudonyms.daily_limit",
            )
        return _Admitted(checked, requester, digest, request_digest)

    def _forget_stale(self) -> None:
        """Once a day, forget the requests too old to be fresh (issued before yesterday)."""
        today = self.usage.today()
        if self._pruned != today:
            self.usage.forget(_ANSWERED, before=today - timedelta(days=1))
            self._pruned = today

    def _witness(
        self,
        caller: str,
        query_id: str,
        kind: str,
        decision: str,
        count: int,
        **details: object,
    ) -> None:
        details["count"] = count
        with self.witness.batch():
            self.witness.record(kind, caller, query_id=query_id, decision=decision, details=details)
            self.witness.seal()
