"""Signed approvals: who may approve which exact query, until when, and how a quorum is met."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from mpc_gateway.errors import (
    ApprovalMissingError,
    IntegrityError,
    PolicyDeniedError,
    UnauthenticatedError,
)
from mpc_gateway.pki import ConsortiumLayout, Identity, init_consortium, load_signing_key
from mpc_gateway.policy import (
    ApprovalBody,
    ApprovalRule,
    RequiredApproval,
    SignedApproval,
    approvals_satisfied,
    require_approvals,
    sign_approval,
    verify_approval,
)

ISSUED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NOW = ISSUED + timedelta(hours=1)
QUERY = "0123456789abcdef0123456789abcdef"
PLAN = "ab" * 32
OTHER_PLAN = "cd" * 32
RULE = ApprovalRule(approvers=("approver/carol", "approver/dave"), quorum=1)
BOTH = ApprovalRule(approvers=("approver/carol", "approver/dave"), quorum=2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    return init_consortium(
        tmp_path_factory.mktemp("pki"),
        nodes=("bank-a", "bank-b", "broker-c"),
        approvers=("carol", "dave", "eve"),
        now=ISSUED - timedelta(days=1),
    )


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    """Another consortium: the same names, another CA."""
    return init_consortium(
        tmp_path_factory.mktemp("other"),
        nodes=("bank-a", "bank-b", "broker-c"),
        approvers=("carol",),
        now=ISSUED - timedelta(days=1),
    )


@pytest.fixture(scope="module")
def ca(pki: ConsortiumLayout) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())


def _credentials(layout: ConsortiumLayout, name: str) -> tuple[ed25519.Ed25519PrivateKey, bytes]:
    cert, key = layout.signing_paths(Identity("approver", name))
    return load_signing_key(key), cert.read_bytes()


def _body(
    approver: str = "carol",
    decision: Literal["approve", "reject"] = "approve",
    *,
    plan_hash: str = PLAN,
    issued: datetime = ISSUED,
    hours: int = 24,
    institution: str = "bank-b",
    reason: str = "supervisory review of sector risk, ticket 42",
) -> ApprovalBody:
    return ApprovalBody.issue(
        plan_hash=plan_hash,
        query_id=QUERY,
        approver=f"approver/{approver}",
        decision=decision,
        reason=reason,
        institution=institution,
        now=issued,
        valid_for_hours=hours,
    )


def _signed(layout: ConsortiumLayout, approver: str = "carol", **kw: object) -> SignedApproval:
    key, cert = _credentials(layout, approver)
    return sign_approval(_body(approver, **kw), key, cert)  # type: ignore[arg-type]


def _verify(
    ca: x509.Certificate, signed: SignedApproval, *, now: datetime = NOW, rule: ApprovalRule = RULE
) -> ApprovalBody:
    return verify_approval(signed, PLAN, ca, rule, now)


# --- verify_approval ------------------------------------------------------------------------


def test_a_valid_approval_verifies(pki: ConsortiumLayout, ca: x509.Certificate) -> None:
    signed = _signed(pki)
    body = _verify(ca, signed)
    assert (body.approver, body.decision, body.institution) == (
        "approver/carol",
        "approve",
        "bank-b",
    )
    assert verify_approval(signed, PLAN, ca, RULE, NOW, institution="bank-b") == body


def test_signed_bytes_are_the_canonical_body(pki: ConsortiumLayout) -> None:
    signed = _signed(pki)
    assert signed.body.signed_bytes().startswith(
        b'{"approver":"approver/carol","decision":"approve"'
    )
    assert SignedApproval.model_validate_json(signed.model_dump_json()) == signed


def test_a_signature_by_another_key_is_an_integrity_error(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    _, cert = _credentials(pki, "carol")
    forged = sign_approval(_body(), ed25519.Ed25519PrivateKey.generate(), cert)
    with pytest.raises(IntegrityError, match="approval by approver/carol or its signature"):
        _verify(ca, forged)


def test_an_altered_body_is_an_integrity_error(pki: ConsortiumLayout, ca: x509.Certificate) -> None:
    signed = _signed(pki, decision="reject", reason="too fine-grained")
    altered = signed.model_copy(update={"body": _body(decision="approve")})
    with pytest.raises(IntegrityError, match="signature does not verify"):
        _verify(ca, altered)


def test_a_certificate_from_another_ca_is_an_integrity_error(
    other_pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    with pytest.raises(IntegrityError, match="not issued by the consortium CA"):
        _verify(ca, _signed(other_pki))


def test_another_approvers_certificate_does_not_speak_for_the_named_one(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    key, cert = _credentials(pki, "dave")
    impersonation = sign_approval(_body("carol"), key, cert)
    with pytest.raises(UnauthenticatedError, match="expected spiffe://mpcgw.local/approver/carol"):
        _verify(ca, impersonation)


def test_an_approver_the_policy_does_not_list_is_denied(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    with pytest.raises(PolicyDeniedError) as excinfo:
        _verify(ca, _signed(pki, "eve"))
    assert excinfo.value.public_message == (
        "approver/eve is not an approver under bank-b's policy; "
        "its approvers are approver/carol, approver/dave"
    )


def test_an_approval_of_another_query_does_not_approve_this_one(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    with pytest.raises(ApprovalMissingError, match="it does not approve this query"):
        _verify(ca, _signed(pki, plan_hash=OTHER_PLAN))


def test_a_decision_on_one_query_does_not_approve_another_with_the_same_plan(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    signed = _signed(pki)  # carol's decision on query QUERY, for PLAN
    assert verify_approval(signed, PLAN, ca, RULE, NOW, query_id=QUERY).decision == "approve"
    with pytest.raises(ApprovalMissingError, match=f"given on query {QUERY}, not on query other"):
        verify_approval(signed, PLAN, ca, RULE, NOW, query_id="other")
    assert not approvals_satisfied(RULE, [signed], PLAN, ca, NOW, query_id="other").ok
    assert approvals_satisfied(RULE, [signed], PLAN, ca, NOW, query_id=QUERY).ok


def test_an_expired_approval_is_missing(pki: ConsortiumLayout, ca: x509.Certificate) -> None:
    signed = _signed(pki, hours=2)
    assert _verify(ca, signed, now=ISSUED + timedelta(hours=1, minutes=59))
    with pytest.raises(ApprovalMissingError) as excinfo:
        _verify(ca, signed, now=ISSUED + timedelta(hours=2))
    assert excinfo.value.public_message == (
        "the approval by approver/carol expired at 2026-11-24T11:00:00Z: "
        "ask approver/carol to approve again"
    )


def test_an_approval_counts_no_longer_than_the_rule_allows(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    signed = _signed(pki, hours=72)
    short = ApprovalRule(approvers=("approver/carol",), valid_for_hours=24)
    with pytest.raises(ApprovalMissingError, match="expired at 2026-11-25T09:00:00Z"):
        _verify(ca, signed, now=ISSUED + timedelta(hours=30), rule=short)


def test_an_approval_issued_in_the_future_is_not_yet_valid(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    with pytest.raises(ApprovalMissingError, match="not valid before"):
        _verify(ca, _signed(pki, issued=NOW + timedelta(minutes=5)))


def test_an_approval_for_another_institution_is_missing(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    signed = _signed(pki, institution="bank-a")
    with pytest.raises(ApprovalMissingError, match="given for bank-a, not bank-b"):
        verify_approval(signed, PLAN, ca, RULE, NOW, institution="bank-b")


def test_a_body_needs_a_reason_and_a_validity_period() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        _body(reason="  ")
    with pytest.raises(ValueError, match="expire after it is issued"):
        ApprovalBody(
            plan_hash=PLAN,
            query_id=QUERY,
            approver="approver/carol",
            decision="approve",
            reason="ok",
            issued_at_ms=10,
            expires_at_ms=10,
            institution="bank-b",
        )


# --- approvals_satisfied and require_approvals ----------------------------------------------


def _status(ca: x509.Certificate, rule: ApprovalRule, *signed: SignedApproval) -> tuple:
    return tuple(approvals_satisfied(rule, signed, PLAN, ca, NOW, institution="bank-b"))


def test_one_approval_meets_a_quorum_of_one(pki: ConsortiumLayout, ca: x509.Certificate) -> None:
    assert _status(ca, RULE) == (False, ["approver/carol", "approver/dave"], [])
    assert _status(ca, RULE, _signed(pki, "dave")) == (True, [], [])


def test_a_quorum_of_two_needs_two_distinct_approvers(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    carol = _signed(pki, "carol")
    assert _status(ca, BOTH, carol, carol) == (False, ["approver/dave"], [])
    assert _status(ca, BOTH, carol, _signed(pki, "dave")) == (True, [], [])


def test_a_rejection_is_reported_with_its_reason_and_vetoes(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    rejection = _signed(pki, "dave", decision="reject", reason="cells too small for region")
    ok, missing, rejected_by = _status(ca, RULE, _signed(pki, "carol"), rejection)
    assert (ok, missing) == (False, [])
    assert rejected_by == [("approver/dave", "cells too small for region")]
    needed = [RequiredApproval("bank-b", RULE)]
    with pytest.raises(PolicyDeniedError) as excinfo:
        require_approvals(needed, [rejection], PLAN, ca, NOW)
    assert excinfo.value.public_message == (
        "refused by rule approval.rejected: rejected by approver/dave: cells too small for region"
    )


def test_the_latest_decision_of_an_approver_counts(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    approve = _signed(pki, "carol")
    reject = _signed(
        pki,
        "carol",
        decision="reject",
        reason="changed my mind",
        issued=ISSUED + timedelta(minutes=1),
    )
    assert _status(ca, RULE, reject, approve)[0] is False
    again = _signed(pki, "carol", issued=ISSUED + timedelta(minutes=2))
    assert _status(ca, RULE, reject, again, approve) == (True, [], [])


def test_expired_other_query_and_other_institution_approvals_do_not_count(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    stale = _signed(pki, "carol", hours=1)
    elsewhere = _signed(pki, "dave", plan_hash=OTHER_PLAN)
    for_bank_a = _signed(pki, "dave", institution="bank-a")
    assert _status(ca, RULE, stale, elsewhere, for_bank_a) == (
        False,
        ["approver/carol", "approver/dave"],
        [],
    )


def test_a_forged_approval_is_not_silently_ignored(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    _, cert = _credentials(pki, "carol")
    forged = sign_approval(_body(), ed25519.Ed25519PrivateKey.generate(), cert)
    with pytest.raises(IntegrityError):
        _status(ca, RULE, forged)
    with pytest.raises(PolicyDeniedError, match="approver/eve is not an approver"):
        _status(ca, RULE, _signed(pki, "eve"))


def test_require_approvals_names_who_must_still_decide(
    pki: ConsortiumLayout, ca: x509.Certificate
) -> None:
    needed = [RequiredApproval("bank-b", BOTH)]
    with pytest.raises(ApprovalMissingError) as excinfo:
        require_approvals(needed, [_signed(pki, "carol")], PLAN, ca, NOW)
    assert excinfo.value.public_message == (
        f"waiting for rule approval.required: bank-b's policy requires all of approver/carol, "
        f"approver/dave to approve query {PLAN} (an approval counts for 24 h); "
        "not yet decided by approver/dave"
    )
    require_approvals(needed, [_signed(pki, "carol"), _signed(pki, "dave")], PLAN, ca, NOW)
    require_approvals([], [], PLAN, ca, NOW)
