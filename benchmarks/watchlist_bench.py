"""Scenario 8: a watchlist's overlap with every member's alerts, against the no-privacy floor.

One consortium (three nodes, open policies) whose alert books each hold
``--watchlist-alerts`` distinct counterparties (LEIs drawn from a universe three
times that size, so members overlap), and a watchlist of ``--watchlist-keys``
distinct LEIs, half of them drawn from the members' universe. The analyst asks
only how many of the watchlist's keys some member holds an alert of
(``mpcgw check --keys FILE --overlap``): the private intersection's cardinality;
then also the members' alert amounts on those keys, summed (``--amount``: the
intersection-sum). Every node joins the keys against its own alerts (DuckDB) and
inputs one bit per key (and its own total); the MPC ORs the bits and sums them.
Timed at the client, checked against the pooled plaintext, beside the floor with
no privacy at all: a plain hash join (DuckDB, the keys against the union of the
members' alerts). The gateway's own
figures split the time: its whole handling of the query, and the MPC step in it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from benchmarks.consortium import client_for, running_consortium
from benchmarks.report import note
from benchmarks.stats import summary
from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.check import CheckOutcome
from mpc_gateway.devnet.localnet import DEFAULT_NODES, ConsortiumFiles
from mpc_gateway.devnet.screening_demo import load_alerts, overlap_of
from mpc_gateway.devnet.synth import day_number, write_loan_book

__all__ = ["watchlist_scenario", "alerts_of", "watchlist"]

_PERSON = "p" * 64  # the schema wants a pseudonym per alert; the benchmark screens LEIs


def _lei(ids: np.ndarray) -> list[str]:
    return [f"5493{c:012d}MPCG{c % 97:02d}" for c in ids.tolist()]


def alerts_of(institution: int, alerts: int, seed: int) -> pd.DataFrame:
    """``alerts`` distinct counterparties of one member, from a universe of 3 × ``alerts``."""
    rng = np.random.default_rng([seed, institution])
    ids = rng.choice(3 * alerts, size=alerts, replace=False)
    today = day_number(pd.Timestamp.now(tz="UTC").date())
    return pd.DataFrame(
        {
            "counterparty_lei": _lei(ids),
            "person_pseudonym": _PERSON,
            "kind": "aml",
            "raised_day": np.full(alerts, today, dtype=np.int64),
            "amount": np.round(rng.uniform(1, 1_000_000, size=alerts), 2),
        }
    )


def watchlist(keys: int, alerts: int, seed: int) -> list[str]:
    """``keys`` distinct LEIs: half from the members' universe, half from outside it."""
    rng = np.random.default_rng([seed, 99])
    inside = rng.choice(3 * alerts, size=keys // 2, replace=False)
    outside = 3 * alerts + rng.choice(10 * keys, size=keys - keys // 2, replace=False)
    return _lei(np.concatenate([inside, outside]))


def _hash_join(files: ConsortiumFiles, keys: list[str]) -> tuple[int, Decimal, float]:
    """The overlap and its amount by a plain DuckDB join over the pooled alerts; its seconds
    (the alerts loaded first, untimed)."""
    with duckdb.connect(":memory:") as con:
        load_alerts(con, files)
        started = time.perf_counter()
        count, amount = overlap_of(con, keys)
        return count, amount, time.perf_counter() - started


def _timed(
    alice: GatewayClient, keys: list[str], amount: bool, expected: CheckOutcome, repeats: int
) -> dict[str, Any]:
    """``repeats`` overlap checks (with the amount, if asked), each checked against ``expected``."""
    times, gateway_ms, mpc_ms, local_ms, wrong = [], [], [], [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        released = alice.check(keys, "overlap", purpose="benchmark", amount=amount)
        times.append((time.perf_counter() - started) * 1000)
        gateway_ms.append(released.total_ms)
        mpc_ms.append(released.mpc_ms)
        local_ms.append(released.local_ms)
        outcome = released.outcome
        assert isinstance(outcome, CheckOutcome)
        wrong += (outcome.answers, outcome.amount) != (expected.answers, expected.amount)
    return {
        "secure": summary(times),
        "gateway_ms": statistics.median(gateway_ms),
        "mpc_ms": statistics.median(mpc_ms),
        "local_ms": statistics.median(local_ms),
        "wrong_results": wrong,
    }


def watchlist_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    keys_n, alerts_n = args.watchlist_keys, args.watchlist_alerts

    def write_alerts(files: ConsortiumFiles) -> None:
        for i, name in enumerate(files.institutions):
            write_loan_book(files.data_file(name, "alerts"), alerts_of(i, alerts_n, args.seed))

    root = args.workdir / "watchlist"
    entries = []
    with running_consortium(root, DEFAULT_NODES, 1000, args.seed, 600.0, write_alerts) as running:
        files = running.files
        keys = watchlist(keys_n, alerts_n, args.seed)
        overlap, amount, join_s = _hash_join(files, keys)
        with client_for(files, timeout_s=600.0) as alice:
            for with_amount in (False, True):
                asked = "overlap and amount" if with_amount else "overlap"
                note(f"watchlist: {asked}, {keys_n:,} keys against {alerts_n:,} alerts per member")
                expected = CheckOutcome(keys, "overlap", [overlap], amount if with_amount else None)
                timed = _timed(alice, keys, with_amount, expected, args.watchlist_repeats)
                entries.append(
                    {
                        "case": f"{asked}: {keys_n:,} keys × {alerts_n:,} alerts per member",
                        "overlap": overlap,
                        "amount": str(amount) if with_amount else None,
                        **timed,
                        "hash_join_ms": round(join_s * 1000, 3),
                        "secure_over_join": round(timed["secure"]["median_ms"] / 1000 / join_s, 1),
                    }
                )
    return entries
