"""Bringing your own file: every value arrives exactly, or the node refuses it and says where.

Each test writes a small file the way an institution might (CSV text, Parquet
DECIMAL, integer, DOUBLE or text columns) and checks what the node's
:class:`LocalDataset` makes of it: the exact integer encoding and the local
aggregates computed from it, or a ConfigurationError naming the file, column,
1-based data row and value.
"""

from __future__ import annotations

from decimal import Decimal
from math import isqrt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mpc_gateway.computations.aggregate import AggregateRequest, build_plan, parse_aggregate
from mpc_gateway.computations.aggregate_layout import layout_for, local_aggregates
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import EXACT_SUM_LIMIT, DatasetSchema

EXACT = {"kind": "numeric", "scale": 2, "min": "-100000000000000", "max": "100000000000000"}
CODES = {"kind": "categorical", "domain": ["1", "2", "3"]}


def schema(max_rows: int = 1000, **columns: dict[str, Any]) -> DatasetSchema:
    return DatasetSchema.model_validate(
        {"name": "t", "max_rows_per_node": max_rows, "columns": columns or {"x": EXACT}}
    )


def csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def parquet(path: Path, select: str) -> Path:
    """A Parquet file of ``select`` (DuckDB SQL), so each test picks the stored types."""
    con = duckdb.connect(":memory:")
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT PARQUET)")
    con.close()
    return path


def refusal(path: Path, given: DatasetSchema | None = None) -> str:
    with pytest.raises(ConfigurationError) as excinfo:
        LocalDataset(given or schema(), path)
    return excinfo.value.public_message


def encoded(dataset: LocalDataset, column: str = "x") -> list[Any]:
    rows = dataset.cursor().execute(f"SELECT {column} FROM data ORDER BY rowid").fetchall()
    return [r[0] for r in rows]


def aggregates(dataset: LocalDataset, *aggs: str, group_by: str | None = None) -> dict[str, Any]:
    request = AggregateRequest(
        dataset="t", aggregates=tuple(parse_aggregate(a) for a in aggs), group_by=group_by
    )
    plan = build_plan(request, dataset.schema, "ana")
    layout = layout_for(plan, dataset.schema, parties=3)
    local = local_aggregates(dataset.cursor(), plan, layout)
    return {"layout": layout, **{k: v.tolist() for k, v in local.items()}}


# --- exact values, whatever the file stores ------------------------------------------------

LARGE = ["99999999999999.99", "0.01", "-12345678901234.56", "99999999999999.98", "7"]


def _exact_sums(values: list[str]) -> tuple[int, int]:
    cents = [int(Decimal(v) * 100) for v in values]
    return sum(cents), sum(c * c for c in cents)


@pytest.mark.parametrize(
    "stored",
    ["csv", "tsv", "parquet decimal", "parquet text"],
)
def test_large_decimals_are_summed_exactly_from_every_file_type(
    stored: str, tmp_path: Path
) -> None:
    """At scale 2, 99999999999999.99 read through a double becomes ...99.98."""
    if stored in ("csv", "tsv"):
        path = csv(tmp_path / f"d.{stored}", "x\n" + "\n".join(LARGE) + "\n")
    else:
        kind = "DECIMAL(18, 2)" if stored == "parquet decimal" else "VARCHAR"
        rows = " UNION ALL ".join(
            f"SELECT {i} AS i, CAST('{v}' AS {kind}) AS x" for i, v in enumerate(LARGE)
        )
        path = parquet(tmp_path / "d.parquet", f"SELECT x FROM ({rows}) ORDER BY i")

    dataset = LocalDataset(schema(), path)

    assert encoded(dataset) == [int(Decimal(v) * 100) for v in LARGE]
    got = aggregates(dataset, "count", "sum:x", "var:x")
    assert got["additive"] == [[len(LARGE), *_exact_sums(LARGE)]]


def test_exponent_notation_is_read_exactly_and_its_decimals_counted(tmp_path: Path) -> None:
    path = csv(tmp_path / "d.csv", "x\n1.5e-1\n12.5E3\n1200e-2\n+.5\n-7.\n1.2300\n")

    assert encoded(LocalDataset(schema(), path)) == [15, 1250000, 1200, 50, -700, 123]
    assert "'1.25e-3' has more than 2 decimals" in refusal(csv(tmp_path / "e.csv", "x\n1.25e-3\n"))


def test_a_parquet_double_is_accepted_only_where_it_is_exactly_a_decimal_at_the_scale(
    tmp_path: Path,
) -> None:
    ok = parquet(
        tmp_path / "ok.parquet",
        "SELECT CAST(x AS DOUBLE) AS x FROM (VALUES (0.1), (1000.51), (-2.0)) t(x)",
    )
    assert encoded(LocalDataset(schema(), ok)) == [10, 100051, -200]

    large = parquet(tmp_path / "large.parquet", "SELECT 99999999999999.99::DOUBLE AS x")
    assert "is a DOUBLE too large to be exact at scale 2" in refusal(large)
    finer = parquet(tmp_path / "finer.parquet", "SELECT 1.005::DOUBLE AS x")
    assert "'1.005' is a DOUBLE with more than 2 decimals" in refusal(finer)
    single = parquet(tmp_path / "float.parquet", "SELECT CAST(0.1 AS FLOAT) AS x")
    assert encoded(LocalDataset(schema(), single)) == [10]


