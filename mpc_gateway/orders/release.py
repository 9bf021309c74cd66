"""A released result as the gateway relays it, and how its receiver opens it.

The gateway never reconstructs a result. It relays every node's shares sealed
to the receiver (:mod:`mpc_gateway.pki.receiver`), with the witnessed release:
the ``result.released`` entry of its log naming each ciphertext's digest, the
entry's inclusion proof, and the checkpoint it leads to, signed by the gateway
and cosigned by every node. The receiver's client checks all of it against the
consortium CA before it decrypts anything, recombines the shares and lets the
computation decode them: a result the client accepts is one every node
witnessed being logged as released to this receiver.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpc_gateway.audit.checkpoint import verify_witnessed_checkpoint
from mpc_gateway.audit.evidence import DispatchEvidence, log_origin, logged_in
from mpc_gateway.computations import Blocks, Plan, Released, Request, computation_of
from mpc_gateway.errors import GatewayError, IntegrityError
from mpc_gateway.lanes import Lane
from mpc_gateway.orders.shares import recombine_block
from mpc_gateway.pki import Identity, identity_from_certificate, load_verified_signing_cert
from mpc_gateway.pki.receiver import ReceiverKey, open_sealed, sealing_info
from mpc_gateway.query.schema import DatasetSchema

__all__ = ["SealedShare", "Relayed", "Verified", "open_relayed", "unsealed", "verified_signers"]


@dataclass(frozen=True)
class SealedShare:
    """One node's shares of a result, sealed to the receiver."""

    node: str
    party: int
    ciphertext: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.ciphertext).hexdigest()


@dataclass(frozen=True)
class Relayed:
    """What the gateway hands the receiver: sealed shares and the witnessed release."""

    query_id: str
    plan: Plan
    schema: DatasetSchema
    parties: int
    public: Blocks  # what the driver opened that decoding needs (a quantile search's result)
    shares: tuple[SealedShare, ...]
    release: DispatchEvidence  # its checkpoint carries every node's cosignature
    signing_certificates: tuple[bytes, ...]  # PEM: the gateway's and every node's
    sequence: int
    rounds: int
    total_ms: float
    mpc_ms: float
    local_ms: float
    release_ms: float  # the nodes' cosigning and handing over, as the gateway saw it
    lane: Lane = "short"  # the MPC lane it ran in: ``sequence`` counts in that lane


Verified = dict[bytes, tuple[Identity, Ed25519PublicKey, datetime]]
"""Signing certificates already checked against the CA: PEM -> (identity, key, valid until)."""


def _signers(
    relayed: Relayed, ca: x509.Certificate, verified: Verified
) -> dict[Identity, Ed25519PublicKey]:
    return verified_signers(relayed.signing_certificates, ca, verified)


def verified_signers(
    pems: Sequence[bytes], ca: x509.Certificate, verified: Verified
) -> dict[Identity, Ed25519PublicKey]:
    """Each signing certificate's identity and key, checked against the CA (or remembered)."""
    keys = {}
    now = datetime.now(UTC)
    for pem in pems:
        known = verified.get(pem)
        if known is not None and now < known[2]:
            keys[known[0]] = known[1]
            continue
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise IntegrityError("a signing certificate relayed is not PEM X.509") from None
        who = identity_from_certificate(cert)
        keys[who] = load_verified_signing_cert(pem, ca, who, now)
        verified[pem] = (who, keys[who], min(cert.not_valid_after_utc, ca.not_valid_after_utc))
    return keys


