"""Certificate building for the consortium CA: the CA itself and the three leaf kinds.

* the CA: ECDSA P-256, ``BasicConstraints(ca=True, path_length=0)``, signs leaves only;
* TLS leaves (gRPC mutual TLS): ECDSA P-256, serverAuth + clientAuth, the identity's
  URI SAN, and for the gateway and nodes DNS/IP SANs for the hosts they serve on;
* signing leaves: an Ed25519 key for execution orders, approvals and audit
  checkpoints, digital signature only, no TLS extended key usage;
* key-agreement leaves (receivers of sealed results): an X25519 key, key usage
  keyAgreement only, no TLS extended key usage;
* MPyC party leaves: a TLS leaf named ``MPyC party {i}`` (CN and DNS SAN, the name
  MPyC's ``--ssl`` dialer checks) that also carries the node's URI SAN.

Every leaf has subject and authority key identifiers: Python 3.13's default
``VERIFY_X509_STRICT`` rejects certificates without them. Clocks are passed in
(``now``) so tests can issue certificates that are already expired.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc_gateway.pki.identity import Identity, mpc_party_name

__all__ = [
    "CertificateAuthority",
    "LeafKey",
    "certificate_pem",
    "private_key_pem",
    "write_private_file",
    "write_public_file",
]

LeafKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey

# Tolerates clock skew between the issuing machine and the verifiers.
_BACKDATE = timedelta(minutes=5)


def _key_usage(
    *, digital_signature: bool = False, cert_sign: bool = False, key_agreement: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _common_name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _host_names(identity: Identity, hosts: Sequence[str]) -> list[x509.GeneralName]:
    """DNS and IP SANs for a server: every host plus the identity's own name."""
    names: list[x509.GeneralName] = []
    for host in [*hosts, identity.name]:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in names:
            names.append(entry)
    return names


@dataclass(frozen=True)
class CertificateAuthority:
    """The consortium CA: its certificate and private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, trust_domain: str, *, now: datetime, valid_days: int) -> CertificateAuthority:
        """A fresh self-signed CA valid from ``now`` for ``valid_days``."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _common_name(f"mpc-gateway consortium CA ({trust_domain})")
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    def _leaf(
        self,
        subject: str,
        public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey,
        sans: list[x509.GeneralName],
        *,
        tls: bool,
        now: datetime,
        valid_days: int,
    ) -> x509.Certificate:
        # A leaf never outlives the CA that vouches for it.
        not_after = min(now + timedelta(days=valid_days), self.cert.not_valid_after_utc)
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(_common_name(subject))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(
                    digital_signature=not isinstance(public_key, x25519.X25519PublicKey),
                    key_agreement=isinstance(public_key, x25519.X25519PublicKey),
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        )
        if tls:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())

    def issue_tls(
        self, identity: Identity, *, hosts: Sequence[str], now: datetime, valid_days: int
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A gRPC mutual-TLS certificate; ``hosts`` only count for gateway and nodes."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id)]
        if identity.role in ("gateway", "node"):
            sans += _host_names(identity, hosts)
        cert = self._leaf(
            str(identity), key.public_key(), sans, tls=True, now=now, valid_days=valid_days
        )
        return cert, key

    def issue_signing(
        self, identity: Identity, *, now: datetime, valid_days: int
    ) -> tuple[x509.Certificate, ed25519.Ed25519PrivateKey]:
        """An Ed25519 signing certificate (no TLS extended key usage)."""
        key = ed25519.Ed25519PrivateKey.generate()
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id)]
        cert = self._leaf(
            f"{identity} signing", key.public_key(), sans, tls=False, now=now, valid_days=valid_days
        )
        return cert, key

    def issue_key_agreement(
        self, identity: Identity, *, now: datetime, valid_days: int
    ) -> tuple[x509.Certificate, x25519.X25519PrivateKey]:
        """An X25519 key-agreement certificate: results are sealed (HPKE) to its key."""
        key = x25519.X25519PrivateKey.generate()
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id)]
        cert = self._leaf(
            f"{identity} sealing", key.public_key(), sans, tls=False, now=now, valid_days=valid_days
        )
        return cert, key

    def issue_mpc_party(
        self, identity: Identity, party_index: int, *, now: datetime, valid_days: int
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The certificate MPyC's ``--ssl`` mode loads as ``.config/party_{i}.crt``.

        OpenSSL matches the hostname ``MPyC party {i}`` (spaces included) against a
        DNS SAN; the CN repeats it for OpenSSL builds that still fall back to it.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        party = mpc_party_name(party_index)
        sans: list[x509.GeneralName] = [
            x509.DNSName(party),
            x509.UniformResourceIdentifier(identity.spiffe_id),
        ]
        cert = self._leaf(party, key.public_key(), sans, tls=True, now=now, valid_days=valid_days)
        return cert, key


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: LeafKey) -> bytes:
    """Unencrypted PKCS#8 PEM: the files are protected by their mode, 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file in the same directory, then rename over ``path``.

    ``mkstemp`` creates the file 0600, so a private key is never readable by
    others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private_file(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only (mode 0600)."""
    _write_atomically(path, data, 0o600)


def write_public_file(path: Path, data: bytes) -> None:
    """Write a certificate or manifest (mode 0644)."""
    _write_atomically(path, data, 0o644)