def test_parquet_integers_booleans_and_finer_decimals_are_read_exactly(tmp_path: Path) -> None:
    path = parquet(
        tmp_path / "d.parquet",
        "SELECT CAST(x AS UBIGINT) AS x, x = 1 AS flag, CAST(x AS DECIMAL(12, 5)) AS y "
        "FROM (VALUES (1), (3)) t(x)",
    )
    flag = {"kind": "numeric", "scale": 0, "min": 0, "max": 1}

    dataset = LocalDataset(schema(x=EXACT, flag=flag, y=EXACT), path)

    assert [encoded(dataset, c) for c in ("x", "flag", "y")] == [[100, 300], [1, 0], [100, 300]]
    finer = parquet(tmp_path / "e.parquet", "SELECT CAST(1.00001 AS DECIMAL(12, 5)) AS x")
    assert "'1.00001' has more than 2 decimals" in refusal(finer)


def test_keys_keep_their_text_exactly(tmp_path: Path) -> None:
    """A key that looks like a number is never parsed as one (1e3 stays 1e3, not 1000.0)."""
    path = csv(tmp_path / "d.csv", "k,x\n2.50,1\n1e3,2\n")

    dataset = LocalDataset(schema(k={"kind": "key"}, x=EXACT), path)

    assert encoded(dataset, "k") == ["2.50", "1e3"]


# --- category codes that look like numbers -------------------------------------------------


@pytest.mark.parametrize("stored", ["csv", "parquet integer", "parquet text"])
def test_numeric_looking_category_codes_group_whether_stored_as_text_or_integers(
    stored: str, tmp_path: Path
) -> None:
    codes = [1, 3, 3, 1, 1]
    if stored == "csv":
        path = csv(tmp_path / "d.csv", "c,x\n" + "".join(f"{c},1\n" for c in codes))
    else:
        kind = "INTEGER" if stored == "parquet integer" else "VARCHAR"
        values = ", ".join(f"({c})" for c in codes)
        path = parquet(
            tmp_path / "d.parquet",
            f"SELECT CAST(c AS {kind}) AS c, 1 AS x FROM (VALUES {values}) t(c)",
        )

    got = aggregates(LocalDataset(schema(c=CODES, x=EXACT), path), "count", group_by="c")

    assert got["additive"] == [[3], [0], [2]]


def test_an_unknown_category_code_is_refused_naming_its_row(tmp_path: Path) -> None:
    path = parquet(tmp_path / "d.parquet", "SELECT c, 1 AS x FROM (VALUES (1), (4)) t(c)")

    message = refusal(path, schema(c=CODES, x=EXACT))

    assert "column 'c' has 1 value(s)" in message
    assert "data row 2 (1-based, header not counted): '4' is not in its domain" in message


# --- empty sources -------------------------------------------------------------------------


def _empty_csv(tmp_path: Path) -> Path:
    return csv(tmp_path / "d.csv", "c,x\n")


def _empty_parquet(tmp_path: Path) -> Path:
    return parquet(tmp_path / "d.parquet", "SELECT 'AAA' AS c, 1.5 AS x LIMIT 0")


@pytest.mark.parametrize(
    "make",
    [_empty_csv, _empty_parquet, lambda _: None],
    ids=["header-only csv", "zero-row parquet", "no file"],
)
def test_an_empty_source_is_a_dataset_of_zero_rows_whose_aggregates_are_zeros(
    make: Any, tmp_path: Path
) -> None:
    dataset = LocalDataset(schema(c=CODES, x=EXACT), make(tmp_path))

    got = aggregates(dataset, "count", "sum:x", "var:x", "min:x", group_by="c")

    assert dataset.rows == 0
    assert got["additive"] == [[0, 0, 0]] * 3
    assert got["minima"] == [[got["layout"].sentinel]] * 3


