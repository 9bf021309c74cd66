"""A consortium whose institutions keep their rows in different places: PostgreSQL, Parquet, CSV.

bank-a's loan book is a table in a real PostgreSQL server (its node pushes every
computation's local SQL down; no row leaves the database), bank-b's a Parquet
file, broker-c's a CSV file. Every result must equal the plaintext answer over
the three books pooled, and the loans_dp dataset (clipped columns, under DP)
must run on the PostgreSQL node as well.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.aggregate_result import AggregateOutcome
from mpc_gateway.devnet.demo import EXAMPLE_QUERIES, run_checked
from mpc_gateway.devnet.localnet import LocalConsortium, prepare, schema_path
from mpc_gateway.devnet.postgres import PostgresServer
from mpc_gateway.devnet.risk_demo import run_risk_checks
from mpc_gateway.query.schema import load_schema
from mpc_gateway.settings import NodeSettings, load_settings

pytestmark = pytest.mark.e2e

STORAGE = {"bank-a": "postgres", "bank-b": "parquet", "broker-c": "csv"}


@pytest.fixture(scope="module")
def mixed(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> Iterator[LocalConsortium]:
    files = prepare(
        tmp_path_factory.mktemp("mixed"),
        rows=3000,
        seed=21,
        storage=STORAGE,  # type: ignore[arg-type]
        postgres=postgres.dsn,
    )
    running = LocalConsortium(files).start()
    try:
        yield running
    finally:
        running.stop()


def _client(consortium: LocalConsortium) -> GatewayClient:
    files = consortium.files
    return GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, timeout_s=120, purpose="testing"
    )


def test_each_node_reads_its_rows_from_where_they_are(
    mixed: LocalConsortium, postgres: PostgresServer
) -> None:
    files = mixed.files
    loans = {
        n: load_settings(NodeSettings, files.node_config(n)).datasets["loans"] for n in STORAGE
    }
    assert loans["bank-a"].postgres is not None and loans["bank-a"].source is None
    assert str(loans["bank-b"].source).endswith(".parquet")
    assert str(loans["broker-c"].source).endswith(".csv")
    assert postgres.dsn not in files.node_config("bank-a").read_text()  # it is in a file


def test_aggregates_over_the_mixed_sources_equal_the_pooled_plaintext(
    mixed: LocalConsortium,
) -> None:
    columns = dict(load_schema(schema_path()).columns)
    with _client(mixed) as client:
        for query in EXAMPLE_QUERIES:
            checked = run_checked(client, mixed.files, query, columns)
            assert checked.matches, query.title


def test_risk_computations_over_the_mixed_sources_equal_the_pooled_plaintext(
    mixed: LocalConsortium,
) -> None:
    with _client(mixed) as client:
        for check in run_risk_checks(client, mixed.files):
            assert check.matches, check.title


def test_the_private_dataset_runs_on_the_postgresql_node_too(mixed: LocalConsortium) -> None:
    with _client(mixed) as client:
        outcome = client.query("loans_dp", ["count", "sum:exposure"], group_by="sector").outcome
    assert isinstance(outcome, AggregateOutcome)
    assert len(outcome.rows) == 10 and all(count is not None for _, (count, _) in outcome.rows)
