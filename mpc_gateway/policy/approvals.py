"""Signed approvals: a named approver's decision on one exact query.

Where a dataset policy has an ``approval`` rule, a query waits until enough of
the listed approvers have signed its plan hash. An approval is an
:class:`ApprovalBody` (plan hash, approver, decision, reason, validity,
institution) signed with the approver's Ed25519 key; the signed bytes are the
canonical bytes of the body (:mod:`mpc_gateway.canonical`), and the approver's
signing certificate from the consortium CA travels with it.

Errors of :func:`verify_approval`, one reason each:

* certificate not issued by the consortium CA, or signature that does not
  verify (another key, altered body): :class:`IntegrityError`;
* certificate of another identity than the named approver, or expired:
  :class:`UnauthenticatedError`;
* approver not listed in the policy's rule: :class:`PolicyDeniedError`;
* authentic but not applicable here (another query's plan hash, another
  institution, expired or not yet valid): :class:`ApprovalMissingError`. An
  authentic approval of a different query is not tampering; it just leaves this
  query without approval.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import ApprovalMissingError, PolicyDeniedError
from mpc_gateway.pki.identity import DEFAULT_TRUST_DOMAIN, Identity
from mpc_gateway.pki.signing import load_verified_signing_cert, sign, verify
from mpc_gateway.policy.decision import RequiredApproval, whose
from mpc_gateway.policy.models import ApprovalRule

__all__ = [
    "ApprovalBody",
    "SignedApproval",
    "ApprovalStatus",
    "sign_approval",
    "verify_approval",
    "approvals_satisfied",
    "require_approvals",
]

_HOUR_MS = 3_600_000


def _reason(text: str) -> str:
    if not text.strip():
        raise ValueError("an approval or rejection needs a reason")
    return text


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _ms(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp() * 1000)


class ApprovalBody(BaseModel):
    """What an approver signs: their decision on query ``query_id``, whose plan is ``plan_hash``.

    The query id binds a decision to the one query it was given on: two identical
    queries (the same plan) each need their own, at the gateway and at every node.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mpcgw.approval.v1"] = "mpcgw.approval.v1"
    plan_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    query_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    approver: str = Field(pattern=r"^approver/[a-z0-9][a-z0-9._-]{0,62}$")
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Field(max_length=1000), AfterValidator(_reason)]
    issued_at_ms: int = Field(ge=0)
    expires_at_ms: int = Field(ge=0)
    institution: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")

    @model_validator(mode="after")
    def _period(self) -> ApprovalBody:
        if self.expires_at_ms <= self.issued_at_ms:
            raise ValueError("an approval must expire after it is issued")
        return self

    @classmethod
    def issue(
        cls,
        *,
        plan_hash: str,
        query_id: str,
        approver: str,
        decision: Literal["approve", "reject"],
        reason: str,
        institution: str,
        now: datetime,
        valid_for_hours: int = 24,
    ) -> ApprovalBody:
        """A body issued at ``now``, valid for ``valid_for_hours``."""
        issued = _ms(now)
        return cls(
            plan_hash=plan_hash,
            query_id=query_id,
            approver=approver,
            decision=decision,
            reason=reason,
            issued_at_ms=issued,
            expires_at_ms=issued + valid_for_hours * _HOUR_MS,
            institution=institution,
        )

    def signed_bytes(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json"))


class SignedApproval(BaseModel):
    """An approval body, its Ed25519 signature and the approver's signing certificate.

    In JSON, ``signature`` and ``certificate_pem`` are base64.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    body: ApprovalBody
    signature: bytes = Field(min_length=64, max_length=64)
    certificate_pem: bytes = Field(max_length=16_384)


class ApprovalStatus(NamedTuple):
    """Whether a rule is satisfied; who has yet to decide; who rejected, and why."""

    ok: bool
    missing: list[str]
    rejected_by: list[tuple[str, str]]


def sign_approval(
    body: ApprovalBody, key: ed25519.Ed25519PrivateKey, cert_pem: bytes
) -> SignedApproval:
    """Sign ``body`` with the approver's key; ``cert_pem`` is their signing certificate."""
    return SignedApproval(
        body=body, signature=sign(key, body.signed_bytes()), certificate_pem=cert_pem
    )


def _check_applies(
    body: ApprovalBody,
    plan_hash: str,
    rule: ApprovalRule,
    now_ms: int,
    institution: str | None,
    query_id: str | None,
) -> None:
    who = body.approver
    if institution is not None and body.institution != institution:
        raise ApprovalMissingError(
            f"the approval by {who} was given for {body.institution}, not {institution}"
        )
    if who not in rule.approvers:
        raise PolicyDeniedError(
            f"{who} is not an approver under {whose(body.institution)}; "
            f"its approvers are {', '.join(rule.approvers)}"
        )
    if body.plan_hash != plan_hash:
        raise ApprovalMissingError(
            f"the approval by {who} is for query {body.plan_hash[:16]}..., "
            f"not this query {plan_hash[:16]}...: it does not approve this query"
        )
    if query_id is not None and body.query_id != query_id:
        raise ApprovalMissingError(
            f"the decision by {who} was given on query {body.query_id}, not on query "
            f"{query_id}: each query needs a decision of its own"
        )
    if body.issued_at_ms > now_ms:
        raise ApprovalMissingError(
            f"the approval by {who} is not valid before {_iso(body.issued_at_ms)}"
        )
    ends = min(body.expires_at_ms, body.issued_at_ms + rule.valid_for_hours * _HOUR_MS)
    if now_ms >= ends:
        raise ApprovalMissingError(
            f"the approval by {who} expired at {_iso(ends)}: ask {who} to approve again"
        )


def verify_approval(
    signed: SignedApproval,
    plan_hash: str,
    ca_cert: x509.Certificate,
    policy: ApprovalRule,
    now: datetime,
    *,
    institution: str | None = None,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    query_id: str | None = None,
) -> ApprovalBody:
    """The body of ``signed`` once it is an authentic, applicable decision on ``plan_hash``.

    Checks, in order: the certificate was issued by ``ca_cert`` to the named approver
    and is valid at ``now``; the signature verifies; the body is for ``institution``
    (when given); the approver is listed in ``policy``; the plan hash is exactly
    ``plan_hash``; ``now`` is within the approval's validity, capped at the rule's
    ``valid_for_hours`` after issue; with ``query_id``, the body names that query. The
    decision itself (approve or reject) is
    returned, not judged. Raises as listed in the module docstring.
    """
    body = signed.body
    _, _, name = body.approver.partition("/")
    approver = Identity("approver", name, trust_domain)
    public_key = load_verified_signing_cert(signed.certificate_pem, ca_cert, approver, now)
    verify(public_key, signed.signature, body.signed_bytes(), what=f"approval by {approver}")
    _check_applies(body, plan_hash, policy, _ms(now), institution, query_id)
    return body


def approvals_satisfied(
    rule: ApprovalRule,
    signed_approvals: Iterable[SignedApproval],
    plan_hash: str,
    ca_cert: x509.Certificate,
    now: datetime,
    *,
    institution: str | None = None,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    query_id: str | None = None,
) -> ApprovalStatus:
    """Whether ``rule`` is met for ``plan_hash`` by the approvals given.

    Each approval is verified; one that is authentic but does not apply (expired,
    another query, another ``institution``) simply does not count, anything forged
    or from an unlisted approver raises. Per approver the most recently issued
    decision counts. The rule is met when ``quorum`` approvers approve and nobody
    rejects: a rejection by any listed approver is a veto.
    """
    latest: dict[str, ApprovalBody] = {}
    for signed in signed_approvals:
        if institution is not None and signed.body.institution != institution:
            continue
        try:
            body = verify_approval(
                signed,
                plan_hash,
                ca_cert,
                rule,
                now,
                institution=institution,
                trust_domain=trust_domain,
                query_id=query_id,
            )
        except ApprovalMissingError:
            continue
        previous = latest.get(body.approver)
        if previous is None or body.issued_at_ms > previous.issued_at_ms:
            latest[body.approver] = body
    approved = [who for who, body in latest.items() if body.decision == "approve"]
    rejected = [(who, body.reason) for who, body in latest.items() if body.decision == "reject"]
    enough = len(approved) >= rule.quorum
    missing = [] if enough else [who for who in rule.approvers if who not in latest]
    return ApprovalStatus(ok=enough and not rejected, missing=missing, rejected_by=rejected)


def require_approvals(
    needed: Iterable[RequiredApproval],
    signed_approvals: Iterable[SignedApproval],
    plan_hash: str,
    ca_cert: x509.Certificate,
    now: datetime,
    *,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    query_id: str | None = None,
) -> None:
    """Raise unless every required approval is given for ``plan_hash`` (and ``query_id``).

    A rejection is a :class:`PolicyDeniedError` naming who rejected and why; approvals
    still missing are an :class:`ApprovalMissingError` naming who must still decide.
    Each requirement counts only approvals signed for its owner's institution.
    """
    given = list(signed_approvals)
    for need in needed:
        status = approvals_satisfied(
            need.rule,
            given,
            plan_hash,
            ca_cert,
            now,
            institution=need.owner,
            trust_domain=trust_domain,
            query_id=query_id,
        )
        if status.rejected_by:
            reasons = "; ".join(f"{who}: {reason}" for who, reason in status.rejected_by)
            raise PolicyDeniedError(f"refused by rule approval.rejected: rejected by {reasons}")
        if not status.ok:
            raise ApprovalMissingError(
                f"waiting for rule approval.required: {need.describe(plan_hash)}; "
                f"not yet decided by {', '.join(status.missing)}"
            )
