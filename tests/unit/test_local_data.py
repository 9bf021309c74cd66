"""A node's local data: loading checks and per-group aggregates, against pandas."""

from __future__ import annotations

import operator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import mpc_gateway
from mpc_gateway.computations.aggregate import (
    Aggregate,
    AggregatePlan,
    AggregateRequest,
    build_plan,
)
from mpc_gateway.computations.aggregate_layout import AggregateLayout, layout_for, local_aggregates
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.query.where import parse_where

LOANS = load_schema(Path(mpc_gateway.__file__).parent / "schemas" / "loans.toml")
SCALES = {"exposure": 2, "lgd": 4, "days_past_due": 0, "defaulted": 0}
# values either side of the 1000.505 literal below, and the declared bounds
BOUNDARY_EXPOSURES = [1000.50, 1000.51, 1000.49, 0.0, 100_000_000.0, 0.01]
AGGS = (
    "count",
    "sum:exposure",
    "var:exposure",
    "mean:lgd",
    "sum:days_past_due",
    "min:exposure",
    "min:lgd",
    "max:exposure",
    "max:days_past_due",
)


def book(rows: int = 300) -> pd.DataFrame:
    frame = loan_book("bank-b", rows, seed=5)
    every_third = frame.index[::3]
    frame.loc[every_third, "exposure"] = [
        BOUNDARY_EXPOSURES[k % len(BOUNDARY_EXPOSURES)] for k in range(len(every_third))
    ]
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        return path
    return write_loan_book(path, frame)


def encode(value: object, scale: int) -> int:
    exact = Decimal(repr(value)) * 10**scale
    assert exact == exact.to_integral_value(), f"{value} has more than {scale} decimals"
    return int(exact)


FRAME = book()
ENCODED = FRAME.assign(**{c: [encode(v, s) for v in FRAME[c]] for c, s in SCALES.items()}).astype(
    {c: object for c in SCALES}
)  # Python ints: sums of squares exceed int64


