"""Secure results equal plaintext results over the pooled rows."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet.demo import EXAMPLE_QUERIES, ExampleQuery, run_checked
from mpc_gateway.devnet.localnet import LocalConsortium
from tests.e2e.conftest import client_for, running_consortium

pytestmark = pytest.mark.e2e
QUERIES_ONLY = True  # the session's shared consortium (conftest)


@pytest.mark.parametrize("query", EXAMPLE_QUERIES, ids=[q.title for q in EXAMPLE_QUERIES])
def test_secure_result_equals_plaintext(
    consortium, analyst, loans_columns, query: ExampleQuery
) -> None:
    checked = run_checked(analyst, consortium.files, query, loans_columns)
    assert checked.matches, checked.as_json()
    assert checked.secure.rows, "a result has at least one row"


def test_group_by_covers_every_declared_group_even_when_empty(
    consortium, analyst, loans_columns
) -> None:
    query = ExampleQuery(
        "empty groups",
        ("count", "sum:exposure", "mean:exposure", "stddev:exposure", "min:exposure"),
        where="exposure > 99999990",
        group_by="rating",
    )
    checked = run_checked(analyst, consortium.files, query, loans_columns)
    assert [g for g, _ in checked.secure.rows] == ["AAA", "AA", "A", "BBB", "BB", "B", "CCC"]
    # as the README says: count and sum 0 (sums over no rows), the rest undefined
    assert all(values == (0, 0, None, None, None) for _, values in checked.secure.rows)
    assert checked.matches


def test_min_and_max_are_the_joint_ones(consortium, analyst, loans_columns) -> None:
    query = ExampleQuery("extremes", ("min:exposure", "max:exposure", "min:lgd"), group_by="sector")
    checked = run_checked(analyst, consortium.files, query, loans_columns)
    assert checked.matches, checked.as_json()


def test_concurrent_analysts_all_get_correct_results(consortium, loans_columns) -> None:
    """Many clients at once: the global order keeps every node's MPC in step."""
    wheres = ["", "exposure > 50000", "rating IN ('A', 'BBB')", "region = 'north' OR defaulted = 1"]
    failures: list[object] = []

    def analyst_session(i: int) -> None:
        with client_for(consortium, "analyst/alice" if i % 2 else "analyst/bob") as client:
            for k in range(3):
                query = ExampleQuery(
                    f"c{i}-{k}",
                    ("count", "mean:exposure", "max:days_past_due"),
                    where=wheres[(i + k) % len(wheres)],
                    group_by="region",
                )
                checked = run_checked(client, consortium.files, query, loans_columns)
                if not checked.matches:
                    failures.append(checked.as_json())

    threads = [threading.Thread(target=analyst_session, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


@pytest.fixture(scope="module")
def ill_conditioned(tmp_path_factory: pytest.TempPathFactory):
    with running_consortium(tmp_path_factory.mktemp("ill"), ill_conditioned=True) as running:
        yield running


def test_ill_conditioned_variance_is_exact(ill_conditioned: LocalConsortium, loans_columns) -> None:
    """Exposures of 10,000,000 plus multiples of 0.1: naive float formulas lose every digit."""
    with client_for(ill_conditioned) as client:
        query = ExampleQuery(
            "ill",
            ("count", "sum:exposure", "mean:exposure", "var:exposure", "stddev:exposure"),
            group_by="sector",
        )
        checked = run_checked(client, ill_conditioned.files, query, loans_columns)
        assert checked.matches, checked.as_json()
        _, values = checked.secure.rows[0]
        variance = values[3]
        assert variance is not None and 500 < variance < 1500  # k/10 for k uniform in 0..999


def _exact_variance(paths: list[Path]) -> object:
    import statistics
    from decimal import Decimal

    import duckdb

    rows = (
        duckdb.connect()
        .execute("SELECT CAST(exposure AS VARCHAR) FROM read_parquet(?)", [[str(p) for p in paths]])
        .fetchall()
    )
    return statistics.variance([Decimal(r[0]) for r in rows])


def test_ill_conditioned_against_exact_decimal_arithmetic(ill_conditioned: LocalConsortium) -> None:
    files = ill_conditioned.files
    with client_for(ill_conditioned) as client:
        result = client.query("loans", ["var:exposure"])
    exact = _exact_variance([files.data_file(n) for n in files.nodes])
    secure = result.outcome.rows[0][1][0]
    assert abs(secure - float(exact)) <= 1e-12 * float(exact)


def test_client_returns_a_dataframe(analyst: GatewayClient) -> None:
    frame = analyst.query("loans", ["count", "mean:lgd"], group_by="region").to_pandas()
    assert list(frame.index) == ["north", "south", "east", "west", "central"]
    assert list(frame.columns) == ["count", "mean(lgd)"]
    assert int(frame["count"].sum()) == 3 * 3000
