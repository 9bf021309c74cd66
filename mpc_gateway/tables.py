"""Rows read from or written to a CSV or Parquet file (a user's, or example data), with DuckDB.

CSV cells are read as text, so decimals and ids reach the command exactly as written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mpc_gateway.errors import InvalidRequestError

__all__ = ["check_suffixes", "read_rows", "records", "write_rows"]

SUFFIXES = (".csv", ".parquet")


def check_suffixes(*paths: Path) -> None:
    """Refuse, before anything runs, a file that is neither CSV nor Parquet."""
    if any(path.suffix not in SUFFIXES for path in paths):
        raise InvalidRequestError("read and write .csv or .parquet files")


def read_rows(source: Path) -> pd.DataFrame:
    """Every row of ``source``; an InvalidRequestError saying why if it cannot be read."""
    import duckdb

    check_suffixes(source)
    reader = "read_csv(?, all_varchar = true)" if source.suffix == ".csv" else "read_parquet(?)"
    with duckdb.connect(":memory:") as con:
        try:
            return con.execute(f"SELECT * FROM {reader}", [str(source)]).df()
        except duckdb.Error as err:
            raise InvalidRequestError(f"{source} cannot be read: {err}") from None


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Each row of ``frame`` as a mapping of its column names to Python values."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def write_rows(frame: pd.DataFrame, out: Path) -> None:
    """``frame`` as ``out`` (CSV with a header, or Parquet), its directory made if need be."""
    import duckdb

    check_suffixes(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = "CSV, HEADER" if out.suffix == ".csv" else "PARQUET"
    quoted = str(out).replace("'", "''")
    with duckdb.connect(":memory:") as con:
        con.register("rows", frame)
        con.execute(f"COPY rows TO '{quoted}' (FORMAT {kind})")
