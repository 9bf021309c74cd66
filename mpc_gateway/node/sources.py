"""Where a node's dataset lives: a file read into DuckDB, a PostgreSQL table, or nothing.

Every source offers the same to the computations: the schema, its row count,
and a cursor over the table ``data`` in the schema's integer encoding that runs
their (DuckDB-dialect) SQL. A file source (:class:`~mpc_gateway.node.data.LocalDataset`:
CSV, TSV, Parquet, or a table of a DuckDB database file) loads the rows into an
embedded DuckDB; a PostgreSQL source
(:class:`~mpc_gateway.node.postgres.PostgresDataset`) leaves them in the
database and pushes every statement down; a node that holds no data (a helper)
has an empty table of the schema's columns. docs/sources.md says how to add one.
"""

from __future__ import annotations

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.node.postgres import PostgresDataset
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.settings import DatasetSource

__all__ = ["DataSource", "open_dataset", "close_dataset"]

DataSource = LocalDataset | PostgresDataset


def open_dataset(
    name: str, schema: DatasetSchema, source: DatasetSource, threads: int, *, holds_data: bool
) -> DataSource:
    """The dataset ``name`` as the node's config says, checked against ``schema``."""
    if not holds_data:  # zeros of every shape, whatever the computation
        return LocalDataset(schema, None, threads)
    if source.postgres is not None:
        return PostgresDataset(schema, source.postgres)
    if source.source is None:
        raise ConfigurationError(
            f"dataset {name!r} has no source in the node config: give a file (`source`) "
            "or a PostgreSQL table (`postgres`)"
        )
    return LocalDataset(schema, source.source, threads, table=source.table)


def close_dataset(dataset: DataSource) -> None:
    """Release what the source holds open (database connections)."""
    if isinstance(dataset, PostgresDataset):
        dataset.close()