@pytest.fixture(scope="module", params=["csv", "parquet"])
def dataset(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> LocalDataset:
    path = write(FRAME, tmp_path_factory.mktemp("data") / f"bank-b.{request.param}")
    return LocalDataset(LOANS, path)


def plan_for(where: str, group_by: str | None | tuple[str, ...]) -> AggregatePlan:
    aggregates = []
    for text in AGGS:
        func, _, column = text.partition(":")
        aggregates.append(Aggregate(func=func, column=column or None))  # type: ignore[arg-type]
    query = AggregateRequest(
        dataset="loans", aggregates=tuple(aggregates), filter=parse_where(where), group_by=group_by
    )
    return build_plan(query, LOANS, "ana")


def expected(
    mask: pd.Series, built: AggregatePlan, layout: AggregateLayout
) -> dict[str, list[list[int]]]:
    selected = ENCODED[mask]
    out: dict[str, list[list[int]]] = {"additive": [], "minima": [], "maxima": []}
    for cell in built.groups:
        rows = selected
        for column, value in zip(built.group_by, cell):
            rows = rows[rows[column] == value]
        stats = []
        for stat, column in layout.additive:
            if stat == "count":
                stats.append(len(rows))
            elif stat == "sum":
                stats.append(int(rows[column].sum()))
            else:
                stats.append(int((rows[column] * rows[column]).sum()))
        out["additive"].append(stats)
        empty = rows.empty
        out["minima"].append(
            [layout.sentinel if empty else int(rows[c].min()) for c in layout.minima]
        )
        out["maxima"].append(
            [-layout.sentinel if empty else int(rows[c].max()) for c in layout.maxima]
        )
    return out


F = FRAME
CASES = {
    "all rows": ("", None, pd.Series(True, index=F.index)),
    "in, and, or, decimal literal": (
        "rating NOT IN ('CCC', 'B') AND (region IN ('north', 'south') OR exposure > 1000.505)",
        "rating",
        ~F.rating.isin(["CCC", "B"])
        & (F.region.isin(["north", "south"]) | (F.exposure > 1000.505)),
    ),
    "or of and": (
        "sector IN ('energy', 'retail') OR lgd <= 0.25 AND defaulted = 0",
        "region",
        F.sector.isin(["energy", "retail"]) | ((F.lgd <= 0.25) & (F.defaulted == 0)),
    ),
    "exact equality on a decimal": ("exposure = 1000.5", None, F.exposure == 1000.5),
    "numeric in list and <>": (
        "days_past_due NOT IN (0) OR rating <> 'AAA' AND exposure < 1000.505",
        "sector",
        (F.days_past_due != 0) | ((F.rating != "AAA") & (F.exposure < 1000.505)),
    ),
    "nothing matches": ("exposure < 0", None, pd.Series(False, index=F.index)),
    "cross tab over the product domain": (
        "exposure > 1000.505 OR rating IN ('BB', 'B')",
        ("sector", "rating", "region"),
        (F.exposure > 1000.505) | F.rating.isin(["BB", "B"]),
    ),
}


def test_boundary_values_straddle_the_decimal_literal() -> None:
    assert (F.exposure == 1000.50).any() and (F.exposure == 1000.51).any()


def local(dataset: LocalDataset, built: AggregatePlan, layout: AggregateLayout) -> dict[str, Any]:
    """The node's pre-aggregates, as a node computes them for an order."""
    return local_aggregates(dataset.cursor(), built, layout, where_sql(LOANS, built.filter))


@pytest.mark.parametrize("case", list(CASES))
def test_local_aggregates_equal_pandas_on_the_same_rows(case: str, dataset: LocalDataset) -> None:
    where, group_by, mask = CASES[case]
    built = plan_for(where, group_by)
    layout = layout_for(built, LOANS, parties=3)

    got = local(dataset, built, layout)

    assert {name: array.tolist() for name, array in got.items()} == expected(mask, built, layout)
    assert got["additive"].shape == (len(built.groups), len(layout.additive))


def test_filtered_out_groups_hold_zeros_and_sentinels(dataset: LocalDataset) -> None:
    where, group_by, _ = CASES["in, and, or, decimal literal"]
    built = plan_for(where, group_by)
    layout = layout_for(built, LOANS, parties=3)

    got = local(dataset, built, layout)

    for rating in ("B", "CCC"):
        g = built.groups.index((rating,))
        assert got["additive"][g].tolist() == [0] * len(layout.additive)
        assert got["minima"][g].tolist() == [layout.sentinel] * len(layout.minima)
        assert got["maxima"][g].tolist() == [-layout.sentinel] * len(layout.maxima)
    assert got["additive"][built.groups.index(("AAA",))][0] > 0


def test_dataset_counts_its_rows(dataset: LocalDataset) -> None:
    assert dataset.rows == len(FRAME)


def test_literal_with_many_decimals_is_compared_not_crashed(dataset: LocalDataset) -> None:
    built = plan_for("exposure > 0.000000000000000000000000000001", None)
    layout = layout_for(built, LOANS, parties=3)

    got = local(dataset, built, layout)

    assert got["additive"][0][0] == int((F.exposure > 0).sum())


EXACTLY = {
    "=": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    ">": operator.gt,
}


@pytest.mark.parametrize(
    ("column", "op", "literal"),
    [  # each was rounded to a number of the column before (28 digits; the context's Emin)
        ("exposure", "=", "1000.50000000000000000000000000001"),
        ("exposure", ">=", "1000.50000000000000000000000000001"),
        ("exposure", "<=", "1000.49999999999999999999999999999"),
        ("days_past_due", "=", "1e-999999999999"),
        ("days_past_due", "<", "1e-2000000"),
        ("days_past_due", ">=", "1e-2000000"),
    ],
)
def test_a_literal_past_28_digits_or_below_the_exponent_range_compares_exactly(
    dataset: LocalDataset, column: str, op: str, literal: str
) -> None:
    built = plan_for(f"{column} {op} {literal}", None)
    layout = layout_for(built, LOANS, parties=3)

    got = local(dataset, built, layout)

    bound = Decimal(literal)
    expected = sum(EXACTLY[op](Decimal(str(v)), bound) for v in F[column])
    assert got["additive"][0][0] == expected
    assert 0 < expected < len(F) or op == "="


# --- refusals at load ----------------------------------------------------------------------


def refusal(frame: pd.DataFrame, path: Path, schema: DatasetSchema = LOANS) -> str:
    write(frame, path)
    with pytest.raises(ConfigurationError) as excinfo:
        LocalDataset(schema, path)
    return excinfo.value.public_message


def small() -> pd.DataFrame:
    return loan_book("bank-a", 20, seed=9)


def with_value(column: str, value: object) -> pd.DataFrame:
    frame = small()
    if isinstance(value, float):
        frame[column] = frame[column].astype(float)
    elif not isinstance(value, int):
        frame[column] = frame[column].astype(object)
    frame.loc[7, column] = value
    return frame


FORMATS = ["csv", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_column_is_refused_naming_it(fmt: str, tmp_path: Path) -> None:
    message = refusal(small().drop(columns=["lgd"]), tmp_path / f"d.{fmt}")

    assert "lacks column(s): lgd (names are case-sensitive; it has 'counterparty_lei'" in message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("rating", "D"),  # outside the domain
        ("region", "North"),  # domain is case-sensitive
        ("exposure", 100_000_000.01),  # above max
        ("exposure", -0.01),  # below min
        ("defaulted", 2),  # above max
        ("exposure", 12.345),  # finer than scale 2
        ("lgd", 0.12345),  # finer than scale 4
        ("days_past_due", 1.5),  # finer than scale 0
        ("exposure", None),
        ("sector", None),
    ],
)
def test_value_that_does_not_fit_the_schema_is_refused_naming_its_column(
    fmt: str, column: str, value: object, tmp_path: Path
) -> None:
    message = refusal(with_value(column, value), tmp_path / f"d.{fmt}")

    assert f"column {column!r} has 1 " in message