# --- refusals name the file, column, row and value -----------------------------------------


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (["1", "2", "1.230000001"], "'1.230000001' has more than 2 decimals"),
        (["99999999999999.991"], "'99999999999999.991' has more than 2 decimals"),
        (["1", "2", "3", "4", "n/a"], "'n/a' is not a number"),
        (["1", ""], "the value is empty (null)"),
        (["1,000"], "'1,000' is not a number"),
        (["1e999"], "'1e999' is outside [-100000000000000, 100000000000000]"),
        (["100000000000000.01"], "'100000000000000.01' is outside"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_naming_file_row_column_and_value(
    values: list[str], why: str, tmp_path: Path
) -> None:
    path = csv(tmp_path / "d.csv", "x,y\n" + "".join(f'"{v}",1\n' for v in values))

    message = refusal(path, schema(x=EXACT, y=EXACT))

    assert message.startswith(f"data source {path}: column 'x' has 1 value(s)")
    assert f"data row {len(values)} (1-based, header not counted): {why}" in message


def test_a_refusal_shows_only_the_start_of_a_long_value(tmp_path: Path) -> None:
    message = refusal(csv(tmp_path / "d.csv", "x\n" + "9" * 200 + "x\n"))

    assert f"'{'9' * 40}...' is not a number" in message
    assert "9" * 41 not in message


def test_a_value_of_the_wrong_type_in_parquet_is_refused_with_its_row(tmp_path: Path) -> None:
    path = parquet(
        tmp_path / "d.parquet",
        "SELECT DATE '2024-03-01' + CAST(i AS INTEGER) AS x FROM range(3) t(i)",
    )

    assert "data row 1 (1-based, header not counted): '2024-03-01' is not a number" in refusal(path)


def test_a_refusal_counts_the_other_columns_that_do_not_fit(tmp_path: Path) -> None:
    path = csv(tmp_path / "d.csv", "x,y\n1.001,a\n2,b\n")

    message = refusal(path, schema(x=EXACT, y=EXACT))

    assert "column 'x' has 1 value(s)" in message
    assert message.endswith("(other columns refused too: column 'y': 2)")


def test_headers_are_case_sensitive_and_the_refusal_shows_what_the_file_has(
    tmp_path: Path,
) -> None:
    message = refusal(csv(tmp_path / "d.csv", "X\n1\n"))

    assert message.endswith("lacks column(s): x (names are case-sensitive; it has 'X')")


def test_the_header_is_the_first_line_never_one_guessed_further_down(tmp_path: Path) -> None:
    """DuckDB's sniffer would skip a title line, or take a later, wider line as the header."""
    assert "lacks column(s): x" in refusal(csv(tmp_path / "d.csv", "loan book\nx,y\n1,2\n"))
    wider = csv(tmp_path / "e.csv", "x\n1\n2\n3,4\n")
    assert "data row 3 (1-based, header not counted): '3,4' is not a number" in refusal(wider)


def test_a_clipping_column_clamps_numbers_too_large_to_read(tmp_path: Path) -> None:
    clip = {**EXACT, "min": "0", "max": "5000000", "clip": True}
    path = csv(tmp_path / "d.csv", "x\n1e30\n-1e30\n4999999.99\n")

    assert encoded(LocalDataset(schema(x=clip), path)) == [500_000_000, 0, 499_999_999]


# --- schemas a node could not compute with exactly ------------------------------------------

SMALLEST_TOO_LARGE = isqrt(EXACT_SUM_LIMIT) + 1
"""With one row per node, the smallest bound whose square a node cannot sum (HUGEINT)."""


def test_the_smallest_schema_whose_sum_of_squares_could_overflow_is_refused() -> None:
    numeric = {"kind": "numeric", "scale": 0, "min": 0}
    with pytest.raises(
        ValueError, match=r"column 'x': with max_rows_per_node = 1 a sum of squares"
    ):
        schema(1, x={**numeric, "max": SMALLEST_TOO_LARGE})
    with pytest.raises(duckdb.OutOfRangeException):  # what the node would have met
        duckdb.sql(
            f"SELECT CAST({SMALLEST_TOO_LARGE} AS HUGEINT) * {SMALLEST_TOO_LARGE}"
        ).fetchall()


def test_the_largest_schema_allowed_is_computed_exactly(tmp_path: Path) -> None:
    most = SMALLEST_TOO_LARGE - 1
    given = schema(1, x={"kind": "numeric", "scale": 0, "min": -most, "max": most})

    got = aggregates(
        LocalDataset(given, csv(tmp_path / "d.csv", f"x\n-{most}\n")), "var:x", "min:x"
    )

    assert got["additive"] == [[1, -most, most * most]]
    assert got["minima"] == [[-most]]


def test_a_limit_on_rows_is_checked_with_the_scale() -> None:
    """10 million rows at scale 2 leave room for bounds of about +-41 trillion."""
    with pytest.raises(ValueError, match=r"bounds must lie within \+-41248173712355.94,"):
        schema(10_000_000, x={"kind": "numeric", "scale": 2, "min": 0, "max": "50000000000000"})
    assert schema(10_000_000, x={"kind": "numeric", "scale": 2, "min": 0, "max": "40000000000000"})


def test_bounds_finer_than_the_scale_are_refused() -> None:
    with pytest.raises(ValueError, match="bound 0.019 has more than scale = 2 decimals"):
        schema(x={"kind": "numeric", "scale": 2, "min": 0, "max": "0.019"})
