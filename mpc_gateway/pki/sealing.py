"""Secret model weights: additive shares, each sealed to one node's certificate key.

A model owner who does not want to reveal its weights splits each integer
weight (and the intercept) into m additive shares *over the integers*: m-1
shares uniform in ``[-2**(b+40), 2**(b+40)]`` and the last ``w - sum(others)``,
where ``|w| < 2**b``. Any m-1 shares are independent of ``w``, and a single
share (what one node sees) is within statistical distance ~``2**-40`` of the same
distribution for every ``w``. Each node's share vector is encrypted to that
node's TLS certificate key (ECIES: P-256 ECDH with a fresh ephemeral key,
HKDF-SHA256, AES-256-GCM, with the node name and the model id as associated
data, so a ciphertext cannot be replayed for another node or model).

The gateway stores and forwards only ciphertexts; a node can open its own share
only. Inside the MPC the nodes input their shares and add them, so the weights
exist in the clear only at the model owner.

Key reuse: the certificates' keys are ECDSA TLS keys (key usage
digitalSignature); using them for ECDH as well is a deliberate simplification
(no dedicated key-agreement certificate yet); HKDF with a protocol label keeps
the derived keys separate from anything TLS derives.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import IntegrityError, InvalidRequestError, UnauthenticatedError
from mpc_gateway.pki.ca import load_ca
from mpc_gateway.pki.identity import Identity, identity_from_certificate
from mpc_gateway.pki.layout import load_layout

__all__ = [
    "SealedWeights",
    "split_secret_weights",
    "encrypt_share",
    "decrypt_share",
    "seal_shares",
    "node_certificates",
    "STATISTICAL_BITS",
]

STATISTICAL_BITS = 40
_VERSION = b"\x01"
_LABEL = b"mpc-gateway risk weight share v1"
_POINT = 65  # uncompressed P-256 point
_NONCE = 12


class SealedWeights(BaseModel):
    """What the gateway stores for a secret-weight model: one ciphertext per node."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    shares: dict[str, str]  # node name -> base64 ciphertext of that node's share vector

    def for_node(self, node: str) -> bytes:
        try:
            return base64.b64decode(self.shares[node], validate=True)
        except KeyError:
            raise InvalidRequestError(f"no sealed weight share for node {node!r}") from None


def split_secret_weights(
    values: Sequence[int],
    parties: int,
    weight_bits: int,
    *,
    rng: secrets.SystemRandom | None = None,
) -> list[list[int]]:
    """``parties`` additive share vectors of ``values`` (each ``|v| < 2**weight_bits``).

    Shares of party 0..m-2 are uniform in ``[-2**(b+40), 2**(b+40)]``; the last
    party's is ``v - sum(others)``. Statistically hiding, no modulus involved.
    """
    if parties < 2:
        raise InvalidRequestError("secret weights need at least two parties")
    bound = 1 << weight_bits
    if any(abs(int(v)) >= bound for v in values):
        raise InvalidRequestError(f"every weight must satisfy |w| < 2**{weight_bits}")
    rng = rng or secrets.SystemRandom()
    span = 1 << (weight_bits + STATISTICAL_BITS)
    shares = [[rng.randint(-span, span) for _ in values] for _ in range(parties - 1)]
    last = [int(v) - sum(column) for v, column in zip(values, zip(*shares))]
    return [*shares, last] if values else [[] for _ in range(parties)]


def _associated_data(node: str, model_id: str) -> bytes:
    return canonical_bytes({"node": node, "model_id": model_id, "purpose": _LABEL.decode()})


def _key(shared: bytes, ephemeral_point: bytes, node: str, model_id: str) -> bytes:
    info = _LABEL + b"\x00" + ephemeral_point + _associated_data(node, model_id)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def _node_public_key(node_cert_pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = x509.load_pem_x509_certificate(node_cert_pem).public_key()
    except ValueError:
        raise InvalidRequestError("the node certificate is not a PEM X.509 certificate") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidRequestError("the node certificate does not carry a P-256 key")
    return key


def encrypt_share(node_cert_pem: bytes, node: str, model_id: str, share: Sequence[int]) -> bytes:
    """Seal one node's share vector to the key of its certificate (ECIES, see module doc).

    The caller takes ``node_cert_pem`` from :func:`node_certificates` (a certificate
    the consortium CA issued to ``node``); this function does not verify the chain.
    """
    recipient = _node_public_key(node_cert_pem)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key = _key(ephemeral.exchange(ec.ECDH(), recipient), point, node, model_id)
    nonce = secrets.token_bytes(_NONCE)
    plaintext = json.dumps([str(int(v)) for v in share]).encode()
    sealed = AESGCM(key).encrypt(nonce, plaintext, _associated_data(node, model_id))
    return _VERSION + point + nonce + sealed


def decrypt_share(node_key_pem: bytes, node: str, model_id: str, ciphertext: bytes) -> list[int]:
    """Open a share sealed to this node for this model; IntegrityError if it is not."""
    key = serialization.load_pem_private_key(node_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidRequestError("the node key is not an EC private key")
    if len(ciphertext) < 1 + _POINT + _NONCE + 16 or ciphertext[:1] != _VERSION:
        raise IntegrityError("the sealed weight share is malformed")
    point = ciphertext[1 : 1 + _POINT]
    nonce = ciphertext[1 + _POINT : 1 + _POINT + _NONCE]
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        aead = AESGCM(_key(key.exchange(ec.ECDH(), ephemeral), point, node, model_id))
        plaintext = aead.decrypt(
            nonce, ciphertext[1 + _POINT + _NONCE :], _associated_data(node, model_id)
        )
    except (InvalidTag, ValueError):
        raise IntegrityError(
            "the sealed weight share does not open with this node's key for this model"
        ) from None
    return [int(v) for v in json.loads(plaintext)]


def seal_shares(
    shares: Sequence[Sequence[int]], node_certs: Mapping[str, bytes], model_id: str
) -> SealedWeights:
    """Seal share vector i to the i-th node of ``node_certs`` (party order)."""
    if len(shares) != len(node_certs):
        raise InvalidRequestError("one share vector per node is needed")
    sealed = {
        node: base64.b64encode(encrypt_share(pem, node, model_id, share)).decode()
        for (node, pem), share in zip(node_certs.items(), shares)
    }
    return SealedWeights(model_id=model_id, shares=sealed)


def node_certificates(pki: Path | str) -> dict[str, bytes]:
    """Every node's TLS certificate PEM, in party order, each checked against the consortium CA.

    What shares are sealed to: a certificate swapped for another node's, or one
    another CA issued, is refused, so a share can only ever open at its node.
    """
    layout = load_layout(Path(pki))
    ca = load_ca(layout.ca_cert)
    certs: dict[str, bytes] = {}
    for name in layout.nodes:
        expected = Identity("node", name, layout.trust_domain)
        path = layout.tls_paths(expected)[0]
        try:
            pem = path.read_bytes()
            cert = x509.load_pem_x509_certificate(pem)
            cert.verify_directly_issued_by(ca)
            actual = identity_from_certificate(cert, trust_domain=layout.trust_domain)
        except OSError as err:
            raise IntegrityError(f"cannot read node certificate {path}: {err.strerror}") from None
        except (ValueError, TypeError, InvalidSignature, UnauthenticatedError):
            raise IntegrityError(
                f"{path} is not a certificate the consortium CA issued to node {name}"
            ) from None
        if actual != expected:
            raise IntegrityError(f"{path} certifies {actual}, not node {name}")
        certs[name] = pem
    return certs
