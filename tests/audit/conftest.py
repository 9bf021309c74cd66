"""Fixtures for the audit tests: every contract test runs once per storage backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditLog
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.sqlite import SqliteAuditLog
from tests.audit.helpers import ORIGIN, StepClock, fixed_key

LogFactory = Callable[[], AuditLog]


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return fixed_key(7)


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


@pytest.fixture(params=["memory", "sqlite"])
def make_log(
    request: pytest.FixtureRequest, db_path: Path, log_key: Ed25519PrivateKey, clock: StepClock
) -> Iterator[LogFactory]:
    opened: list[AuditLog] = []

    def factory() -> AuditLog:
        log: AuditLog
        if request.param == "memory":
            log = InMemoryAuditLog(origin=ORIGIN, signing_key=log_key, clock=clock)
        else:
            log = SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()


@pytest.fixture
def log(make_log: LogFactory) -> AuditLog:
    return make_log()


@pytest.fixture
def sqlite_log(
    db_path: Path, log_key: Ed25519PrivateKey, clock: StepClock
) -> Iterator[SqliteAuditLog]:
    with SqliteAuditLog(db_path, origin=ORIGIN, signing_key=log_key, clock=clock) as log:
        yield log
