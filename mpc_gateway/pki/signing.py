"""Ed25519 signatures over execution orders, approvals and audit checkpoints.

The gateway and approvers hold Ed25519 keys whose certificates the consortium CA
signed (see :mod:`mpc_gateway.pki.issuance`). A verifier trusts a signature only
after :func:`load_verified_signing_cert` has tied the public key to the identity
it expects. What bytes are signed is the caller's business: sign canonical bytes
(:mod:`mpc_gateway.canonical`), never a re-serialisation.

Errors: a certificate the CA did not sign, or a signature that does not verify,
is an :class:`IntegrityError`; a certificate that is valid but not usable for the
expected identity (expired, another identity, wrong key type or usage) is an
:class:`UnauthenticatedError`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mpc_gateway.errors import ConfigurationError, IntegrityError, UnauthenticatedError
from mpc_gateway.pki.identity import Identity, identity_from_certificate

__all__ = [
    "load_signing_key",
    "load_verified_signing_cert",
    "verified_certificate",
    "sign",
    "verify",
]


def load_signing_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """The Ed25519 private key (unencrypted PKCS#8 PEM) at ``path``."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigurationError(f"no signing key at {path}") from None
    except (ValueError, TypeError):
        raise ConfigurationError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _check_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate, who: str) -> None:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise IntegrityError(
            f"signing certificate presented for {who} was not issued by the consortium CA "
            f"({ca_cert.subject.rfc4514_string()})"
        ) from None


def _check_period(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise UnauthenticatedError(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise UnauthenticatedError(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")


def _check_usage(cert: x509.Certificate, what: str, *, key_agreement: bool) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise UnauthenticatedError(f"{what} lacks basic constraints or key usage") from None
    if constraints.ca:
        raise UnauthenticatedError(f"{what} is a CA certificate")
    if key_agreement and not usage.key_agreement:
        raise UnauthenticatedError(f"{what} does not allow key agreement")
    if not key_agreement and not usage.digital_signature:
        raise UnauthenticatedError(f"{what} does not allow digital signatures")


_VERIFIED_MAX = 1024  # certificates remembered as verified, the least recently used dropped
_verified: OrderedDict[tuple[bytes, bytes, str, bool], tuple[x509.Certificate, datetime]] = (
    OrderedDict()
)
_verified_lock = threading.Lock()


def _now() -> datetime:
    return datetime.now(UTC)


def verified_certificate(
    cert_pem: bytes,
    ca_cert: x509.Certificate,
    expected: Identity,
    *,
    kind: str = "signing",
    key_agreement: bool = False,
    now: datetime | None = None,
) -> x509.Certificate:
    """``expected``'s ``kind`` certificate, once it checks out (raises otherwise).

    Checks, in order: the CA signed the certificate, the CA and the certificate
    are valid at ``now`` (default: the current time), the certificate carries
    exactly ``expected.spiffe_id``, is not a CA, and allows digital signatures (or,
    with ``key_agreement``, key agreement).

    At the current time, a certificate that checked out for the same CA, identity
    and usage is not checked again until the earlier of its and the CA's expiry:
    nothing else the checks read can change (a node sees the same analyst's
    certificate with every order). A failure is never remembered.
    """
    if now is not None:
        return _verified_now(cert_pem, ca_cert, expected, kind, key_agreement, now)
    key = (cert_pem, ca_cert.fingerprint(hashes.SHA256()), expected.spiffe_id, key_agreement)
    moment = _now()
    with _verified_lock:
        known = _verified.get(key)
        if known is not None and moment <= known[1]:
            _verified.move_to_end(key)
            return known[0]
    cert = _verified_now(cert_pem, ca_cert, expected, kind, key_agreement, moment)
    expires = min(cert.not_valid_after_utc, ca_cert.not_valid_after_utc)
    with _verified_lock:
        _verified[key] = (cert, expires)
        while len(_verified) > _VERIFIED_MAX:
            _verified.popitem(last=False)
    return cert


def _verified_now(
    cert_pem: bytes,
    ca_cert: x509.Certificate,
    expected: Identity,
    kind: str,
    key_agreement: bool,
    now: datetime,
) -> x509.Certificate:
    who = str(expected)
    what = f"{kind} certificate of {who}"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise UnauthenticatedError(
            f"{kind} certificate presented for {who} is not a PEM X.509 certificate"
        ) from None
    _check_issued_by(cert, ca_cert, who)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    _check_period(ca_cert, now, "the consortium CA certificate")
    _check_period(cert, now, what)
    actual = identity_from_certificate(cert)
    if actual != expected:
        raise UnauthenticatedError(
            f"{kind} certificate is for {actual.spiffe_id}, expected {expected.spiffe_id}"
        )
    _check_usage(cert, what, key_agreement=key_agreement)
    return cert


def load_verified_signing_cert(
    cert_pem: bytes,
    ca_cert: x509.Certificate,
    expected: Identity,
    now: datetime | None = None,
) -> ed25519.Ed25519PublicKey:
    """The Ed25519 public key of ``expected``, once its certificate checks out.

    See :func:`verified_certificate` for the checks; the key must be Ed25519.
    """
    cert = verified_certificate(cert_pem, ca_cert, expected, now=now)
    public_key = cert.public_key()
    if not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise UnauthenticatedError(
            f"signing certificate of {expected} certifies a {type(public_key).__name__}, "
            "not an Ed25519 key"
        )
    return public_key


def sign(key: ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    return key.sign(data)


def verify(
    public_key: ed25519.Ed25519PublicKey, signature: bytes, data: bytes, *, what: str = "data"
) -> None:
    """Raise :class:`IntegrityError` unless ``signature`` signs ``data`` under ``public_key``.

    ``what`` names the signed thing in the error (e.g. ``"execution order"``).
    """
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise IntegrityError(
            f"signature does not verify: the {what} or its signature was altered, "
            "or it was signed by another key"
        ) from None
