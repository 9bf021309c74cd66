"""Where a consortium's key material lives on disk, and its manifest ``consortium.json``.

Layout under the consortium directory::

    ca.crt, ca.key                           the consortium CA
    consortium.json                          trust domain, nodes in party order, identities
    <role>/<name>/tls.crt, tls.key           gRPC mutual TLS, one per identity
    <role>/<name>/signing.crt, signing.key   Ed25519: gateway, nodes, approvers, analysts
    <role>/<name>/sealing.crt, sealing.key   X25519 key agreement: analysts (results
                                             are sealed to it, see pki.receiver) and
                                             nodes (the pseudonym key's ceremony)
    node/<name>/mpc/.config/party_{i}.crt    MPyC --ssl material, run the worker
    node/<name>/mpc/.config/party_{i}.key      with node/<name>/mpc as working
    node/<name>/mpc/.config/mpyc_ca.crt        directory

Paths in the manifest are relative to the consortium directory, so the directory
can be moved or mounted elsewhere as a whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.pki.identity import SIGNING_ROLES, Identity
from mpc_gateway.pki.issuance import write_public_file

__all__ = [
    "MANIFEST_NAME",
    "RECEIVING_ROLES",
    "SEALING_ROLES",
    "ConsortiumLayout",
    "load_layout",
    "save_layout",
]

MANIFEST_NAME = "consortium.json"

RECEIVING_ROLES: tuple[str, ...] = ("analyst",)
"""Roles that receive sealed results."""

SEALING_ROLES: tuple[str, ...] = (*RECEIVING_ROLES, "node")
"""Roles with an X25519 key-agreement certificate: receivers, and nodes for the values
of the pseudonym key's ceremony (:mod:`mpc_gateway.oprf.ceremony`)."""


class _NodeEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    party_index: int
    spiffe_id: str
    mpc_dir: str


class _IdentityEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: str
    name: str
    spiffe_id: str
    tls_cert: str
    tls_key: str
    signing_cert: str | None = None
    signing_key: str | None = None
    sealing_cert: str | None = None
    sealing_key: str | None = None


class _Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    trust_domain: str
    ca_cert: str
    ca_key: str
    nodes: list[_NodeEntry]
    identities: list[_IdentityEntry]


@dataclass(frozen=True)
class ConsortiumLayout:
    """The files of one consortium, as recorded in its ``consortium.json``."""

    root: Path
    trust_domain: str
    nodes: tuple[str, ...]
    """Node names in MPyC party order: ``nodes[i]`` is party ``i``."""
    identities: tuple[Identity, ...]

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    def _require(self, identity: Identity) -> None:
        if identity not in self.identities:
            raise ConfigurationError(
                f"{identity.spiffe_id} has no certificate in the consortium at {self.root}"
            )

    def _dir(self, identity: Identity) -> Path:
        return self.root / identity.role / identity.name

    def tls_paths(self, identity: Identity) -> tuple[Path, Path]:
        """``(tls.crt, tls.key)`` of ``identity``."""
        self._require(identity)
        return self._dir(identity) / "tls.crt", self._dir(identity) / "tls.key"

    def signing_paths(self, identity: Identity) -> tuple[Path, Path]:
        """``(signing.crt, signing.key)`` of a signing identity (SIGNING_ROLES)."""
        self._require(identity)
        if identity.role not in SIGNING_ROLES:
            raise ConfigurationError(
                f"{identity} has no signing key: only {', '.join(SIGNING_ROLES)} sign"
            )
        return self._dir(identity) / "signing.crt", self._dir(identity) / "signing.key"

    def sealing_paths(self, identity: Identity) -> tuple[Path, Path]:
        """``(sealing.crt, sealing.key)`` of an analyst or a node."""
        self._require(identity)
        if identity.role not in SEALING_ROLES:
            raise ConfigurationError(
                f"{identity} has no sealing key: only {', '.join(SEALING_ROLES)} have one"
            )
        return self._dir(identity) / "sealing.crt", self._dir(identity) / "sealing.key"

    def party_index(self, node_name: str) -> int:
        """The MPyC party index of node ``node_name``."""
        try:
            return self.nodes.index(node_name)
        except ValueError:
            raise ConfigurationError(
                f"node {node_name!r} is not an MPyC party of the consortium at {self.root}"
            ) from None

    def party_identity(self, party_index: int) -> Identity:
        """The node identity behind MPyC party ``party_index``."""
        if not 0 <= party_index < len(self.nodes):
            raise ConfigurationError(
                f"no MPyC party {party_index}: the consortium has {len(self.nodes)} nodes"
            )
        return Identity("node", self.nodes[party_index], self.trust_domain)

    def mpc_dir(self, node_name: str) -> Path:
        """The MPyC worker's working directory for ``node_name`` (it holds ``.config``)."""
        self.party_index(node_name)
        return self.root / "node" / node_name / "mpc"

    def mpc_files(self, node_name: str) -> tuple[Path, Path, Path]:
        """``(party_{i}.crt, party_{i}.key, mpyc_ca.crt)`` of ``node_name``."""
        config = self.mpc_dir(node_name) / ".config"
        i = self.party_index(node_name)
        return config / f"party_{i}.crt", config / f"party_{i}.key", config / "mpyc_ca.crt"


