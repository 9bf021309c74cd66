"""Who a certificate speaks for: roles, SPIFFE-style identities, MPyC party names.

Every certificate the consortium CA issues carries exactly one URI SAN,
``spiffe://<trust domain>/<role>/<name>``. That URI, not the common name, is what
the gateway and the nodes authorise on. The one exception to "not the CN" is
MPyC's ``--ssl`` mode: its dialer checks the hostname ``MPyC party {i}``, so a
party certificate also carries that name, and :func:`check_mpc_peer` binds the
party index a peer claims on the wire to the certificate it presented.

Assumes the certificate (or the ``getpeercert()`` dict) has already been
verified against the consortium CA by TLS or :mod:`mpc_gateway.pki.signing`;
nothing here checks signatures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from mpc_gateway.errors import UnauthenticatedError

__all__ = [
    "ROLES",
    "SIGNING_ROLES",
    "DEFAULT_TRUST_DOMAIN",
    "Identity",
    "identity_from_certificate",
    "mpc_party_name",
    "check_mpc_peer",
]

ROLES: tuple[str, ...] = ("gateway", "node", "analyst", "auditor", "approver")
"""Every role a certificate can carry."""

SIGNING_ROLES: tuple[str, ...] = ("gateway", "node", "approver", "analyst")
"""Roles that also get an Ed25519 signing key (execution orders, approvals, checkpoints)."""

DEFAULT_TRUST_DOMAIN = "mpcgw.local"

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# SPIFFE trust domains: lowercase letters, digits, dots, dashes and underscores.
_TRUST_DOMAIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,253}")
_SPIFFE_PREFIX = "spiffe://"


def _shown(value: str) -> str:
    """A bounded repr of untrusted text for an error message."""
    return repr(value if len(value) <= 120 else value[:120] + "...")


@dataclass(frozen=True)
class Identity:
    """A principal of the consortium: ``role/name`` within a trust domain."""

    role: str
    name: str
    trust_domain: str = DEFAULT_TRUST_DOMAIN

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {_shown(self.role)}; expected one of {ROLES}")
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"invalid name {_shown(self.name)}: use 1-63 of a-z 0-9 . _ -, "
                "starting with a letter or digit"
            )
        if not _TRUST_DOMAIN.fullmatch(self.trust_domain):
            raise ValueError(f"invalid trust domain {_shown(self.trust_domain)}: use a-z 0-9 . _ -")

    @property
    def spiffe_id(self) -> str:
        """The URI SAN this identity's certificates carry."""
        return f"spiffe://{self.trust_domain}/{self.role}/{self.name}"

    def __str__(self) -> str:
        return f"{self.role}/{self.name}"

    @classmethod
    def parse(cls, text: str, trust_domain: str) -> Identity:
        """``"role/name"`` (how plans, approvals and the CLI name identities) in ``trust_domain``.

        Raises ValueError for an unknown role or an invalid name.
        """
        role, _, name = text.partition("/")
        return cls(role, name, trust_domain)

    @classmethod
    def from_spiffe_id(cls, uri: str, *, trust_domain: str | None = None) -> Identity:
        """Parse ``spiffe://<trust domain>/<role>/<name>``.

        Raises :class:`UnauthenticatedError` for anything malformed, an unknown
        role, or (when ``trust_domain`` is given) a different trust domain.
        """
        if not isinstance(uri, str) or not uri.startswith(_SPIFFE_PREFIX):
            raise UnauthenticatedError(f"identity {_shown(str(uri))} is not a spiffe:// URI")
        # The name and domain patterns leave no room for ports, queries,
        # fragments, user info or percent-encoding, so splitting on "/" suffices.
        parts = uri[len(_SPIFFE_PREFIX) :].split("/")
        if len(parts) != 3:
            raise UnauthenticatedError(
                f"identity {_shown(uri)} is not of the form spiffe://<domain>/<role>/<name>"
            )
        domain, role, name = parts
        try:
            identity = cls(role=role, name=name, trust_domain=domain)
        except ValueError as err:
            raise UnauthenticatedError(f"identity {_shown(uri)} is not acceptable: {err}") from None
        if trust_domain is not None and domain != trust_domain:
            raise UnauthenticatedError(
                f"identity {_shown(uri)} belongs to trust domain {domain!r}, not {trust_domain!r}"
            )
        return identity


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.UniformResourceIdentifier)


def identity_from_certificate(
    cert: x509.Certificate | bytes, *, trust_domain: str | None = None
) -> Identity:
    """The identity in the single URI SAN of ``cert`` (an object or PEM bytes).

    Does not verify the certificate: call it on a certificate TLS or
    :func:`~mpc_gateway.pki.signing.load_verified_signing_cert` has checked.
    """
    if isinstance(cert, bytes):
        try:
            cert = x509.load_pem_x509_certificate(cert)
        except ValueError:
            raise UnauthenticatedError("the certificate is not a PEM X.509 certificate") from None
    uris = _uri_sans(cert)
    if len(uris) != 1:
        raise UnauthenticatedError(
            f"certificate {cert.subject.rfc4514_string()!r} carries {len(uris)} URI SANs; "
            "a consortium certificate carries exactly one spiffe:// identity"
        )
    return Identity.from_spiffe_id(uris[0], trust_domain=trust_domain)


def mpc_party_name(party_index: int) -> str:
    """The hostname MPyC's ``--ssl`` dialer expects of party ``party_index``."""
    if party_index < 0:
        raise ValueError(f"party index must be >= 0, got {party_index}")
    return f"MPyC party {party_index}"


def _peer_fields(peercert: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Common names and URI SANs of a ``getpeercert()`` dict."""
    common_names = [
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    uris = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI"]
    return common_names, uris


def check_mpc_peer(
    peercert: Mapping[str, Any] | None, party_index: int, expected: Identity
) -> None:
    """Require that an MPyC peer's certificate belongs to party ``party_index``.

    ``peercert`` is what ``SSLSocket.getpeercert()`` or
    ``transport.get_extra_info("peercert")`` returns; it is only filled in for a
    certificate the TLS layer verified (MPyC sets ``CERT_REQUIRED`` on both
    sides). MPyC's listener takes the connecting party's index from the wire, and
    any certificate of the consortium CA passes its TLS check, so the worker calls
    this to bind that index to the certificate: its CN must be
    ``MPyC party {party_index}`` and its only URI SAN ``expected.spiffe_id``.
    """
    if not peercert:
        raise UnauthenticatedError(
            f"MPyC peer claiming party {party_index} presented no verified certificate"
        )
    common_names, uris = _peer_fields(peercert)
    wanted = mpc_party_name(party_index)
    if common_names != [wanted]:
        raise UnauthenticatedError(
            f"MPyC peer claiming party {party_index} presented a certificate for "
            f"{common_names!r}, not {wanted!r}"
        )
    if uris != [expected.spiffe_id]:
        raise UnauthenticatedError(
            f"MPyC peer claiming party {party_index} presented identity {uris!r}, "
            f"expected {expected.spiffe_id!r}"
        )
