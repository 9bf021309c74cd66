"""SQL statements against the flag queries they spell, DuckDB over the pooled rows, and refusals.

Every supported statement must plan to exactly the flag query's plan (same hash),
and its released table, computed from three institutions' local pre-aggregates the
way the MPC adds them up (no output controls), must equal what DuckDB answers for
the same statement over the pooled rows. Every refused statement must be refused
with INVALID_ARGUMENT, at the line and column of what it cannot accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

import mpc_gateway
from mpc_gateway.computations import Released
from mpc_gateway.computations.aggregate import AggregatePlan, AggregateRequest, build_plan
from mpc_gateway.computations.aggregate_layout import layout_for, local_aggregates
from mpc_gateway.computations.aggregate_result import AggregateOutcome, decode_result, is_close
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.query.where import parse_where
from mpc_gateway.sql import MAX_STATEMENT_CHARS, present, read_statement
from mpc_gateway.sql.errors import line_column
from tests.unit.sql_cases import QUANTILES, REFUSED, SUPPORTED, Flags

LOANS = load_schema(Path(mpc_gateway.__file__).parent / "schemas" / "loans.toml")
SCHEMAS = {"loans": LOANS}
BANKS = ("bank-a", "bank-b", "broker-c")
SCALES = {"exposure": 2, "lgd": 4, "days_past_due": 0, "defaulted": 0}


def flag_plan(flags: Flags) -> AggregatePlan:
    request = AggregateRequest.of(
        "loans",
        flags["aggs"],
        filter=parse_where(flags.get("where", "")),
        group_by=flags.get("group_by"),
    )
    return build_plan(request, LOANS, "ana")


def sql_plan(statement: str) -> AggregatePlan:
    request = read_statement(statement, SCHEMAS).request
    assert isinstance(request, AggregateRequest)
    return build_plan(request, LOANS, "ana")


@pytest.mark.parametrize(("statement", "flags"), SUPPORTED)
def test_statement_plans_exactly_as_its_flag_query(statement: str, flags: Flags) -> None:
    assert sql_plan(statement) == flag_plan(flags)
    assert sql_plan(statement).plan_hash == flag_plan(flags).plan_hash


@pytest.mark.parametrize(("statement", "flags"), QUANTILES)
def test_percentile_statement_is_the_quantile_request(statement: str, flags: Flags) -> None:
    request = read_statement(statement, SCHEMAS).request
    assert request == QuantileRequest(
        dataset="loans",
        column=flags["column"],
        levels=tuple(Decimal(q) for q in flags["levels"]),
        filter=parse_where(flags.get("where", "")),
        statement=statement,
        interpolation=flags.get("interpolation", "discrete"),
    )


def test_the_statement_is_kept_for_the_audit_log_but_not_in_the_plan() -> None:
    statement, flags = SUPPORTED[16]
    request = read_statement(statement, SCHEMAS).request
    assert request.audit_view()["statement"] == statement
    assert "statement" not in sql_plan(statement).audit_view()
    assert "statement" not in AggregateRequest.of("loans", ["count"]).audit_view()


# --- DuckDB over the pooled rows is the oracle ----------------------------------------------


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("banks")
    return [write_loan_book(root / f"{b}.parquet", loan_book(b, 400, seed=3)) for b in BANKS]


@pytest.fixture(scope="module")
def pooled(banks: list[Path]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    files = ", ".join(f"'{p}'" for p in banks)
    casts = ", ".join(f"CAST({c} AS DECIMAL(18, {s})) AS {c}" for c, s in SCALES.items())
    con.execute(
        f"CREATE VIEW loans AS SELECT sector, rating, region, {casts} FROM read_parquet([{files}])"
    )
    return con


@pytest.fixture(scope="module")
def nodes(banks: list[Path]) -> list[LocalDataset]:
    return [LocalDataset(LOANS, path) for path in banks]


def joint_release(plan: AggregatePlan, nodes: list[LocalDataset]) -> Released:
    """What the MPC releases without output controls: local aggregates added up per cell."""
    layout = layout_for(plan, LOANS, parties=len(nodes))
    where = where_sql(LOANS, plan.filter)
    local = [local_aggregates(node.cursor(), plan, layout, where) for node in nodes]
    blocks = {
        "additive": np.sum([x["additive"] for x in local], axis=0).flatten().tolist(),
        "minima": np.min([x["minima"] for x in local], axis=0).flatten().tolist(),
        "maxima": np.max([x["maxima"] for x in local], axis=0).flatten().tolist(),
    }
    outcome = decode_result(plan, layout, LOANS, blocks)
    return Released("q", plan.plan_hash, "loans", outcome, 1, 1, 0.0, 0.0, 0.0, OutputControls())


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, str) or isinstance(theirs, str):
        return bool(ours == theirs)
    return is_close(ours, theirs)


def _empty(values: list[Any]) -> bool:
    return all(v is None or v == 0 for v in values)


@pytest.mark.parametrize(("statement", "flags"), SUPPORTED)
def test_released_table_equals_duckdb_over_the_pooled_rows(
    statement: str, flags: Flags, nodes: list[LocalDataset], pooled: duckdb.DuckDBPyConnection
) -> None:
    read = read_statement(statement, SCHEMAS)
    shown = present(joint_release(sql_plan(statement), nodes), read)
    outcome = shown.outcome
    assert isinstance(outcome, AggregateOutcome)
    expected = pooled.execute(statement).fetchall()
    keyed = [c in outcome.keys() for c in read.columns]

    def key(row: Sequence[Any]) -> tuple[str, ...]:
        return tuple(str(v) for v, is_key in zip(row, keyed) if is_key)

    def values(row: Sequence[Any]) -> list[Any]:
        return [v for v, is_key in zip(row, keyed) if not is_key]

    got = [[record[c] for c in read.columns] for record in shown.records()]
    present_in_duckdb = {key(row) for row in expected}
    kept = [row for row in got if key(row) in present_in_duckdb]
    # cells without rows are released too (the shape is the declared domain); DuckDB has none
    assert all(_empty(values(row)) for row in got if row not in kept)
    if not read.order:
        kept.sort(key=str)
        expected.sort(key=str)
    assert len(kept) == len(expected)
    for ours, theirs in zip(kept, expected):
        assert all(_same(a, b) for a, b in zip(ours, theirs)), (ours, theirs)


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("statement", "marker", "reason"), REFUSED)
def test_unsupported_statement_is_refused_at_its_position(
    statement: str, marker: str, reason: str
) -> None:
    with pytest.raises(InvalidQueryError) as refused:
        read_statement(statement, SCHEMAS)
    message = refused.value.public_message
    assert refused.value.status == "INVALID_ARGUMENT"
    assert reason in message
    if marker.startswith("…"):
        offset = statement.rindex(marker[1:])
    else:
        offset = statement.index(marker)
    line, column = line_column(statement, offset)
    assert message.startswith(f"SQL at line {line}, column {column}: "), message


def test_a_parse_error_names_line_and_column_on_later_lines() -> None:
    with pytest.raises(InvalidQueryError, match=r"^SQL at line 3, column \d+: cannot read"):
        read_statement("SELECT COUNT(*)\nFROM loans\nWHERE exposure >", SCHEMAS)


def test_position_counts_lines_and_columns_of_a_multi_line_statement() -> None:
    statement = "SELECT COUNT(*)\nFROM loans\nWHERE\n    exposure > 1 AND colour = 2"
    with pytest.raises(InvalidQueryError) as refused:
        read_statement(statement, SCHEMAS)
    assert refused.value.public_message.startswith("SQL at line 4, column 22: unknown column")


def test_cross_tab_above_the_declared_cell_limit_is_refused_with_its_size() -> None:
    small = LOANS.model_copy(update={"max_group_cells": 100})
    statement = "SELECT COUNT(*) FROM loans GROUP BY sector, rating, region"
    with pytest.raises(InvalidQueryError) as refused:
        read_statement(statement, {"loans": small})
    message = refused.value.public_message
    assert "350 cells (10 x 7 x 5" in message and "max_group_cells = 100" in message
    assert message.startswith("SQL at line 1, column 37: ")
    request = AggregateRequest.of("loans", ["count"], group_by="sector,rating,region")
    with pytest.raises(InvalidQueryError, match="350 cells"):
        build_plan(request, small, "ana")  # the flag query is refused the same way
    build_plan(request.model_copy(update={"group_by": ("sector", "rating")}), small, "ana")


def test_conditions_nested_32_deep_are_read_as_without_the_parentheses() -> None:
    plain = read_statement("SELECT COUNT(*) FROM loans WHERE NOT exposure > 1", SCHEMAS)
    nested = "SELECT COUNT(*) FROM loans WHERE " + "(" * 31 + "NOT exposure > 1" + ")" * 31
    assert read_statement(nested, SCHEMAS).request.filter == plain.request.filter


def test_a_statement_over_the_length_limit_is_refused_before_parsing() -> None:
    statement = "SELECT COUNT(*) FROM loans WHERE " + " OR ".join(["lgd > 0.5"] * 2500)
    assert len(statement) > MAX_STATEMENT_CHARS
    with pytest.raises(InvalidQueryError, match="at most 20,000 are accepted"):
        read_statement(statement, SCHEMAS)


def test_without_schemas_names_are_left_to_planning() -> None:
    request = read_statement("SELECT SUM(balance) FROM deposits").request
    assert isinstance(request, AggregateRequest) and request.dataset == "deposits"
