"""The usage ledger behind daily limits: counts per analyst per UTC day, threads, SQLite."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from mpc_gateway.policy import UsageLedger
from tests.unit.policy_cases import NOW


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_ledger_counts_per_analyst_per_utc_day() -> None:
    clock = _Clock()
    ledger = UsageLedger(clock=clock)
    assert ledger.count("analyst/alice") == 0
    assert ledger.record("analyst/alice") == 1
    assert ledger.record("analyst/alice") == 2
    ledger.record("analyst/bob")
    assert ledger.count("analyst/alice") == 2
    assert ledger.count("analyst/alice", date(2026, 11, 23)) == 0
    clock.now = NOW + timedelta(hours=12)
    assert ledger.today() == date(2026, 11, 25)
    assert ledger.count("analyst/alice") == 0
    assert ledger.count("analyst/alice", date(2026, 11, 24)) == 2


def test_ledger_record_if_below_checks_and_counts_in_one_step() -> None:
    ledger = UsageLedger(clock=_Clock())
    assert [ledger.record_if_below("analyst/alice", 2) for _ in range(3)] == [True, True, False]
    assert ledger.count("analyst/alice") == 2
    assert ledger.record_if_below("analyst/alice", None)


@pytest.mark.parametrize("persistent", [False, True])
def test_ledger_is_thread_safe(tmp_path: Path, persistent: bool) -> None:
    with UsageLedger(tmp_path / "usage.sqlite" if persistent else None, clock=_Clock()) as ledger:
        taken: list[bool] = []

        def work() -> None:
            for _ in range(50):
                taken.append(ledger.record_if_below("analyst/alice", 120))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert ledger.count("analyst/alice") == 120
        assert taken.count(True) == 120


def test_ledger_persists_in_sqlite_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "var" / "usage.sqlite"
    with UsageLedger(path, clock=_Clock()) as ledger:
        ledger.record("analyst/alice")
        ledger.record("analyst/alice")
    with UsageLedger(path, clock=_Clock()) as ledger:
        assert ledger.count("analyst/alice") == 2
        assert ledger.record("analyst/alice") == 3
    ledger.close()
    with pytest.raises(RuntimeError, match="closed"):
        ledger.count("analyst/alice")


@pytest.mark.parametrize("persistent", [False, True])
def test_forget_drops_only_the_prefix_s_keys_before_the_day(
    tmp_path: Path, persistent: bool
) -> None:
    ledger = UsageLedger(tmp_path / "u.sqlite" if persistent else None)
    old, new = date(2026, 1, 1), date(2026, 1, 3)
    for day in (old, new):
        ledger.record("pseudonym-request:ab", day)
        ledger.record("pseudonym-request_x", day)  # "_" is no wildcard
        ledger.record("loans:analyst/alice", day)
    ledger.forget("pseudonym-request:", before=new)
    assert ledger.count("pseudonym-request:ab", old) == 0
    assert ledger.count("pseudonym-request:ab", new) == 1
    assert ledger.count("pseudonym-request_x", old) == 1
    assert ledger.count("loans:analyst/alice", old) == 1
    ledger.close()
