"""A throwaway PostgreSQL server for the local consortium, the tests and the benchmarks.

Starts PostgreSQL's own server binaries (``initdb``, ``pg_ctl``) in a fresh
directory on a free loopback port, and loads loan books into it, the way an
institution's warehouse would hold them. PostgreSQL refuses to run as root: as
root, the server runs as the ``postgres`` user (``runuser``), in a directory
that user owns. On Debian, ``apt-get install postgresql`` provides the binaries
(``make setup`` does it where they are missing).
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg
from psycopg import sql

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, NumericColumn

__all__ = ["PostgresServer", "postgres_server", "server_binaries", "load_table"]


def server_binaries() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(candidate).parent
    raise ConfigurationError(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
        "`apt-get install postgresql` (or `make setup`, which does it)"
    )


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its connection string (libpq keywords), data directory and log."""

    dsn: str
    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "server.log"


def _as_server_user(command: Sequence[str]) -> list[str]:
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: Sequence[str], what: str) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")


@contextmanager
def postgres_server(port: int) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server on 127.0.0.1:``port`` for the duration of the block."""
    binaries = server_binaries()
    directory = Path(tempfile.mkdtemp(prefix="mpcgw-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    _run(
        [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        "initdb",
    )
    options = f"-k {directory} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = directory / "server.log"
    start = [
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(log),
        "-w",
        "start",
    ]
    _run(start, "pg_ctl start")
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"
    try:
        _wait(dsn)
        yield PostgresServer(dsn, directory)
    finally:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(directory, ignore_errors=True)


def _wait(dsn: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(dsn):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _column_type(column: object) -> sql.Composable:
    if isinstance(column, NumericColumn):
        digits = len(str(int(max(abs(column.min), abs(column.max))))) + column.scale
        return sql.SQL("NUMERIC({}, {})").format(sql.Literal(digits), sql.Literal(column.scale))
    return sql.SQL("TEXT")


def load_table(dsn: str, table: str, schema: DatasetSchema, parquet: Path) -> int:
    """Create ``table`` with the schema's columns (exact NUMERIC types) and copy a file in.

    The rows travel as text, never through a float: DuckDB writes each value as
    its decimal text, and PostgreSQL's COPY parses it as NUMERIC.
    """
    names = list(schema.columns)
    with tempfile.NamedTemporaryFile("w+", suffix=".csv", newline="") as staged:
        selected = ", ".join(
            f'CAST("{n}" AS VARCHAR)' if not isinstance(c, CategoricalColumn) else f'"{n}"'
            for n, c in schema.columns.items()
        )
        rows = duckdb.connect().execute(f"SELECT {selected} FROM read_parquet(?)", [str(parquet)])
        writer = csv.writer(staged)
        count = 0
        while batch := rows.fetchmany(10_000):
            writer.writerows(batch)
            count += len(batch)
        staged.flush()
        staged.seek(0)
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            columns = sql.SQL(", ").join(
                sql.SQL("{} {} NOT NULL").format(sql.Identifier(n), _column_type(c))
                for n, c in schema.columns.items()
            )
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), columns))
            copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
            )
            with conn.cursor().copy(copy) as stream:
                while chunk := staged.read(1 << 20):
                    stream.write(chunk)
    return count
