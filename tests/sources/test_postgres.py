"""A node's dataset in PostgreSQL: checked in place, every computation's local SQL pushed down.

The same loan book is loaded into a real PostgreSQL server and into DuckDB (the
node's file source); every computation's local inputs must be identical on
both, and a table that does not fit the schema is refused naming the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from mpc_gateway.computations import (
    AggregateRequest,
    LocalData,
    Plan,
    build,
    computation_of,
)
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.computations.concentration import ConcentrationRequest
from mpc_gateway.computations.features import FEATURES
from mpc_gateway.computations.histogram import HistogramRequest
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.computations.score import ScoreRequest
from mpc_gateway.computations.scoring import ModelCatalog, ModelFeature, ScoringModel
from mpc_gateway.computations.train import TrainRequest
from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.devnet.postgres import PostgresServer, load_table
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.node.postgres import PostgresDataset
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.query.where import parse_where
from mpc_gateway.settings import PostgresSource

SCHEMA = load_schema(schema_path())
ROWS = 1500


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pg") / "bank-a.parquet"
    write_loan_book(path, loan_book("bank-a", ROWS, seed=13))
    return path


@pytest.fixture(scope="module")
def sources(
    postgres: PostgresServer, book: Path, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[tuple[LocalDataset, PostgresDataset]]:
    assert load_table(postgres.dsn, "loans_a", SCHEMA, book) == ROWS
    monkeypatch_module.setenv("MPCGW_TEST_DSN", postgres.dsn)
    remote = PostgresDataset(SCHEMA, PostgresSource(table="loans_a", dsn_env="MPCGW_TEST_DSN"))
    yield LocalDataset(SCHEMA, book), remote
    remote.close()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _model() -> ScoringModel:
    names = tuple(FEATURES)
    return ScoringModel(
        owner="analyst/alice",
        name="all",
        kind="linear",
        features=tuple(ModelFeature(name=n) for n in names),
        weights=tuple(1 for _ in names),
        intercept=0,
        threshold=Decimal(1),
        output="decisions",
    )


def _plans(keys: list[str]) -> dict[str, Plan]:
    common: dict[str, Any] = {"dataset": "loans", "purpose": "testing"}
    filtered = {**common, "filter": parse_where("exposure > 100000.5 AND rating IN ('BB', 'B')")}
    model = _model()
    requests: dict[str, Any] = {
        "aggregate": AggregateRequest(
            aggregates=tuple(
                parse_aggregate(a)
                for a in ("count", "sum:exposure", "var:lgd", "min:exposure", "max:days_past_due")
            ),
            group_by="sector",
            **filtered,
        ),
        "aggregate_one_cell": AggregateRequest(aggregates=(parse_aggregate("count"),), **common),
        "histogram": HistogramRequest(
            column="exposure", edges=("0", "1e5", "1e6", "1e8"), **common
        ),
        "quantile": QuantileRequest(column="exposure", levels=(Decimal("0.5"),), **filtered),
        "concentration_sector": ConcentrationRequest(
            column="exposure", group_by="sector", **common
        ),
        "concentration_keys": ConcentrationRequest(column="exposure", keys=tuple(keys), **common),
        "score": ScoreRequest(model_id=model.model_id, keys=tuple(keys), **filtered),
        "train": TrainRequest(  # its rows: column by column from DuckDB, row by row here
            label="defaulted",
            features=("exposure", "lgd", "days_past_due", "rating", "sector"),
            holdout=Decimal("0.25"),
            **filtered,
        ),
    }
    return {
        name: build(request, SCHEMA, "analyst/alice", 3, ModelCatalog(model))
        for name, request in requests.items()
    }


def _inputs(dataset: LocalDataset | PostgresDataset, plan: Plan) -> dict[str, Any]:
    data = LocalData(
        cursor=dataset.cursor(),
        schema=SCHEMA,
        where=where_sql(SCHEMA, plan.filter),
        parties=3,
        node="bank-a",
        node_key_pem=b"",
    )
    call = computation_of(plan).local_inputs(plan, {}, data)
    return {k: _plain(v) for k, v in call.args.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def test_every_computation_gets_the_same_local_inputs_from_postgresql_as_from_duckdb(
    sources: tuple[LocalDataset, PostgresDataset], book: Path
) -> None:
    local, remote = sources
    assert remote.rows == local.rows == ROWS
    lenders = loan_book("bank-a", ROWS, seed=13)["counterparty_lei"]
    keys = list(dict.fromkeys(str(k) for k in lenders))[:40]
    keys += ["LEI-NOBODY-HAS-THIS-ONE"]
    for name, plan in _plans(keys).items():
        assert _inputs(remote, plan) == _inputs(local, plan), name


def _table(postgres: PostgresServer, name: str, ddl: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"CREATE TABLE {name} ({ddl})")
        with conn.cursor() as cur:
            placeholders = ", ".join(["%s"] * len(rows[0]))
            cur.executemany(f"INSERT INTO {name} VALUES ({placeholders})", rows)


SMALL = load_schema(schema_path("loans_dp"))  # no keys; exposure clipped at EUR 5m
GOOD_ROW = ("1000.50", "AA", "energy", "north", 0, 0, "0.4500")
DDL = (
    "exposure NUMERIC(12, 2), rating TEXT, sector TEXT, region TEXT, "
    "days_past_due INTEGER, defaulted SMALLINT, lgd NUMERIC(6, 4)"
)


@pytest.mark.parametrize(
    ("ddl", "row", "message"),
    [
        (
            DDL.replace("NUMERIC(12, 2)", "NUMERIC"),
            ("1.005", *GOOD_ROW[1:]),
            "'exposure' has 1 value(s) that are null, or finer than 2 decimals, e.g. '1.005'",
        ),
        (DDL, (*GOOD_ROW[:1], "D", *GOOD_ROW[2:]), "'rating' has 1 value(s)"),
        (DDL, (*GOOD_ROW[:4], 5000, *GOOD_ROW[5:]), "'days_past_due' has 1 value(s)"),
        (DDL, (*GOOD_ROW[:5], None, *GOOD_ROW[6:]), "'defaulted' has 1 value(s)"),
        (DDL.replace("lgd NUMERIC(6, 4)", "lgd DOUBLE PRECISION"), GOOD_ROW, "floating point"),
        (DDL.replace(", lgd NUMERIC(6, 4)", ""), GOOD_ROW[:-1], "lacks column(s): lgd"),
    ],
)
def test_a_table_that_does_not_fit_the_schema_is_refused_naming_column_and_value(
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    ddl: str,
    row: tuple[Any, ...],
    message: str,
) -> None:
    _table(postgres, "odd", ddl, [GOOD_ROW[: len(row)], row])
    monkeypatch.setenv("MPCGW_TEST_DSN", postgres.dsn)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        PostgresDataset(SMALL, PostgresSource(table="odd", dsn_env="MPCGW_TEST_DSN"))
    assert "PostgreSQL table odd" in caught.value.public_message


def test_a_clipped_column_is_clamped_in_place_and_an_empty_table_is_a_node_with_no_rows(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPCGW_TEST_DSN", postgres.dsn)
    _table(postgres, "big", DDL, [GOOD_ROW, ("20000000.00", *GOOD_ROW[1:])])
    dataset = PostgresDataset(SMALL, PostgresSource(table="big", dsn_env="MPCGW_TEST_DSN"))
    total = dataset.cursor().execute('SELECT sum("exposure") FROM data').fetchall()[0][0]
    assert total == 100050 + 500_000_000  # cents: the EUR 20m loan counts as EUR 5m
    _table(postgres, "nothing", DDL, [GOOD_ROW])
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute("DELETE FROM nothing")
    empty = PostgresDataset(SMALL, PostgresSource(table="nothing", dsn_env="MPCGW_TEST_DSN"))
    assert empty.rows == 0
    assert empty.cursor().execute("SELECT count(*) FROM data").fetchall() == [(0,)]
    dataset.close()
    empty.close()


def test_the_node_only_reads(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPCGW_TEST_DSN", postgres.dsn)
    _table(postgres, "ro", DDL, [GOOD_ROW])
    dataset = PostgresDataset(SMALL, PostgresSource(table="ro", dsn_env="MPCGW_TEST_DSN"))
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        dataset.cursor().execute("SELECT 1 FROM data; DELETE FROM ro")
    dataset.close()


def test_the_connection_string_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="MPCGW_NOT_SET"):
        PostgresSource(table="t", dsn_env="MPCGW_NOT_SET").dsn()
    secret = tmp_path / "dsn"
    secret.write_text("host=127.0.0.1 port=1\n")
    assert PostgresSource(table="t", dsn_file=secret).dsn() == "host=127.0.0.1 port=1"
    with pytest.raises(ValueError, match="exactly one"):
        PostgresSource(table="t")
