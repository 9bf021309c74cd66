"""A client's own TLS certificate, checked before it connects: what TLS would not say.

When a server refuses a client certificate during the handshake, the client
only sees the connection close ("Socket closed"): TLS does not tell it why. So a
client checks its own certificate first, against the consortium CA it holds,
and says exactly what is wrong: none at all, expired or not yet valid, or
issued by another CA. :func:`describe` names a certificate in those messages.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mpc_gateway.errors import UnauthenticatedError

__all__ = ["check_own_certificate", "describe"]


def describe(cert: x509.Certificate) -> str:
    """The certificate as a person recognises it: its identity (URI SAN) or subject."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    name = uris[0] if len(uris) == 1 else cert.subject.rfc4514_string()
    return f"client certificate {name!r} (issued by {cert.issuer.rfc4514_string()!r})"


def check_own_certificate(
    ca_pem: bytes, cert_pem: bytes | None, now: datetime | None = None
) -> x509.Certificate:
    """The client's certificate once it is usable with the consortium CA ``ca_pem``.

    Raises :class:`UnauthenticatedError` naming the certificate and what is wrong.
    """
    if not cert_pem:
        raise UnauthenticatedError(
            "no client certificate: every server of the consortium requires one "
            "(issue one with `mpcgw pki issue`)"
        )
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        raise UnauthenticatedError(
            "the client certificate or the consortium CA certificate is not PEM X.509"
        ) from None
    now = now or datetime.now(UTC)
    what = describe(cert)
    if now > cert.not_valid_after_utc:
        raise UnauthenticatedError(
            f"{what} expired at {cert.not_valid_after_utc.isoformat()}: servers refuse it; "
            "have a new one issued"
        )
    if now < cert.not_valid_before_utc:
        raise UnauthenticatedError(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()} "
            "(check this machine's clock)"
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        same_name = " (a CA of the same name but another key)" if cert.issuer == ca.subject else ""
        raise UnauthenticatedError(
            f"{what} was not issued by the consortium CA {ca.subject.rfc4514_string()!r}"
            f"{same_name}: servers refuse it (unknown CA)"
        ) from None
    return cert
