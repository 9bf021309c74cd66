"""Scenario 11: what persons' pseudonyms under the nodes' joint key cost, per national id.

The protocol (:mod:`mpc_gateway.oprf`): the key Shamir-shared among the three nodes
at the MPC's threshold t = 1, no one holding it. Timed per id, in this
process, for one id alone (a real-time check) and for ``--oprf-keys`` ids in one
request: the requester's blinding (hash to the group, one exponentiation), one node's
evaluation (a point check and an exponentiation per id, and its proof that it used its
share, one per request), the requester's finish (every node's proof checked, t + 1
exponentiations per id with the unblinding folded in), and, as the baseline it
replaced, a keyed HMAC-SHA256 under one key every node held. Every
pseudonym is checked against the one the whole key gives.

Then the full path, on a local consortium (``--oprf-repeats`` × 8 times): one person's
pseudonym through the gateway and every node, the check of that pseudonym against
every member's alerts, both in turn (what ``mpcgw check --national-ids`` does), and
``--oprf-keys`` ids in one request; each pseudonym checked against the data's, each
check against the plaintext count of members that flagged the person.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.consortium import client_for, running_consortium
from benchmarks.report import note
from benchmarks.stats import summary
from mpc_gateway.computations.check import CheckOutcome
from mpc_gateway.devnet.localnet import DEFAULT_NODES
from mpc_gateway.devnet.screening_demo import members_per_key
from mpc_gateway.devnet.synth import national_id
from mpc_gateway.oprf import (
    Answer,
    blind,
    check_points,
    evaluate,
    finish,
    joint_key,
    load_key_share,
    prove,
    pseudonyms_with_key,
    shares_in_one_process,
)

__all__ = ["oprf_scenario", "oprf_entries"]

NODES, T = 3, 1


def _node(share: int, points: list[bytes]) -> Answer:
    """A node's work on a request: raise every point, prove it used its share."""
    answers = evaluate(share, check_points(points))
    return Answer(answers, prove(share, points, answers))


def _timed(runs: int, step: Callable[[], object]) -> float:
    """The median of ``runs`` timings of ``step``, in µs."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def oprf_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per id: one id alone (a real-time check), and ``--oprf-keys`` ids in one request."""
    keys, repeats = args.oprf_keys, args.oprf_repeats
    ids = [f"NID-{n:09d}" for n in range(keys)]
    shares = shares_in_one_process(NODES, T)
    public = shares[0].public
    expected = pseudonyms_with_key(ids, joint_key(shares))
    hmac_key = secrets.token_bytes(32)
    hmac_us = (
        _timed(
            repeats,
            lambda: [hmac.new(hmac_key, x.encode(), hashlib.sha256).hexdigest() for x in ids],
        )
        / keys
    )
    entries = []
    for size, runs in ((1, 20 * repeats), (keys, repeats)):
        batch = [blind(x) for x in ids[:size]]
        points = [b.point for b in batch]
        answers = {k.party: _node(k.share, points) for k in shares}
        wrong = sum(
            g != e for g, e in zip(finish(batch, answers, public), expected[:size], strict=True)
        )
        steps = {
            "blind": _timed(runs, lambda: [blind(x) for x in ids[:size]]) / size,  # noqa: B023
            "evaluate": _timed(runs, lambda: _node(shares[0].share, points)) / size,  # noqa: B023
            "finish": _timed(runs, lambda: finish(batch, answers, public)) / size,  # noqa: B023
            "hmac": hmac_us,
        }
        requester = steps["blind"] + steps["finish"]
        entries.append(
            {
                "part": "arithmetic",
                "case": "one id alone" if size == 1 else f"{size:,} ids in a request",
                "nodes": NODES,
                "threshold": T,
                "per_key_us": {k: round(v, 2) for k, v in steps.items()},
                "requester_us": round(requester, 2),
                "oprf_over_hmac": round((requester + NODES * steps["evaluate"]) / hmac_us, 1),
                "wrong_results": wrong,
            }
        )
    return entries


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _through_the_gateway(args: argparse.Namespace) -> list[dict[str, Any]]:
    root, repeats, many = args.workdir / "oprf", 8 * args.oprf_repeats, args.oprf_keys
    with running_consortium(root, DEFAULT_NODES, 2000, args.seed) as running:
        files = running.files
        key = joint_key([load_key_share(files.key_share(n)) for n in files.nodes])
        flagged = members_per_key(files, "person_pseudonym")
        ids = [national_id(p) for p in range(many)]
        expected = pseudonyms_with_key(ids, key)
        with client_for(files) as alice:
            alice.pseudonyms(ids[:1], purpose="benchmark")  # channels and sessions warm
            one, check, both, wrong = [], [], [], 0
            note(f"oprf: {repeats} persons screened through the gateway")
            for n in range(repeats):
                started = time.perf_counter()
                pseudonym = alice.pseudonyms([ids[n]], purpose="benchmark")
                one.append(_ms_since(started))
                checking = time.perf_counter()
                released = alice.check(
                    pseudonym, "members", key_column="person_pseudonym", purpose="benchmark"
                )
                check.append(_ms_since(checking))
                both.append(_ms_since(started))
                outcome = released.outcome
                assert isinstance(outcome, CheckOutcome)
                wrong += pseudonym != [expected[n]]
                wrong += outcome.answers != [flagged.get(expected[n], 0)]
            note(f"oprf: {many:,} national ids in one request")
            batch = []
            for _ in range(3):
                started = time.perf_counter()
                wrong += alice.pseudonyms(ids, purpose="benchmark") != expected
                batch.append(_ms_since(started))
    return [
        {
            "part": "gateway",
            "case": "one person, through the gateway and 3 nodes",
            "pseudonym": summary(one),
            "check": summary(check),
            "both": summary(both),
            "per_id_ms": round(statistics.median(batch) / many, 3),
            "ids_per_request": many,
            "wrong_results": wrong,
        }
    ]


def oprf_entries(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The arithmetic per id, then the full path."""
    return [*oprf_scenario(args), *_through_the_gateway(args)]
