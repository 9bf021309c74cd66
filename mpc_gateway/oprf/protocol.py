"""The three steps of a pseudonym: blind (requester), evaluate (each node), finish (requester)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import NewType

from nacl.exceptions import RuntimeError as NaclRuntimeError

from mpc_gateway.errors import IntegrityError, InvalidRequestError
from mpc_gateway.oprf import group as g
from mpc_gateway.oprf.proof import PublicKey, verify
from mpc_gateway.pseudonym import normalise_national_id
from mpc_gateway.text import unicode_text

__all__ = [
    "MAX_POINTS",
    "REQUESTED",
    "Blinded",
    "Answer",
    "CheckedPoints",
    "blind",
    "check_points",
    "evaluate",
    "finish",
    "normal_id",
    "points_sha256",
    "pseudonyms_with_key",
]

MAX_POINTS = 2_000
"""The most blinded ids one request carries: a node checks, evaluates and proves 2,000 in
about 0.6 s on the reference machine, so a request stays well inside a query's deadline
and a node's cores are not held for seconds; the client sends a longer list in several."""
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(_WORKERS, thread_name_prefix="oprf-finish")
"""Threads for the requester's step 3: libsodium's exponentiations run outside the GIL."""
_SIDE_BY_SIDE = 16
"""Fewer ids are finished in the calling thread: handing them over costs more than it saves."""
REQUESTED = "pseudonyms.requested"
"""The gateway's audit entry for a request, which every node checks before it evaluates."""


@dataclass(frozen=True)
class Blinded:
    """One national id on its way: its normal form, the blinding r and the point sent."""

    normal_id: str
    r: int
    point: bytes


@dataclass(frozen=True)
class Answer:
    """One node's answers to a request, in order, and its proof that they use its share."""

    points: Sequence[bytes]
    proof: bytes


def points_sha256(points: Sequence[bytes]) -> str:
    """What the audit entries record of a request's blinded points (they are fixed-size)."""
    digest = hashlib.sha256()
    for point in points:
        digest.update(point)
    return digest.hexdigest()


def _output(normal_id: str, point: bytes) -> str:
    data = normal_id.encode()
    return hashlib.sha256(g.DOMAIN + len(data).to_bytes(4, "big") + data + point).hexdigest()


def normal_id(national_id: str) -> str:
    """The form an id is blinded in; InvalidRequestError for an empty id, or one not UTF-8."""
    return unicode_text(normalise_national_id(national_id), "a national identifier")


def blind(national_id: str) -> Blinded:
    """The requester's step 1 (raises as :func:`normal_id`)."""
    normal = normal_id(national_id)
    r = g.random_scalar()
    return Blinded(normal, r, g.power(g.hash_to_group(normal), r))


CheckedPoints = NewType("CheckedPoints", tuple[bytes, ...])
"""Blinded points that :func:`check_points` found in the prime-order subgroup: the only input
:func:`evaluate` takes, so a node checks each point once (the check is a third of its work)."""


def check_points(points: Sequence[bytes]) -> CheckedPoints:
    """The points, once each is one of the prime-order subgroup; else InvalidRequestError."""
    for n, point in enumerate(points):
        if not g.is_point(point):
            raise InvalidRequestError(
                f"blinded national id {n} is not a point of edwards25519's prime-order subgroup"
            )
    return CheckedPoints(tuple(points))


def evaluate(share: int, points: CheckedPoints) -> list[bytes]:
    """A node's step 2: each checked point raised to its key share."""
    try:
        return [g.power(point, share) for point in points]
    except NaclRuntimeError:  # the identity: only for a share of 0, never drawn
        raise InvalidRequestError("a blinded national id maps to the identity") from None


def finish(
    blinded: Sequence[Blinded], answers: Mapping[int, Answer], public: PublicKey
) -> list[str]:
    """The requester's step 3: every id's pseudonym from the nodes' answers.

    ``answers`` maps each answering node's point (party index + 1) to its answers.
    The first t + 1 nodes whose proofs check against their public key shares give
    the pseudonyms; if fewer than t + 1 do, IntegrityError names those that did not.
    """
    xs = sorted(answers)
    need = public.threshold + 1
    if len(xs) < need:
        raise IntegrityError(f"{len(xs)} nodes answered; the pseudonym key needs t + 1 = {need}")
    points = [b.point for b in blinded]

    def proves(x: int) -> bool:
        answer = answers[x]
        if len(answer.points) != len(blinded):
            raise IntegrityError(
                f"party {x} answered {len(answer.points)} of {len(blinded)} blinded ids"
            )
        if not 1 <= x <= len(public.shares) or not all(g.is_point(p) for p in answer.points):
            raise IntegrityError(f"party {x} answered with values that are not group points")
        return verify(public.shares[x - 1], points, answer.points, answer.proof)

    # side by side on the pool for many ids: the nodes' proofs, then the ids in slices; a
    # node is checked only while fewer than t + 1 passed, in party order, so one node that
    # answers wrong is outvoted as before
    run = _POOL.map if len(blinded) >= _SIDE_BY_SIDE else map
    first: list[int] = []
    wrong: list[int] = []
    unchecked = iter(xs)
    while len(first) < need and (turn := list(islice(unchecked, need - len(first)))):
        for x, ok in zip(turn, run(proves, turn), strict=True):
            (first if ok else wrong).append(x)
    if len(first) < need:
        raise IntegrityError(
            f"party {', '.join(map(str, wrong))}'s answers do not prove they were raised to "
            "their key shares, and the others are too few: a node evaluated with a wrong "
            "share, or the answers were replaced on the way"
        )
    at_zero = g.lagrange(first, 0)

    def combined(ids: range) -> list[str]:
        out = []
        for n in ids:
            inverse = pow(blinded[n].r, -1, g.L)
            column = [answers[x].points[n] for x in first]
            point = g.add([g.power(p, c * inverse) for p, c in zip(column, at_zero, strict=True)])
            out.append(_output(blinded[n].normal_id, point))
        return out

    size = -(-len(blinded) // _WORKERS) or 1
    slices = [range(i, min(i + size, len(blinded))) for i in range(0, len(blinded), size)]
    return [p for part in run(combined, slices) for p in part]


def pseudonyms_with_key(national_ids: Sequence[str], key: int) -> list[str]:
    """What the protocol computes, by whoever holds the whole key (:func:`keys.joint_key`)."""
    out = []
    for national_id in national_ids:
        normal = normalise_national_id(national_id)
        out.append(_output(normal, g.power(g.hash_to_group(normal), key)))
    return out
