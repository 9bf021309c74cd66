"""The demo's real-time screening: counterparties and persons checked against every member's alerts.

analyst/alice screens a few of the loan books' counterparties (the largest
borrowers, some a member lent to, one unknown anywhere) and a few persons, one
check per question, then a watchlist of 2,000 LEIs in one batch (only how many of
them some member flagged for AML, and those alerts' amounts summed), and each
answer is compared with the pooled plaintext alerts (DuckDB over every
institution's file, for the demo only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import Released
from mpc_gateway.computations.check import alert_filter
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.devnet.risk_demo import RiskCheck
from mpc_gateway.devnet.synth import national_id
from mpc_gateway.oprf import joint_key, load_key_share, pseudonyms_with_key

__all__ = [
    "UNKNOWN_LEI",
    "run_screening",
    "members_per_key",
    "load_alerts",
    "overlap_of",
    "watchlist_overlap",
]

WATCHLIST = 2000  # LEIs in the demo's watchlist: half from the members' alerts, half unknown

UNKNOWN_LEI = "5493999999999999MPCG99"
PERSONS_SCANNED = 200  # national ids the demo looks among for persons several members flagged
"""An LEI no member has an alert of: every check must answer "no" for it."""


def members_per_key(files: ConsortiumFiles, column: str, where: str = "TRUE") -> dict[str, int]:
    """The plaintext answer: per key, how many institutions hold an alert passing ``where``."""
    counts: dict[str, int] = {}
    with duckdb.connect(":memory:") as con:
        for node in files.institutions:
            path = files.data_file(node, "alerts")
            sql = f"SELECT DISTINCT {column} FROM '{path}' WHERE {where}"
            for (key,) in con.execute(sql).fetchall():
                counts[key] = counts.get(key, 0) + 1
    return counts


def load_alerts(
    con: duckdb.DuckDBPyConnection, files: ConsortiumFiles, where: str = "TRUE"
) -> None:
    """Every member's alerts passing ``where``, pooled in table ``alerts`` (key, cents)."""
    books = [str(files.data_file(n, "alerts")) for n in files.institutions]
    con.execute(
        "CREATE TABLE alerts AS SELECT counterparty_lei AS k, "
        f"CAST(round(amount * 100) AS BIGINT) AS cents FROM read_parquet(?) WHERE ({where})",
        [books],
    )


def overlap_of(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> tuple[int, Decimal]:
    """How many ``keys`` the pooled ``alerts`` hold, and those alerts' amounts summed exactly."""
    con.register("watch", pd.DataFrame({"k": list(keys)}))
    try:
        ((count, cents),) = con.execute(
            "SELECT count(DISTINCT k), sum(cents) FROM alerts WHERE k IN (SELECT k FROM watch)"
        ).fetchall()
    finally:
        con.unregister("watch")
    return int(count), Decimal(int(cents or 0)).scaleb(-2)


def watchlist_overlap(
    files: ConsortiumFiles, keys: Sequence[str], where: str = "TRUE"
) -> tuple[int, Decimal]:
    """The plaintext answer: how many ``keys`` some member holds an alert of (passing ``where``),
    and the amount of those alerts at every member, summed exactly (in cents)."""
    with duckdb.connect(":memory:") as con:
        load_alerts(con, files, where)
        return overlap_of(con, keys)


def _watchlist(client: GatewayClient, files: ConsortiumFiles) -> RiskCheck:
    where = alert_filter("aml", None)
    flagged = sorted(members_per_key(files, "counterparty_lei", where))[: WATCHLIST // 2]
    keys = [*flagged, *(f"5493{i:012d}MPCG98" for i in range(WATCHLIST - len(flagged)))]
    started = time.perf_counter()
    released = client.check(keys, "overlap", where=where, amount=True)
    seconds = time.perf_counter() - started
    (secure,) = released.records()
    count, amount = watchlist_overlap(files, keys, where)
    plain = {"keys": len(keys), "overlap": count, "amount": str(amount)}
    return RiskCheck(
        f"A watchlist of {len(keys):,} LEIs: how many flagged for AML, and their alerts' amount",
        {"computation": "check", "question": "overlap", "amount": True, "keys": len(keys)},
        secure,
        plain,
        seconds,
        f"{secure['overlap']:,} flagged, EUR {Decimal(secure['amount']):,} in all",
        f"{count:,} flagged, EUR {amount:,} in all",
    )


def _screen(
    title: str,
    keys: list[str],
    answer: Callable[[], Released],
    plain: dict[str, int],
    question: str,
) -> RiskCheck:
    started = time.perf_counter()
    released = answer()
    seconds = time.perf_counter() - started
    expected: list[dict[str, Any]] = [
        {"key": k, question: k in plain if question == "flagged" else plain.get(k, 0)} for k in keys
    ]
    secure = released.records()
    said = ", ".join(f"{r['key'][-8:]}: {r[question]}" for r in secure)
    told = ", ".join(f"{r['key'][-8:]}: {r[question]}" for r in expected)
    query = {"computation": "check", "question": question, "keys": len(keys)}
    return RiskCheck(title, query, {"keys": secure}, {"keys": expected}, seconds, said, told)


def _national_ids(files: ConsortiumFiles, persons: dict[str, int]) -> tuple[list[str], list[str]]:
    """The national ids of the persons most members flagged, and one no member knows, with the
    pseudonyms the data holds for them (the reference: the example data's joint key)."""
    key = joint_key([load_key_share(files.key_share(n)) for n in files.nodes])
    pool = [national_id(p) for p in range(PERSONS_SCANNED)]
    named = dict(zip(pool, pseudonyms_with_key(pool, key), strict=True))
    ids = sorted(pool, key=lambda n: (-persons.get(named[n], 0), n))[:3] + ["NID-999999999"]
    return ids, pseudonyms_with_key(ids, key)


def run_screening(client: GatewayClient, files: ConsortiumFiles) -> list[RiskCheck]:
    """Screen counterparties (any alert; AML in the last 90 days) and persons (how many)."""
    anytime = members_per_key(files, "counterparty_lei")
    leis = [*sorted(anytime, key=lambda k: (-anytime[k], k))[:3], UNKNOWN_LEI]
    recent = alert_filter("aml", 90)
    persons = members_per_key(files, "person_pseudonym")
    ids, pseudonyms = _national_ids(files, persons)
    return [
        _screen(
            "Counterparties flagged at any member",
            leis,
            lambda: client.check(leis),
            anytime,
            "flagged",
        ),
        _screen(
            "Members that flagged each counterparty for AML in the last 90 days",
            leis,
            lambda: client.check(leis, "members", where=recent),
            members_per_key(files, "counterparty_lei", recent),
            "members",
        ),
        _screen(
            "Members that flagged each person, asked by national id (blinded, then checked)",
            pseudonyms,
            lambda: client.check(client.pseudonyms(ids), "members", key_column="person_pseudonym"),
            persons,
            "members",
        ),
        _watchlist(client, files),
    ]
