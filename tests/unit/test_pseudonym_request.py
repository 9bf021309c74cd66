"""A requester's signature on its pseudonym request, attacked as a gateway would forge it."""

from __future__ import annotations

import pytest

from mpc_gateway.errors import IntegrityError, UnauthenticatedError
from mpc_gateway.oprf import SignedRequest, blind, check_request, points_sha256, sign_request
from mpc_gateway.oprf.request import FRESH_MS
from mpc_gateway.pki import ConsortiumLayout, load_ca, load_signing_key
from tests.unit import pki_cases
from tests.unit.pki_cases import ALICE

layout, other_layout = pki_cases.layout, pki_cases.other_layout  # module fixtures, found here
POINTS = [blind("NID-1").point, blind("NID-2").point]
NOW = 1_800_000_000_000


def _signed(pki: ConsortiumLayout, purpose: str = "aml", now_ms: int = NOW) -> SignedRequest:
    cert, key = pki.signing_paths(ALICE)
    return sign_request(ALICE, load_signing_key(key), cert.read_bytes(), purpose, POINTS, now_ms)


def _check(pki: ConsortiumLayout, signed: SignedRequest, now_ms: int = NOW, **kw: object) -> None:
    args: dict[str, object] = {
        "requester": "analyst/alice",
        "purpose": "aml",
        "points": POINTS,
        **kw,
    }
    points = args.pop("points", POINTS)
    assert isinstance(points, list)
    check_request(
        signed,
        load_ca(pki.ca_cert),
        pki.trust_domain,
        count=len(points),
        digest=points_sha256(points),
        now_ms=now_ms,
        **args,  # type: ignore[arg-type]
    )


def test_a_signed_request_checks_within_its_time_either_side(layout: ConsortiumLayout) -> None:
    signed = _signed(layout)
    for now in (NOW, NOW - FRESH_MS, NOW + FRESH_MS):
        _check(layout, signed, now)
    for now in (NOW - FRESH_MS - 1, NOW + FRESH_MS + 1):
        with pytest.raises(UnauthenticatedError, match="out of its time"):
            _check(layout, signed, now)


def test_the_body_binds_the_requester_purpose_and_points(layout: ConsortiumLayout) -> None:
    signed = _signed(layout)
    with pytest.raises(IntegrityError, match="its purpose differ"):
        _check(layout, signed, purpose="marketing")
    with pytest.raises(IntegrityError, match="its count, points_sha256 differ"):
        _check(layout, signed, points=POINTS[:1])
    with pytest.raises(UnauthenticatedError, match="expected .*analyst/bob"):
        _check(layout, signed, requester="analyst/bob")  # alice's certificate, bob's name


def test_a_key_of_another_consortium_or_no_signature_is_refused(
    layout: ConsortiumLayout, other_layout: ConsortiumLayout
) -> None:
    with pytest.raises(IntegrityError):
        _check(layout, _signed(other_layout))  # same names, another CA
    with pytest.raises(UnauthenticatedError, match="not signed by analyst/alice"):
        _check(layout, SignedRequest(b"", b"", b""))
    good = _signed(layout)
    with pytest.raises(IntegrityError, match="signature does not verify"):
        _check(layout, SignedRequest(good.body, bytes(64), good.certificate))
