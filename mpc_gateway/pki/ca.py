"""Creating a consortium's PKI and issuing identities from its CA.

``init_consortium`` makes the offline CA and every identity the deployment starts
with; ``issue_identity`` adds one later (``mpcgw pki issue``). Both only write
files under the consortium directory; see :mod:`mpc_gateway.pki.layout` for where.

Trust model: whoever holds ``ca.key`` can mint any identity, including MPyC
party certificates. Keep the directory on the operator's machine and ship each
institution only its own ``<role>/<name>`` directory plus ``ca.crt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.pki.identity import DEFAULT_TRUST_DOMAIN, SIGNING_ROLES, Identity
from mpc_gateway.pki.issuance import (
    CertificateAuthority,
    certificate_pem,
    private_key_pem,
    write_private_file,
    write_public_file,
)
from mpc_gateway.pki.layout import (
    MANIFEST_NAME,
    SEALING_ROLES,
    ConsortiumLayout,
    load_layout,
    save_layout,
)

__all__ = [
    "init_consortium",
    "issue_identity",
    "load_ca",
    "tls_credentials_bytes",
    "tls_from_pki",
]

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1")
_MIN_CA_DAYS = 5 * 365


def _clock(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _check_validity(valid_days: int) -> None:
    if valid_days < 1:
        raise ConfigurationError(f"valid_days must be at least 1, got {valid_days}")


def _identities(trust_domain: str, groups: Sequence[tuple[str, Sequence[str]]]) -> list[Identity]:
    identities: list[Identity] = []
    for role, names in groups:
        for name in names:
            try:
                identity = Identity(role, name, trust_domain)
            except ValueError as err:
                raise ConfigurationError(f"cannot issue {role} {name!r}: {err}") from None
            if identity in identities:
                raise ConfigurationError(f"{identity} is listed twice")
            identities.append(identity)
    return identities


def _write_identity(
    ca: CertificateAuthority,
    layout: ConsortiumLayout,
    identity: Identity,
    *,
    hosts: Sequence[str],
    now: datetime,
    valid_days: int,
) -> None:
    """Issue and write every file ``identity`` needs (``layout`` must list it)."""
    cert, key = ca.issue_tls(identity, hosts=hosts, now=now, valid_days=valid_days)
    cert_path, key_path = layout.tls_paths(identity)
    write_private_file(key_path, private_key_pem(key))
    write_public_file(cert_path, certificate_pem(cert))
    if identity.role in SIGNING_ROLES:
        signing_cert, signing_key = ca.issue_signing(identity, now=now, valid_days=valid_days)
        cert_path, key_path = layout.signing_paths(identity)
        write_private_file(key_path, private_key_pem(signing_key))
        write_public_file(cert_path, certificate_pem(signing_cert))
    if identity.role in SEALING_ROLES:
        sealing_cert, sealing_key = ca.issue_key_agreement(identity, now=now, valid_days=valid_days)
        cert_path, key_path = layout.sealing_paths(identity)
        write_private_file(key_path, private_key_pem(sealing_key))
        write_public_file(cert_path, certificate_pem(sealing_cert))
    if identity.role == "node":
        index = layout.party_index(identity.name)
        party_cert, party_key = ca.issue_mpc_party(identity, index, now=now, valid_days=valid_days)
        cert_path, key_path, ca_path = layout.mpc_files(identity.name)
        write_private_file(key_path, private_key_pem(party_key))
        write_public_file(cert_path, certificate_pem(party_cert))
        write_public_file(ca_path, certificate_pem(ca.cert))


def init_consortium(
    out_dir: Path,
    *,
    nodes: Sequence[str],
    analysts: Sequence[str] = ("alice",),
    auditors: Sequence[str] = ("audrey",),
    approvers: Sequence[str] = (),
    gateway: str = "gateway",
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    host_names: Mapping[str, Sequence[str]] | None = None,
    valid_days: int = 365,
    ca_valid_days: int | None = None,
    overwrite: bool = False,
    now: datetime | None = None,
) -> ConsortiumLayout:
    """Create a CA in ``out_dir`` and issue every identity of a new consortium.

    ``nodes`` are MPyC parties in order: ``nodes[i]`` becomes ``MPyC party {i}``.
    ``hosts`` go into the gateway's and nodes' TLS certificates (with each one's own
    name, its compose service name), unless ``host_names`` lists the hosts of that
    gateway or node (each at its own address). The CA lives ``ca_valid_days`` (default: the
    larger of ``valid_days`` and five years) so identities can be issued later;
    leaves live ``valid_days``. ``now`` fixes the clock (tests).

    Refuses to replace an existing CA unless ``overwrite``; with it, files of
    identities no longer listed are left in place but drop out of the manifest.
    """
    root = Path(out_dir)
    if not nodes:
        raise ConfigurationError("a consortium needs at least one node")
    _check_validity(valid_days)
    ca_days = max(valid_days, _MIN_CA_DAYS) if ca_valid_days is None else ca_valid_days
    if ca_days < valid_days:
        raise ConfigurationError(
            f"the CA ({ca_days} days) must live at least as long as its leaves ({valid_days})"
        )
    existing = [name for name in ("ca.crt", "ca.key", MANIFEST_NAME) if (root / name).exists()]
    if existing and not overwrite:
        raise ConfigurationError(
            f"{root} already holds a consortium ({', '.join(existing)}); "
            "pass overwrite=True (--overwrite) to replace its CA and every certificate"
        )
    identities = _identities(
        trust_domain,
        [
            ("gateway", [gateway]),
            ("node", nodes),
            ("analyst", analysts),
            ("auditor", auditors),
            ("approver", approvers),
        ],
    )
    clock = _clock(now)
    ca = CertificateAuthority.create(trust_domain, now=clock, valid_days=ca_days)
    layout = ConsortiumLayout(
        root=root, trust_domain=trust_domain, nodes=tuple(nodes), identities=tuple(identities)
    )
    write_private_file(layout.ca_key, private_key_pem(ca.key))
    write_public_file(layout.ca_cert, certificate_pem(ca.cert))
    for identity in identities:
        own = (host_names or {}).get(identity.name, hosts)
        _write_identity(ca, layout, identity, hosts=own, now=clock, valid_days=valid_days)
    save_layout(layout)
    return layout


def _load_authority(layout: ConsortiumLayout) -> CertificateAuthority:
    cert = load_ca(layout.ca_cert)
    try:
        key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigurationError(
            f"no CA key at {layout.ca_key}: issue identities where the CA key is kept"
        ) from None
    except (ValueError, TypeError):
        raise ConfigurationError(f"{layout.ca_key} is not an unencrypted PEM key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigurationError(f"{layout.ca_key} is not the key of {layout.ca_cert}")
    return CertificateAuthority(cert=cert, key=key)


def issue_identity(
    out_dir: Path,
    identity: Identity,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    valid_days: int = 365,
    overwrite: bool = False,
    now: datetime | None = None,
) -> ConsortiumLayout:
    """Issue ``identity`` with the consortium's existing CA and record it.

    A new node is appended as the next MPyC party (every node then needs the new
    party list). Reissuing an existing identity needs ``overwrite`` and keeps a
    node's party index. Returns the updated layout.
    """
    layout = load_layout(out_dir)
    _check_validity(valid_days)
    if identity.trust_domain != layout.trust_domain:
        raise ConfigurationError(
            f"{identity.spiffe_id} is outside the consortium's trust domain {layout.trust_domain!r}"
        )
    known = identity in layout.identities
    if known and not overwrite:
        raise ConfigurationError(
            f"{identity} already has a certificate; pass overwrite=True (--overwrite) to reissue"
        )
    ca = _load_authority(layout)
    if not known:
        nodes = layout.nodes
        if identity.role == "node":
            nodes = (*nodes, identity.name)
        layout = ConsortiumLayout(
            root=layout.root,
            trust_domain=layout.trust_domain,
            nodes=nodes,
            identities=(*layout.identities, identity),
        )
    _write_identity(ca, layout, identity, hosts=hosts, now=_clock(now), valid_days=valid_days)
    save_layout(layout)
    return layout


def load_ca(path: Path) -> x509.Certificate:
    """The consortium CA certificate at ``path``."""
    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"no CA certificate at {path}") from None
    except ValueError:
        raise ConfigurationError(f"{path} is not a PEM X.509 certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ConfigurationError(f"{path} is not a CA certificate")
    return cert


def tls_credentials_bytes(
    layout: ConsortiumLayout, identity: Identity
) -> tuple[bytes, bytes, bytes]:
    """``(ca, cert, key)`` PEM bytes for ``grpc.ssl_*_credentials``."""
    cert_path, key_path = layout.tls_paths(identity)
    try:
        return layout.ca_cert.read_bytes(), cert_path.read_bytes(), key_path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigurationError(f"missing TLS material for {identity}: {err.filename}") from None


def tls_from_pki(pki_dir: str | Path, identity: str) -> tuple[bytes, bytes, bytes]:
    """The mutual-TLS material of ``identity`` (``"role/name"``) in a consortium PKI directory."""
    layout = load_layout(Path(pki_dir))
    try:
        who = Identity.parse(identity, layout.trust_domain)
    except ValueError as err:
        raise ConfigurationError(
            f"identity {identity!r} is not of the form role/name: {err}"
        ) from None
    return tls_credentials_bytes(layout, who)
