"""Fixtures every test layer may ask for: a throwaway PostgreSQL server (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mpc_gateway.devnet.localnet import free_port
from mpc_gateway.devnet.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own for the test session (never skipped: it must start)."""
    with postgres_server(free_port()) as server:
        yield server