def _relative(layout: ConsortiumLayout, path: Path) -> str:
    return path.relative_to(layout.root).as_posix()


def _manifest_of(layout: ConsortiumLayout) -> _Manifest:
    nodes = [
        _NodeEntry(
            name=name,
            party_index=i,
            spiffe_id=layout.party_identity(i).spiffe_id,
            mpc_dir=_relative(layout, layout.mpc_dir(name)),
        )
        for i, name in enumerate(layout.nodes)
    ]
    entries = []
    for identity in layout.identities:
        tls_cert, tls_key = layout.tls_paths(identity)
        signing: dict[str, str] = {}
        if identity.role in SIGNING_ROLES:
            cert, key = layout.signing_paths(identity)
            signing = {
                "signing_cert": _relative(layout, cert),
                "signing_key": _relative(layout, key),
            }
        if identity.role in SEALING_ROLES:
            cert, key = layout.sealing_paths(identity)
            signing = {
                **signing,
                "sealing_cert": _relative(layout, cert),
                "sealing_key": _relative(layout, key),
            }
        entries.append(
            _IdentityEntry(
                role=identity.role,
                name=identity.name,
                spiffe_id=identity.spiffe_id,
                tls_cert=_relative(layout, tls_cert),
                tls_key=_relative(layout, tls_key),
                **signing,
            )
        )
    return _Manifest(
        trust_domain=layout.trust_domain,
        ca_cert=_relative(layout, layout.ca_cert),
        ca_key=_relative(layout, layout.ca_key),
        nodes=nodes,
        identities=entries,
    )


def save_layout(layout: ConsortiumLayout) -> None:
    """Write ``consortium.json`` for ``layout``."""
    text = _manifest_of(layout).model_dump_json(indent=2, exclude_none=True) + "\n"
    write_public_file(layout.manifest, text.encode())


def _layout_of(root: Path, manifest: _Manifest) -> ConsortiumLayout:
    try:
        identities = tuple(
            Identity(entry.role, entry.name, manifest.trust_domain) for entry in manifest.identities
        )
    except ValueError as err:
        raise ConfigurationError(f"{root / MANIFEST_NAME}: {err}") from None
    ordered = sorted(manifest.nodes, key=lambda node: node.party_index)
    if [node.party_index for node in ordered] != list(range(len(ordered))):
        raise ConfigurationError(
            f"{root / MANIFEST_NAME}: node party indices must be 0..{len(ordered) - 1}"
        )
    layout = ConsortiumLayout(
        root=root,
        trust_domain=manifest.trust_domain,
        nodes=tuple(node.name for node in ordered),
        identities=identities,
    )
    for i in range(len(layout.nodes)):
        if layout.party_identity(i) not in identities:
            raise ConfigurationError(
                f"{root / MANIFEST_NAME}: node {layout.nodes[i]!r} is listed as a party "
                "but has no identity entry"
            )
    return layout


def load_layout(out_dir: Path) -> ConsortiumLayout:
    """Read the layout of the consortium in ``out_dir`` from its ``consortium.json``."""
    root = Path(out_dir)
    path = root / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"no {MANIFEST_NAME} in {root}: create the consortium first (mpcgw pki init)"
        ) from None
    try:
        manifest = _Manifest.model_validate(json.loads(text))
    except (ValueError, ValidationError) as err:
        raise ConfigurationError(f"{path} is not a valid consortium manifest: {err}") from None
    return _layout_of(root, manifest)
