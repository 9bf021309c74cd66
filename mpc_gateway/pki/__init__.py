"""The consortium's PKI: identities, an offline CA, and signing keys.

One CA per consortium issues every credential: gRPC mutual-TLS certificates
(identity in a ``spiffe://`` URI SAN), Ed25519 signing certificates for the
gateway and approvers, and the certificates MPyC's ``--ssl`` mode loads. Built
on ``cryptography`` only. Modules:

* :mod:`~mpc_gateway.pki.identity`: roles, :class:`Identity`, reading identities
  from certificates and from MPyC peers;
* :mod:`~mpc_gateway.pki.issuance`: building the CA and leaf certificates;
* :mod:`~mpc_gateway.pki.layout`: where the files live, ``consortium.json``;
* :mod:`~mpc_gateway.pki.ca`: creating a consortium, issuing identities later;
* :mod:`~mpc_gateway.pki.signing`: Ed25519 signatures tied to certified identities.
"""

from mpc_gateway.pki.ca import init_consortium, issue_identity, load_ca, tls_credentials_bytes
from mpc_gateway.pki.identity import (
    DEFAULT_TRUST_DOMAIN,
    ROLES,
    SIGNING_ROLES,
    Identity,
    check_mpc_peer,
    identity_from_certificate,
    mpc_party_name,
)
from mpc_gateway.pki.layout import ConsortiumLayout, load_layout
from mpc_gateway.pki.signing import load_signing_key, load_verified_signing_cert, sign, verify

__all__ = [
    "ROLES",
    "SIGNING_ROLES",
    "DEFAULT_TRUST_DOMAIN",
    "Identity",
    "identity_from_certificate",
    "mpc_party_name",
    "check_mpc_peer",
    "ConsortiumLayout",
    "init_consortium",
    "issue_identity",
    "load_layout",
    "load_ca",
    "tls_credentials_bytes",
    "load_signing_key",
    "load_verified_signing_cert",
    "sign",
    "verify",
]
