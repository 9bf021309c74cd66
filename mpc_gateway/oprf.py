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
3. :func:`finish`: combine any t + 1 answers in the exponent (Lagrange at 0),
   check that every further answer lies on the same polynomial (one node that
   answers with a wrong share is caught when m > t + 1), unblind with r⁻¹, hash.

The key is made without a dealer (:func:`deal`, :func:`combine_deals`: joint
Feldman secret sharing). Every node deals a random polynomial of degree t,
publishes commitments g^(a_j) to its coefficients and gives node j the value
f(j); node j checks each value against its dealer's commitments and adds them
up. The key is the sum of the dealers' secrets, which no one ever sees; the
commitments also give every node's public key share g^(k_i) and the public key
g^k. The command ``mpcgw oprf`` runs this ceremony with signed files whose
shares are sealed to each recipient node (:mod:`mpc_gateway.oprf_ceremony`).

Security: t or fewer colluding nodes learn nothing of k, of x or of a pseudonym
(the passive model of the MPC). Nodes cannot tell two requests for one id apart.
Group arithmetic is libsodium's (PyNaCl), scalars modulo the group order L.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_from_uniform,
    crypto_core_ed25519_is_valid_point,
    crypto_scalarmult_ed25519_base_noclamp,
    crypto_scalarmult_ed25519_noclamp,
)
from nacl.exceptions import RuntimeError as NaclRuntimeError

from mpc_gateway.errors import ConfigurationError, IntegrityError, InvalidRequestError
from mpc_gateway.pseudonym import normalise_national_id

__all__ = [
    "L",
    "POINT_BYTES",
    "Blinded",
    "Deal",
    "KeyShare",
    "blind",
    "evaluate",
    "check_points",
    "finish",
    "deal",
    "check_share",
    "combine_deals",
    "shares_in_one_process",
    "load_key_share",
    "save_key_share",
    "joint_key",
    "pseudonyms_with_key",
    "MAX_POINTS",
    "REQUESTED",
    "points_sha256",
]

L = 2**252 + 27742317777372353535851937790883648493
"""The order of edwards25519's prime-order subgroup."""

POINT_BYTES = 32
MAX_POINTS = 10_000
"""The most blinded ids one request carries (a node evaluates 10,000 in about 1.3 s here)."""
REQUESTED = "pseudonyms.requested"
"""The gateway's audit entry for a request, which every node checks before it evaluates."""
_DOMAIN = b"mpc-gateway person pseudonym v2 (threshold OPRF)\x00"
_KEY_FILE_VERSION = 1


def _scalar(value: int) -> bytes:
    return (value % L).to_bytes(32, "little")


def _power(point: bytes, scalar: int) -> bytes:
    return bytes(crypto_scalarmult_ed25519_noclamp(_scalar(scalar), point))


def _base(scalar: int) -> bytes:
    return bytes(crypto_scalarmult_ed25519_base_noclamp(_scalar(scalar)))


def _add(points: Sequence[bytes]) -> bytes:
    total = points[0]
    for point in points[1:]:
        total = bytes(crypto_core_ed25519_add(total, point))
    return total


def points_sha256(points: Sequence[bytes]) -> str:
    """What the audit entries record of a request's blinded points (they are fixed-size)."""
    digest = hashlib.sha256()
    for point in points:
        digest.update(point)
    return digest.hexdigest()


def _is_point(data: bytes) -> bool:
    return len(data) == POINT_BYTES and bool(crypto_core_ed25519_is_valid_point(data))


def _hash_to_group(normal_id: str) -> bytes:
    """H(x): 32 uniform bytes of SHA-512, mapped into the group by Elligator 2."""
    uniform = hashlib.sha512(_DOMAIN + b"h2c\x00" + normal_id.encode()).digest()[:32]
    return bytes(crypto_core_ed25519_from_uniform(uniform))


def _output(normal_id: str, point: bytes) -> str:
    data = normal_id.encode()
    return hashlib.sha256(_DOMAIN + len(data).to_bytes(4, "big") + data + point).hexdigest()


def _random_scalar() -> int:
    return secrets.randbelow(L - 1) + 1


@dataclass(frozen=True)
class Blinded:
    """One national id on its way: its normal form, the blinding r and the point sent."""

    normal_id: str
    r: int
    point: bytes


def blind(national_id: str) -> Blinded:
    """The requester's step 1 (raises InvalidRequestError for an empty id)."""
    normal = normalise_national_id(national_id)
    r = _random_scalar()
    return Blinded(normal, r, _power(_hash_to_group(normal), r))


