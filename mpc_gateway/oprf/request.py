"""A pseudonym request signed by its requester, so a gateway cannot ask in anyone's name.

An answer to blinded points is useful only to whoever chose the blinding: a
gateway that sent points of its own in an analyst's name would unblind the
answers and learn the pseudonym of any national id it guesses, within that
analyst's allowance, with every node's log blaming the analyst. So the
requester signs what it asks (its identity, the purpose, how many points and
their digest, when), with the Ed25519 signing key its certificate names, and
both the gateway and every node check that signature before they count or
evaluate anything. The body is canonical JSON: what is signed is what is
checked, byte for byte.

A signed request is good for :data:`FRESH_MS` either side of the checker's
clock, so one captured long ago cannot be spent again; within that window
every node answers it once (it records the signed request's digest under the
day it was issued, :mod:`mpc_gateway.node.pseudonyms`), so a replay cannot
spend the requester's allowance again (it would only repeat answers its sender
already had: the same points give the same answers).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.canonical import canonical_bytes, from_canonical
from mpc_gateway.errors import IntegrityError, UnauthenticatedError
from mpc_gateway.oprf.protocol import points_sha256
from mpc_gateway.pki import Identity, load_verified_signing_cert, sign, verify

__all__ = ["FRESH_MS", "SignedRequest", "sign_request", "check_request", "request_sha256"]

FRESH_MS = 5 * 60 * 1000
"""How far a signed request's time may lie from the checker's clock."""

_KIND = "pseudonyms.request"


@dataclass(frozen=True)
class SignedRequest:
    """The canonical body the requester signed, its signature, and its signing certificate."""

    body: bytes
    signature: bytes
    certificate: bytes  # PEM, certified by the consortium CA for the requester


def sign_request(
    requester: Identity,
    key: Ed25519PrivateKey,
    certificate: bytes,
    purpose: str,
    points: Sequence[bytes],
    now_ms: int | None = None,
) -> SignedRequest:
    """``requester``'s signed request for ``points`` (blinded ids) for ``purpose``."""
    body = canonical_bytes(
        {
            "kind": _KIND,
            "requester": f"{requester.role}/{requester.name}",
            "purpose": purpose,
            "count": len(points),
            "points_sha256": points_sha256(points),
            "issued_ms": _now_ms() if now_ms is None else now_ms,
        }
    )
    return SignedRequest(body, sign(key, body), certificate)


def request_sha256(signed: SignedRequest) -> str:
    """The digest of the signed body: what the gateway logs and each node witnesses."""
    return hashlib.sha256(signed.body).hexdigest()


def check_request(
    signed: SignedRequest,
    ca: x509.Certificate,
    trust_domain: str,
    requester: str,
    purpose: str,
    count: int,
    digest: str,
    now_ms: int | None = None,
) -> int:
    """When (ms) the request was issued; raise unless ``requester`` (``role/name``) signed,
    lately, a request for ``count`` points whose :func:`points_sha256` is ``digest`` (the
    caller hashes them once, for the log too).

    UnauthenticatedError: no signature, a certificate not the requester's, a request
    out of its time; IntegrityError: a signature that does not verify, or a body
    that asks for other points, another purpose or in another name.
    """
    if not (signed.body and signed.signature and signed.certificate):
        raise UnauthenticatedError(
            f"the pseudonym request is not signed by {requester}: a requester signs its "
            "request with its signing key (reissue an analyst without one: mpcgw pki issue)"
        )
    try:
        who = Identity.parse(requester, trust_domain)
    except ValueError as err:
        raise UnauthenticatedError(f"no signing identity {requester!r}: {err}") from None
    key = load_verified_signing_cert(signed.certificate, ca, who)
    verify(key, signed.signature, signed.body, what=f"pseudonym request of {requester}")
    body = _body(signed.body)
    expected = {
        "kind": _KIND,
        "requester": requester,
        "purpose": purpose,
        "count": count,
        "points_sha256": digest,
    }
    differs = sorted(k for k, v in expected.items() if body.get(k) != v)
    if differs:
        raise IntegrityError(
            f"the request {requester} signed is not this one: its {', '.join(differs)} differ"
        )
    issued, now = body.get("issued_ms"), _now_ms() if now_ms is None else now_ms
    if not isinstance(issued, int) or abs(now - issued) > FRESH_MS:
        age = "no time" if not isinstance(issued, int) else f"{(now - issued) / 1000:.0f} s"
        raise UnauthenticatedError(
            f"the pseudonym request {requester} signed is out of its time ({age}; a request "
            f"is good for {FRESH_MS // 1000} s either side of this clock): sign it again"
        )
    return issued


def _body(data: bytes) -> dict[str, Any]:
    try:
        body = from_canonical(data)
    except (IntegrityError, ValueError):
        raise IntegrityError("the signed pseudonym request is not canonical JSON") from None
    if not isinstance(body, dict):
        raise IntegrityError("the signed pseudonym request is not a JSON object")
    return body


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
