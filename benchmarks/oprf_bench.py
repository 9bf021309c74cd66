"""Scenario 11: what a threshold OPRF for persons' pseudonyms would cost, beside today's HMAC.

The protocol (benchmarks/threshold_oprf.py): the pseudonym key Shamir-shared among
the three nodes at the MPC's threshold t = 1, so any two evaluate and no one holds
it. Timed per key, in this process, on ``--oprf-keys`` national ids: the
requester's blinding (hash to the group, one exponentiation), one node's evaluation
(a point check, one exponentiation), the requester's combination of t + 1 answers
(t + 1 exponentiations, the unblinding folded in), and today's keyed HMAC-SHA256
(:func:`mpc_gateway.pseudonym.pseudonymise`). Every pseudonym is checked against the
one the whole key gives. Not timed here, because not built: the round trip that
carries the blinded points to t + 1 nodes (for an analyst, through the gateway).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.threshold_oprf import blind, deal, evaluate, finish, pseudonym_with_key
from mpc_gateway.pseudonym import pseudonymise

__all__ = ["oprf_scenario"]

NODES, T = 3, 1


def _per_key_us(step: Callable[[int], object], keys: int, repeats: int) -> float:
    """The median over ``repeats`` runs of ``step`` over every key, per key, in µs."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for n in range(keys):
            step(n)
        runs.append((time.perf_counter() - started) / keys * 1e6)
    return statistics.median(runs)


def oprf_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    keys, repeats = args.oprf_keys, args.oprf_repeats
    ids = [f"NID-{n:09d}" for n in range(keys)]
    key, shares = deal(NODES, T)
    evaluators = (1, 2)  # any t + 1 of the three
    blinded = [blind(x) for x in ids]
    answers = [{i: evaluate(shares.shares[i], b) for i in evaluators} for _, b in blinded]
    wrong = sum(
        finish(x, r, a, T) != pseudonym_with_key(x, key)
        for x, (r, _), a in zip(ids, blinded, answers)
    )
    hmac_key = secrets.token_bytes(32)
    steps = {
        "blind": _per_key_us(lambda n: blind(ids[n]), keys, repeats),
        "evaluate": _per_key_us(lambda n: evaluate(shares.shares[1], blinded[n][1]), keys, repeats),
        "finish": _per_key_us(
            lambda n: finish(ids[n], blinded[n][0], answers[n], T), keys, repeats
        ),
        "hmac": _per_key_us(lambda n: pseudonymise(hmac_key, ids[n]), keys, repeats),
    }
    requester = steps["blind"] + steps["finish"]
    return [
        {
            "case": f"{keys:,} national ids, m = {NODES}, t = {T}",
            "per_key_us": {k: round(v, 2) for k, v in steps.items()},
            "requester_us": round(requester, 2),
            "oprf_over_hmac": round((requester + (T + 1) * steps["evaluate"]) / steps["hmac"], 1),
            # one person screened in real time: requester and node CPU, before the round trip
            "one_key_cpu_ms": round((requester + steps["evaluate"]) / 1000, 3),
            "wrong_results": wrong,
        }
    ]
