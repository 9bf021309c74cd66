"""The pseudonym key's ceremony, in files: every node deals, every node combines, no dealer.

Each node runs ``mpcgw oprf deal`` and publishes the file it writes: its
commitments to a random polynomial (:func:`mpc_gateway.oprf.deal`) and every
node's value of it, each sealed with HPKE to that node's certified key-agreement
key (``node/<name>/sealing.crt``), the whole signed with its certified Ed25519
signing key. The files may travel by any channel, the gateway's operator
included: they reveal nothing but the commitments. Each node then runs ``mpcgw
oprf combine`` over every node's file: it checks each signature, opens its own
values, checks each against its dealer's commitments and writes its key share
(mode 0600) beside its data. A node that dealt inconsistent values is named and
the ceremony must be run again without it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import ConfigurationError, GatewayError, IntegrityError
from mpc_gateway.oprf.keys import KeyShare, combine_deals, deal, save_key_share
from mpc_gateway.pki import (
    Identity,
    load_ca,
    load_layout,
    load_signing_key,
    load_verified_signing_cert,
    sign,
    verify,
)
from mpc_gateway.pki.receiver import load_receiver_key, open_sealed, receiver_public_key, seal

__all__ = ["default_threshold", "write_deal", "combine_ceremony", "whole_ceremony"]

_KIND = "mpc-gateway pseudonym key deal v1"


def default_threshold(parties: int) -> int:
    """MPyC's: any majority of the nodes evaluates, a minority learns nothing."""
    return (parties - 1) // 2


def _info(trust_domain: str, dealer: str, recipient: str, commitments: Sequence[str]) -> bytes:
    return canonical_bytes(
        {
            "label": _KIND,
            "trust_domain": trust_domain,
            "dealer": dealer,
            "recipient": recipient,
            "commitments_sha256": hashlib.sha256("".join(commitments).encode()).hexdigest(),
        }
    )


def write_deal(pki_dir: Path, node: str, out: Path, threshold: int | None = None) -> Path:
    """Node ``node``'s deal for the consortium at ``pki_dir``, written to ``out``."""
    layout = load_layout(pki_dir)
    ca, td = load_ca(layout.ca_cert), layout.trust_domain
    me = Identity("node", node, td)
    party = layout.party_index(node) + 1
    t = default_threshold(len(layout.nodes)) if threshold is None else threshold
    dealt = deal(party, len(layout.nodes), t)
    commitments = [c.hex() for c in dealt.commitments]
    sealed = {}
    for index, name in enumerate(layout.nodes):
        recipient = Identity("node", name, td)
        cert_path, _ = layout.sealing_paths(recipient)
        key = receiver_public_key(cert_path.read_bytes(), ca, recipient)
        value = dealt.shares[index + 1].to_bytes(32, "little")
        ciphertext = seal(value, key, _info(td, node, name, commitments))
        sealed[name] = base64.b64encode(ciphertext).decode()
    body = {
        "kind": _KIND,
        "trust_domain": td,
        "dealer": node,
        "nodes": list(layout.nodes),
        "threshold": t,
        "commitments": commitments,
        "sealed": sealed,
    }
    signature = sign(load_signing_key(layout.signing_paths(me)[1]), canonical_bytes(body))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**body, "signature": base64.b64encode(signature).decode()}))
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"deal file {path} cannot be read: {err}") from None
    if not isinstance(data, dict) or data.get("kind") != _KIND:
        raise IntegrityError(f"{path} is not a pseudonym key deal")
    return data


def combine_ceremony(pki_dir: Path, node: str, deals: Sequence[Path], out: Path) -> KeyShare:
    """Node ``node``'s key share from every node's deal file, checked; written to ``out``."""
    layout = load_layout(pki_dir)
    ca, td = load_ca(layout.ca_cert), layout.trust_domain
    me = Identity("node", node, td)
    party = layout.party_index(node) + 1
    mine = load_receiver_key(*layout.sealing_paths(me))
    commitments: dict[int, list[bytes]] = {}
    values: dict[int, int] = {}
    for path in deals:
        data = _read(path)
        dealer = str(data.get("dealer", ""))
        try:
            if data.get("trust_domain") != td or data.get("nodes") != list(layout.nodes):
                raise IntegrityError("it is for another consortium or another list of nodes")
            if dealer not in layout.nodes:
                raise IntegrityError(f"its dealer {dealer[:60]!r} is not a node")
            signer = Identity("node", dealer, td)
            key = load_verified_signing_cert(
                layout.signing_paths(signer)[0].read_bytes(), ca, signer
            )
            body = {k: v for k, v in data.items() if k != "signature"}
            verify(key, base64.b64decode(data["signature"]), canonical_bytes(body), what="deal")
            hexes = list(data["commitments"])
            if len(hexes) != int(data["threshold"]) + 1:
                raise IntegrityError("its commitments do not match its threshold")
            x = layout.party_index(dealer) + 1
            if x in commitments:
                raise IntegrityError(f"{dealer} dealt twice")
            info = _info(td, dealer, node, hexes)
            value = open_sealed(
                base64.b64decode(data["sealed"][node]), mine.private_key, info, "deal"
            )
        except (GatewayError, KeyError, TypeError, ValueError) as err:
            reason = err.public_message if isinstance(err, GatewayError) else f"missing {err}"
            raise IntegrityError(f"deal {path} ({dealer[:60]}) is refused: {reason}") from None
        commitments[x] = [bytes.fromhex(h) for h in hexes]
        values[x] = int.from_bytes(value, "little")
    share = combine_deals(party, len(layout.nodes), commitments, values)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_key_share(out, share)
    return share


def whole_ceremony(
    pki_dir: Path, deal_path: Callable[[str], Path], share_path: Callable[[str], Path]
) -> list[KeyShare]:
    """Every node's part in turn, where one operator runs every node (a demo, a test bed).

    Each deals to ``deal_path(node)``, then each combines into ``share_path(node)``.
    """
    nodes = load_layout(pki_dir).nodes
    deals = [write_deal(pki_dir, name, deal_path(name)) for name in nodes]
    return [combine_ceremony(pki_dir, name, deals, share_path(name)) for name in nodes]