def check_points(points: Sequence[bytes]) -> None:
    """InvalidRequestError unless every point is one of the prime-order subgroup."""
    for n, point in enumerate(points):
        if not _is_point(point):
            raise InvalidRequestError(
                f"blinded national id {n} is not a point of edwards25519's prime-order subgroup"
            )


def evaluate(share: int, point: bytes) -> bytes:
    """A node's step 2: ``point`` raised to its key share, once the point checks out."""
    check_points([point])
    try:
        return _power(point, share)
    except NaclRuntimeError:  # the identity: only for a share of 0, never drawn
        raise InvalidRequestError("a blinded national id maps to the identity") from None


def _lagrange(xs: Sequence[int], at: int) -> list[int]:
    """The Lagrange coefficients of the points ``xs``, evaluated at ``at``, modulo L."""
    out = []
    for i in xs:
        num = den = 1
        for j in xs:
            if j != i:
                num = num * (at - j) % L
                den = den * (i - j) % L
        out.append(num * pow(den, -1, L) % L)
    return out


def finish(blinded: Sequence[Blinded], answers: Mapping[int, Sequence[bytes]], t: int) -> list[str]:
    """The requester's step 3: every id's pseudonym from the nodes' answers.

    ``answers`` maps each answering node's point (party index + 1) to its answer
    for every blinded id, in order. Any t + 1 nodes suffice; every answer beyond
    those must agree with them, or IntegrityError (some node used a wrong share).
    """
    xs = sorted(answers)
    if len(xs) < t + 1:
        raise IntegrityError(f"{len(xs)} nodes answered; the pseudonym key needs t + 1 = {t + 1}")
    for x in xs:
        if len(answers[x]) != len(blinded):
            raise IntegrityError(
                f"party {x} answered {len(answers[x])} of {len(blinded)} blinded ids"
            )
        if not all(_is_point(p) for p in answers[x]):
            raise IntegrityError(f"party {x} answered with a value that is not a group point")
    base, extra = xs[: t + 1], xs[t + 1 :]
    at_zero = _lagrange(base, 0)
    at_extra = {x: _lagrange(base, x) for x in extra}
    out = []
    for n, one in enumerate(blinded):
        inverse = pow(one.r, -1, L)
        column = [answers[x][n] for x in base]
        for x in extra:
            if (
                _add([_power(p, c) for p, c in zip(column, at_extra[x], strict=True)])
                != (answers[x][n])
            ):
                raise IntegrityError(
                    "the nodes' answers disagree: one of them evaluated with a wrong key share"
                )
        point = _add([_power(p, c * inverse) for p, c in zip(column, at_zero, strict=True)])
        out.append(_output(one.normal_id, point))
    return out


# ---- the key ceremony: joint Feldman secret sharing, no dealer ----


@dataclass(frozen=True)
class Deal:
    """One node's contribution: commitments to its polynomial and every node's value of it."""

    dealer: int  # party index + 1
    threshold: int
    commitments: tuple[bytes, ...]  # g^(a_j), j = 0..t
    shares: Mapping[int, int]  # recipient (party index + 1) -> f(recipient)


def deal(dealer: int, parties: int, threshold: int) -> Deal:
    """Node ``dealer``'s random polynomial of degree ``threshold``, shared among ``parties``."""
    if not 0 <= threshold < parties or not 1 <= dealer <= parties:
        raise ConfigurationError(
            f"a threshold of {threshold} among {parties} nodes (dealer {dealer}) is not possible"
        )
    coefficients = [_random_scalar() for _ in range(threshold + 1)]
    shares = {
        x: sum(c * pow(x, j, L) for j, c in enumerate(coefficients)) % L
        for x in range(1, parties + 1)
    }
    return Deal(dealer, threshold, tuple(_base(c) for c in coefficients), shares)


def _committed(commitments: Sequence[bytes], x: int) -> bytes:
    """g^(f(x)), from the commitments to f's coefficients."""
    return _add([_power(c, pow(x, j, L)) for j, c in enumerate(commitments)])


def check_share(commitments: Sequence[bytes], x: int, share: int) -> bool:
    """Whether ``share`` is the dealer's f(x) its commitments promise (Feldman's check)."""
    if not commitments or not all(_is_point(c) for c in commitments):
        return False
    return _base(share) == _committed(commitments, x)


@dataclass(frozen=True)
class KeyShare:
    """One node's share of the pseudonym key, with the public values anyone may check."""

    party: int  # party index + 1: the share is f(party)
    threshold: int
    share: int
    public_key: bytes  # g^k
    public_shares: tuple[bytes, ...]  # g^(k_x) of every node, x = 1..m

    @property
    def parties(self) -> int:
        return len(self.public_shares)


