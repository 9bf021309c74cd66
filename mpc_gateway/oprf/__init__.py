"""Persons' pseudonyms under a key no one holds: a threshold OPRF (2HashDH over edwards25519).

Companies are matched across institutions by their public LEI; persons by a
pseudonym of their national id. The pseudonym is a keyed function of the id
(national ids are few enough to enumerate, so an unkeyed hash would not hide
them), and the key is held jointly: it is Shamir-shared among the m nodes at
threshold t, and no node, gateway or analyst ever holds it whole. So no single
member can compute the pseudonym of an id it does not hold; it must ask the
other nodes online, and they count and log every evaluation.

    pseudonym(x) = SHA-256(DOMAIN ‖ len(x) ‖ x ‖ H(x)^k),   H: hash to the prime-order group

Whoever holds ``x`` (an institution pseudonymising its customers, an analyst
screening a person) computes it with the nodes' help, learning nothing else:

1. :func:`blind`: draw r, send B = H(x)^r (a uniform point: it says nothing of x);
2. :func:`evaluate`, at every node i: check B is a point of the prime-order
   subgroup, answer B^(k_i) with its key share;
3. :func:`finish`: check every node's proof that its answers are raised to its
   public key share ``g^(k_i)`` (a node that used a wrong share, or a gateway that
   replaced the answers, is caught), combine any t + 1 answers in the exponent
   (Lagrange at 0), unblind with r⁻¹, hash.

The key is made without a dealer (:func:`deal`, :func:`combine_deals`: joint
Feldman secret sharing). Every node deals a random polynomial of degree t,
publishes commitments g^(a_j) to its coefficients and gives node j the value
f(j); node j checks each value against its dealer's commitments and adds them
up. The key is the sum of the dealers' secrets, which no one ever sees; the
commitments also give every node's public key share g^(k_i) and the public key
g^k. The command ``mpcgw oprf`` runs this ceremony with signed files whose
shares are sealed to each recipient node (:mod:`.ceremony`).

Security: t or fewer colluding nodes learn nothing of k, of x or of a pseudonym
(the passive model of the MPC). Nodes cannot tell two requests for one id apart.
Group arithmetic is libsodium's (PyNaCl), scalars modulo the group order L.

Modules: :mod:`.group` (the group), :mod:`.keys` (shares, ceremony arithmetic, files),
:mod:`.protocol` (blind, evaluate, finish), :mod:`.proof` (each node's proof that it
used its share, and its signed statement of the public key), :mod:`.ceremony`
(the ceremony in signed, sealed files), :mod:`.request` (the requester's signature on what it
asks, which the gateway and every node check).
"""

from __future__ import annotations

from mpc_gateway.oprf.group import POINT_BYTES, L
from mpc_gateway.oprf.keys import (
    Deal,
    KeyShare,
    check_share,
    combine_deals,
    deal,
    joint_key,
    load_key_share,
    save_key_share,
    shares_in_one_process,
)
from mpc_gateway.oprf.proof import PublicKey, key_statement, prove, read_key_statement, verify
from mpc_gateway.oprf.protocol import (
    MAX_POINTS,
    REQUESTED,
    Answer,
    Blinded,
    CheckedPoints,
    blind,
    check_points,
    evaluate,
    finish,
    normal_id,
    points_sha256,
    pseudonyms_with_key,
)
from mpc_gateway.oprf.request import SignedRequest, check_request, request_sha256, sign_request

__all__ = [
    "L",
    "POINT_BYTES",
    "MAX_POINTS",
    "REQUESTED",
    "Answer",
    "Blinded",
    "CheckedPoints",
    "Deal",
    "KeyShare",
    "PublicKey",
    "SignedRequest",
    "check_request",
    "request_sha256",
    "sign_request",
    "blind",
    "check_points",
    "check_share",
    "combine_deals",
    "deal",
    "evaluate",
    "finish",
    "joint_key",
    "key_statement",
    "load_key_share",
    "normal_id",
    "points_sha256",
    "prove",
    "pseudonyms_with_key",
    "read_key_statement",
    "save_key_share",
    "shares_in_one_process",
    "verify",
]