def test_large_value_with_extra_decimals_is_refused(tmp_path: Path) -> None:
    message = refusal(with_value("exposure", 5_000_000.125), tmp_path / "d.parquet")

    assert "column 'exposure'" in message


def test_text_in_a_numeric_column_is_refused_naming_it(tmp_path: Path) -> None:
    message = refusal(with_value("exposure", "n/a"), tmp_path / "d.csv")

    assert "'exposure'" in message


def test_more_rows_than_the_schema_allows_are_refused(tmp_path: Path) -> None:
    schema = LOANS.model_copy(update={"max_rows_per_node": 10})

    assert "max_rows_per_node" in refusal(small(), tmp_path / "d.parquet", schema)


def test_unsupported_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("[]")

    with pytest.raises(ConfigurationError, match=r"use a \.csv, \.tsv or \.parquet file"):
        LocalDataset(LOANS, path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        LocalDataset(LOANS, tmp_path / "absent.parquet")


def test_write_loan_book_writes_a_csv_the_node_loads(tmp_path: Path) -> None:
    path = write_loan_book(tmp_path / "book.csv", small())

    assert LocalDataset(LOANS, path).rows == 20


def test_risk_jobs_can_follow_each_other_on_one_node_cursor(tmp_path: Path) -> None:
    """A node reuses its thread's cursor: no job may leave a result pending on it."""
    from mpc_gateway.computations.features import local_entity_features
    from mpc_gateway.computations.histogram import histogram_layout, local_histogram
    from mpc_gateway.computations.quantile_search import local_cumulative_counts

    dataset = LocalDataset(LOANS, write(FRAME, tmp_path / "book.parquet"))
    cursor = dataset.cursor()
    keys = list(FRAME["counterparty_lei"].unique()[:5])
    before = local_entity_features(cursor, LOANS, keys, ["loans"])
    local_histogram(cursor, LOANS, histogram_layout(LOANS, 3, "lgd", ["0", "0.5", "1"]))
    local_cumulative_counts(cursor, "exposure", [[100, 200]])
    after = local_entity_features(cursor, LOANS, keys, ["loans"])
    assert after.tolist() == before.tolist()
    assert sum(after[:, 0]) == FRAME["counterparty_lei"].isin(keys).sum()


LOANS_DP = load_schema(Path(mpc_gateway.__file__).parent / "schemas" / "loans_dp.toml")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_clipping_schema_clamps_values_outside_its_bounds_as_it_loads_them(
    fmt: str, tmp_path: Path
) -> None:
    """loans_dp caps exposure at EUR 5m (its privacy contribution bound); loans refuses."""
    frame = with_value("exposure", 150_000_000.0)  # above both datasets' bounds
    frame.loc[8, "exposure"] = 4_999_999.99
    path = write(frame, tmp_path / f"d.{fmt}")
    assert "column 'exposure' has 1 " in refusal(frame, tmp_path / f"e.{fmt}")  # loans: refused
    dataset = LocalDataset(LOANS_DP, path)
    rows = dict(dataset.cursor().execute("SELECT rowid, exposure FROM data").fetchall())
    assert rows[7] == 500_000_000 and rows[8] == 499_999_999  # cents: clamped, and untouched
    assert max(rows.values()) <= LOANS_DP.numeric("exposure").magnitude
    # what clipping does not excuse: finer than the scale, or not a number at all
    assert "'exposure'" in refusal(with_value("exposure", 12.345), tmp_path / f"f.{fmt}", LOANS_DP)
    assert "'exposure'" in refusal(with_value("exposure", None), tmp_path / f"g.{fmt}", LOANS_DP)


def test_a_duckdb_database_file_is_read_from_its_named_table_and_never_written(
    tmp_path: Path,
) -> None:
    frame = small()
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute(
            "CREATE TABLE book AS SELECT * REPLACE (CAST(exposure AS DECIMAL(12, 2)) AS exposure,"
            " CAST(lgd AS DECIMAL(6, 4)) AS lgd) FROM frame"
        )
    before = path.read_bytes()
    dataset = LocalDataset(LOANS, path, table="book")
    assert dataset.rows == len(frame)
    (total,) = dataset.cursor().execute("SELECT sum(exposure) FROM data").fetchall()[0]
    assert total == sum(round(Decimal(str(v)) * 100) for v in frame["exposure"])
    assert path.read_bytes() == before  # attached read-only
    with pytest.raises(ConfigurationError, match="cannot be read"):
        LocalDataset(LOANS, path)  # no table named after the dataset ("loans")