def combine_deals(
    party: int,
    parties: int,
    commitments: Mapping[int, Sequence[bytes]],
    shares: Mapping[int, int],
) -> KeyShare:
    """Node ``party``'s key share from each of the ``parties`` dealers' commitments and values.

    Refuses (IntegrityError) a dealer whose value does not match its commitments,
    a dealer missing, or dealers that disagree on the threshold.
    """
    dealers = sorted(commitments)
    if dealers != sorted(shares) or dealers != list(range(1, parties + 1)):
        raise IntegrityError(
            f"the ceremony needs one deal from every node, 1..m: have {dealers} and "
            f"values from {sorted(shares)}"
        )
    degrees = {len(c) for c in commitments.values()}
    if len(degrees) != 1:
        raise IntegrityError("the dealers disagree on the threshold")
    threshold = degrees.pop() - 1
    for dealer in dealers:
        if not check_share(commitments[dealer], party, shares[dealer]):
            raise IntegrityError(
                f"dealer {dealer}'s value for party {party} does not match its commitments"
            )
    public_shares = tuple(
        _add([_committed(commitments[d], x) for d in dealers]) for x in range(1, parties + 1)
    )
    public_key = _add([commitments[d][0] for d in dealers])
    share = sum(shares.values()) % L
    return KeyShare(party, threshold, share, public_key, public_shares)


def shares_in_one_process(parties: int, threshold: int) -> list[KeyShare]:
    """Every node's deal and combination in one process: tests and benchmarks only.

    Real nodes run the ceremony each on its own, in files (:mod:`mpc_gateway.oprf_ceremony`).
    """
    deals = [deal(d, parties, threshold) for d in range(1, parties + 1)]
    commitments = {d.dealer: d.commitments for d in deals}
    return [
        combine_deals(x, parties, commitments, {d.dealer: d.shares[x] for d in deals})
        for x in range(1, parties + 1)
    ]


def save_key_share(path: Path, key: KeyShare) -> None:
    """Write ``key`` to ``path`` with mode 0600; a key share is never overwritten."""
    data = {
        "version": _KEY_FILE_VERSION,
        "party": key.party,
        "threshold": key.threshold,
        "share": _scalar(key.share).hex(),
        "public_key": key.public_key.hex(),
        "public_shares": [p.hex() for p in key.public_shares],
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists: a key share is never overwritten") from None
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)


def load_key_share(path: Path) -> KeyShare:
    """Read a key share, checking its mode and that the share is the one its public values name."""
    try:
        mode = path.stat().st_mode
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"pseudonym key share {path} cannot be read: {err}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"pseudonym key share {path} is accessible to others: chmod 600")
    try:
        if data["version"] != _KEY_FILE_VERSION:
            raise ValueError(f"version {data['version']}")
        key = KeyShare(
            party=int(data["party"]),
            threshold=int(data["threshold"]),
            share=int.from_bytes(bytes.fromhex(data["share"]), "little"),
            public_key=bytes.fromhex(data["public_key"]),
            public_shares=tuple(bytes.fromhex(p) for p in data["public_shares"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigurationError(f"pseudonym key share {path} is malformed: {err}") from None
    if not 1 <= key.party <= key.parties or _base(key.share) != key.public_shares[key.party - 1]:
        raise ConfigurationError(f"pseudonym key share {path} does not match its public share")
    return key


def joint_key(keys: Sequence[KeyShare]) -> int:
    """The key t + 1 shares make: only for whoever plays every node (synthetic data, tests).

    No real party ever holds t + 1 shares; the example data generator does, because
    it writes every institution's data before any node runs.
    """
    if not keys or len(keys) < keys[0].threshold + 1:
        raise ConfigurationError("the pseudonym key needs t + 1 key shares")
    base = keys[: keys[0].threshold + 1]
    key = sum(c * k.share for c, k in zip(_lagrange([k.party for k in base], 0), base)) % L
    if _base(key) != base[0].public_key:
        raise ConfigurationError("the key shares given are not shares of one key")
    return key


def pseudonyms_with_key(national_ids: Sequence[str], key: int) -> list[str]:
    """What the protocol computes, by whoever holds the whole key (:func:`joint_key`)."""
    out = []
    for national_id in national_ids:
        normal = normalise_national_id(national_id)
        out.append(_output(normal, _power(_hash_to_group(normal), key)))
    return out
