"""The pseudonym key's shares: joint Feldman secret sharing (no dealer), and the share files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpc_gateway.errors import ConfigurationError, IntegrityError
from mpc_gateway.oprf import group as g
from mpc_gateway.oprf.proof import PublicKey

__all__ = [
    "Deal",
    "KeyShare",
    "deal",
    "check_share",
    "combine_deals",
    "shares_in_one_process",
    "save_key_share",
    "load_key_share",
    "joint_key",
]

_KEY_FILE_VERSION = 1


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
    coefficients = [g.random_scalar() for _ in range(threshold + 1)]
    shares = {
        x: sum(c * pow(x, j, g.L) for j, c in enumerate(coefficients)) % g.L
        for x in range(1, parties + 1)
    }
    return Deal(dealer, threshold, tuple(g.base(c) for c in coefficients), shares)


def _committed(commitments: Sequence[bytes], x: int) -> bytes:
    """g^(f(x)), from the commitments to f's coefficients."""
    return g.add([g.power(c, pow(x, j, g.L)) for j, c in enumerate(commitments)])


def check_share(commitments: Sequence[bytes], x: int, share: int) -> bool:
    """Whether ``share`` is the dealer's f(x) its commitments promise (Feldman's check)."""
    if not commitments or not all(g.is_point(c) for c in commitments):
        return False
    return g.base(share) == _committed(commitments, x)


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

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.threshold, self.public_key, self.public_shares)


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
        g.add([_committed(commitments[d], x) for d in dealers]) for x in range(1, parties + 1)
    )
    public_key = g.add([commitments[d][0] for d in dealers])
    share = sum(shares.values()) % g.L
    return KeyShare(party, threshold, share, public_key, public_shares)


def shares_in_one_process(parties: int, threshold: int) -> list[KeyShare]:
    """Every node's deal and combination in one process: tests and benchmarks only.

    Real nodes run the ceremony each on its own, in files (:mod:`mpc_gateway.oprf.ceremony`).
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
        "share": g.scalar_bytes(key.share).hex(),
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
    if not 1 <= key.party <= key.parties or g.base(key.share) != key.public_shares[key.party - 1]:
        raise ConfigurationError(f"pseudonym key share {path} does not match its public share")
    return key


def joint_key(keys: Sequence[KeyShare]) -> int:
    """The key t + 1 shares make: only for whoever plays every node (synthetic data, tests).

    No real party ever holds t + 1 shares; the example data generator does, because
    it writes every institution's data before any node runs.
    """
    if not keys or len(keys) < keys[0].threshold + 1:
        raise ConfigurationError("the pseudonym key needs t + 1 key shares")
    first = keys[: keys[0].threshold + 1]
    key = sum(c * k.share for c, k in zip(g.lagrange([k.party for k in first], 0), first)) % g.L
    if g.base(key) != first[0].public_key:
        raise ConfigurationError("the key shares given are not shares of one key")
    return key
