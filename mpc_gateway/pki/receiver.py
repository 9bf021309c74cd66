"""Results sealed to their receiver: HPKE (RFC 9180) to an analyst's certified X25519 key.

Every analyst holds, beside its TLS and identity, a key-agreement certificate
(``<role>/<name>/sealing.crt``: an X25519 key, key usage keyAgreement only,
issued by the consortium CA with the analyst's SPIFFE identity). A TLS key never
doubles as an encryption key.

When a query is released, each node encrypts its re-randomised shares of the
result to that key with HPKE in base mode (DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM). The HPKE ``info`` binds the ciphertext to the query
id, the plan hash, the node and its party index, so a ciphertext cannot be
replayed for another query, plan or party. The gateway relays ciphertexts and
logs their digests; it holds no key that opens them. Only the receiver's client
decrypts, checks and recombines the shares.

Keys are issued with the analyst's identity (``mpcgw pki init`` / ``mpcgw pki
issue analyst NAME``) and rotated by reissuing it (``mpcgw pki issue analyst NAME
--overwrite``): nodes seal to whichever certificate the query carries, as long as
the CA signed it for that analyst and it is valid, so a rotation takes effect at
the next query; results are opened on receipt, so no old key needs keeping.
The same issue gives the analyst an Ed25519 signing certificate
(``signing.crt``, digital signatures only), with which it signs its pseudonym
requests (:mod:`mpc_gateway.oprf.request`); an analyst issued before that has
none, and its requests are refused until it is reissued.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import ConfigurationError, IntegrityError, UnauthenticatedError
from mpc_gateway.pki.identity import Identity
from mpc_gateway.pki.signing import verified_certificate

__all__ = [
    "SUITE_NAME",
    "ReceiverKey",
    "load_receiver_key",
    "receiver_public_key",
    "sealing_info",
    "seal",
    "open_sealed",
]

SUITE_NAME = "HPKE base DHKEM(X25519, HKDF-SHA256) HKDF-SHA256 AES-256-GCM"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_LABEL = "mpc-gateway sealed result shares v1"


class ReceiverKey:
    """A receiver's key-agreement certificate (PEM, sent with each query) and private key."""

    def __init__(self, certificate_pem: bytes, private_key: x25519.X25519PrivateKey) -> None:
        self.certificate_pem = certificate_pem
        self.private_key = private_key


def load_receiver_key(cert_path: Path, key_path: Path) -> ReceiverKey:
    """The receiver key at ``key_path`` with its certificate; they must match."""
    try:
        cert_pem = cert_path.read_bytes()
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as err:
        raise ConfigurationError(
            f"no sealing key at {err.filename}: results are sealed to an analyst's "
            "key-agreement key; reissue the analyst (mpcgw pki issue analyst NAME --overwrite)"
        ) from None
    except (ValueError, TypeError):
        raise ConfigurationError(f"{key_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, x25519.X25519PrivateKey):
        raise ConfigurationError(f"{key_path} holds a {type(key).__name__}, not an X25519 key")
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    if not isinstance(public, x25519.X25519PublicKey) or public.public_bytes_raw() != (
        key.public_key().public_bytes_raw()
    ):
        raise ConfigurationError(f"{key_path} is not the key of {cert_path}")
    return ReceiverKey(cert_pem, key)


def receiver_public_key(
    cert_pem: bytes, ca_cert: x509.Certificate, receiver: Identity
) -> x25519.X25519PublicKey:
    """The X25519 key results for ``receiver`` are sealed to, once its certificate checks out."""
    if not cert_pem:
        raise UnauthenticatedError(
            f"the query carries no sealing certificate for {receiver}: results are only "
            "released sealed to the receiver's key"
        )
    cert = verified_certificate(cert_pem, ca_cert, receiver, kind="sealing", key_agreement=True)
    key = cert.public_key()
    if not isinstance(key, x25519.X25519PublicKey):
        raise UnauthenticatedError(
            f"sealing certificate of {receiver} certifies a {type(key).__name__}, not X25519"
        )
    return key


def sealing_info(query_id: str, plan_hash: str, node: str, party: int) -> bytes:
    """The HPKE ``info`` of one node's sealed shares: what the ciphertext is bound to."""
    return canonical_bytes(
        {
            "label": _LABEL,
            "query_id": query_id,
            "plan_hash": plan_hash,
            "node": node,
            "party": party,
        }
    )


def seal(plaintext: bytes, receiver: x25519.X25519PublicKey, info: bytes) -> bytes:
    """HPKE base-mode encryption: the encapsulated key followed by the ciphertext."""
    return _SUITE.encrypt(plaintext, receiver, info)


def open_sealed(ciphertext: bytes, key: x25519.X25519PrivateKey, info: bytes, what: str) -> bytes:
    """Open one sealed message; IntegrityError naming ``what`` if it was altered or misbound."""
    try:
        return _SUITE.decrypt(ciphertext, key, info)
    except (InvalidTag, ValueError):
        raise IntegrityError(
            f"{what} does not open with this receiver's key for this query and plan: "
            "it was altered, or sealed for another receiver, query, plan or node"
        ) from None