def _check_release(
    relayed: Relayed, receiver: Identity, ca: x509.Certificate, verified: Verified
) -> None:
    """Raise IntegrityError unless every node witnessed this release to ``receiver``."""
    plan, td = relayed.plan, receiver.trust_domain
    if plan.analyst != str(receiver):
        raise IntegrityError(f"the result is for {plan.analyst}, not for {receiver}")
    if relayed.schema.schema_hash != plan.schema_hash:
        raise IntegrityError("the result's schema is not the one its plan was made for")
    signers = _signers(relayed, ca, verified)
    gateways = [who for who in signers if who.role == "gateway"]
    if len(gateways) != 1:
        raise IntegrityError("the result must carry exactly one gateway signing certificate")
    gateway_log = log_origin(td, "gateway", gateways[0].name)
    nodes = {share.node for share in relayed.shares}
    witnesses = {
        log_origin(td, "node", who.name): key
        for who, key in signers.items()
        if who.role == "node" and who.name in nodes
    }
    if len(witnesses) != len(nodes) or len(nodes) != relayed.parties:
        raise IntegrityError(
            f"the result carries {len(relayed.shares)} sealed shares and {len(witnesses)} node "
            f"certificates for {relayed.parties} parties"
        )
    head, _ = verify_witnessed_checkpoint(  # the gateway's signature, then every cosignature
        relayed.release.checkpoint, gateway_log, signers[gateways[0]], witnesses, len(witnesses)
    )
    event = logged_in(relayed.release, head, relayed.query_id, "result.released")
    details = event.details
    digests = {share.node: share.digest for share in relayed.shares}
    if details.get("plan_hash") != plan.plan_hash or details.get("receiver") != str(receiver):
        raise IntegrityError(f"the logged release of query {relayed.query_id} is for another plan")
    if details.get("sealed") != digests:
        raise IntegrityError(
            f"the sealed shares are not the ones the log released for query {relayed.query_id} "
            f"(the checkpoint at size {head.size})"
        )


Points = dict[str, list[tuple[int, int, list[int]]]]
"""Per block, every node's shares: (Shamir x-coordinate, field modulus, values)."""


def unsealed(
    relayed: Relayed,
    key: ReceiverKey,
    receiver: Identity,
    ca: x509.Certificate,
    verified: Verified | None = None,
) -> Points:
    """Check the witnessed release and decrypt every node's shares: what sealing adds to opening.

    ``verified`` caches the signing certificates checked so far (a client keeps one).
    """
    _check_release(relayed, receiver, ca, {} if verified is None else verified)
    points: Points = {}
    for share in sorted(relayed.shares, key=lambda s: s.party):
        info = sealing_info(relayed.query_id, relayed.plan.plan_hash, share.node, share.party)
        opened = open_sealed(
            share.ciphertext, key.private_key, info, f"node {share.node}'s sealed shares"
        )
        try:
            blocks = json.loads(opened)
            for name, block in blocks.items():
                values = [int(v) for v in block["values"]]
                points.setdefault(name, []).append((share.party + 1, int(block["modulus"]), values))
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise IntegrityError(f"node {share.node}'s sealed shares are malformed") from err
    return points


def open_relayed(
    relayed: Relayed,
    key: ReceiverKey,
    receiver: Identity,
    ca: x509.Certificate,
    request: Request | None = None,
    verified: Verified | None = None,
) -> Released:
    """Check, decrypt, recombine and decode a relayed result (IntegrityError if anything is off).

    ``verified`` caches the signing certificates checked so far (a client keeps one).
    """
    points = unsealed(relayed, key, receiver, ca, verified)
    blocks = {name: recombine_block(name, p, relayed.parties) for name, p in points.items()}
    if set(blocks) & set(relayed.public):
        raise IntegrityError("a sealed block has the name of a public one")
    plan = relayed.plan
    try:
        outcome = computation_of(plan).decode(
            plan, {**relayed.public, **blocks}, relayed.schema, relayed.parties
        )
    except GatewayError:
        raise
    except (ValueError, KeyError, IndexError) as err:
        raise IntegrityError(f"the opened result does not decode: {err}") from err
    return Released(
        query_id=relayed.query_id,
        plan_hash=plan.plan_hash,
        dataset=plan.dataset,
        outcome=outcome,
        sequence=relayed.sequence,
        rounds=relayed.rounds,
        total_ms=relayed.total_ms,
        mpc_ms=relayed.mpc_ms,
        local_ms=relayed.local_ms,
        controls=plan.controls,
        request=request,
        lane=relayed.lane,
    )
