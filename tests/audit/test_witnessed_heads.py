"""A log that no longer holds what its witnesses cosigned takes no write at all.

The loss it guards against is silent: SQLite drops every write-ahead-log frame after
one with a bad checksum when it opens the file, so a damaged WAL reopens as a shorter,
perfectly consistent log (shown here on a real file).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditLog
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.sqlite import SqliteAuditLog
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.errors import IntegrityError, StorageUnavailableError
from mpc_gateway.gateway.recovery import witnessed_by
from tests.audit.helpers import ORIGIN, StepClock, damage_wal_frame, fill, fixed_key, make_event

WITNESS = "node bank-a"


def test_a_log_that_holds_the_cosigned_checkpoint_carries_on(log: AuditLog) -> None:
    fill(log, 4)
    note = log.signed_tree_head()
    fill(log, 2)  # the log grew since: it still holds the checkpoint
    assert AuditTrail(log).check_witnessed(WITNESS, note) is None
    assert AuditTrail(log).check_witnessed(WITNESS, "") is None  # the witness cosigned nothing
    log.append(make_event(99))
    assert log.storage_problem is None


def test_a_log_shorter_than_the_cosigned_checkpoint_is_halted() -> None:
    cosigned = _log(fixed_key(7))
    fill(cosigned, 6)
    note = cosigned.signed_tree_head()
    restored = _log(fixed_key(7))  # an older copy: the first four entries only
    fill(restored, 4)
    heard: list[str | None] = []
    restored.watch_storage(heard.append)

    problem = AuditTrail(restored).check_witnessed(WITNESS, note)

    assert problem is not None
    assert problem.startswith(
        "the audit log holds 4 entries, but node bank-a cosigned its checkpoint at size 6: "
        "entries were lost"
    ), problem
    _assert_halted(restored, problem)
    assert heard == [None, problem]  # health hears it as a storage problem


def test_a_rewritten_log_is_halted_even_when_it_grew_past_the_checkpoint() -> None:
    cosigned = _log(fixed_key(7))
    fill(cosigned, 3)
    note = cosigned.signed_tree_head()
    rewritten = _log(fixed_key(7))
    for number in range(8):
        rewritten.append(make_event(number, actor="someone-else"))

    problem = AuditTrail(rewritten).check_witnessed(WITNESS, note)

    assert problem is not None
    assert "the audit log's first 3 entries are not those node bank-a cosigned" in problem
    _assert_halted(rewritten, problem)


def test_a_checkpoint_the_log_did_not_sign_blames_the_witness_and_halts_nothing() -> None:
    other = _log(fixed_key(9))
    fill(other, 9)
    ours = _log(fixed_key(7))
    fill(ours, 2)
    with pytest.raises(IntegrityError, match="made with a different key"):
        AuditTrail(ours).check_witnessed(WITNESS, other.signed_tree_head())
    ours.append(make_event(2))
    assert ours.storage_problem is None


def test_each_node_reports_once_per_lane_and_the_first_reason_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cosigned = _log(fixed_key(7))
    fill(cosigned, 6)
    note = cosigned.signed_tree_head()
    stranger = _log(fixed_key(9))
    fill(stranger, 1)
    restored = _log(fixed_key(7))
    fill(restored, 4)
    heard: list[str | None] = []
    restored.watch_storage(heard.append)
    check = witnessed_by(AuditTrail(restored))

    with caplog.at_level(logging.WARNING, logger="mpc_gateway.gateway.recovery"):
        for _lane in ("short", "long"):  # every node answers as each lane's session opens
            check("bank-a", note)
            check("bank-b", note)
            check("broker-c", stranger.signed_tree_head())

    first = caplog.records[0].getMessage()
    assert heard == [None, first]  # health heard one problem: the first node's
    _assert_halted(restored, first)
    assert caplog.records[1].getMessage().endswith("; the log was halted already")
    said = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records]
    assert said == [
        (
            logging.ERROR,
            "the audit log holds 4 entries, but node bank-a cosigned its checkpoint at size 6",
        ),
        (
            logging.ERROR,
            "the audit log holds 4 entries, but node bank-b cosigned its checkpoint at size 6",
        ),
        (logging.WARNING, "node broker-c reports a checkpoint the gateway did not sign"),
    ]


def test_a_damaged_write_ahead_log_reopens_shorter_and_is_halted(tmp_path: Path) -> None:
    live = tmp_path / "live" / "audit.sqlite"
    live.parent.mkdir()
    clock = StepClock()
    with SqliteAuditLog(live, origin=ORIGIN, signing_key=fixed_key(7), clock=clock) as log:
        fill(log, 12)
        note = log.signed_tree_head()  # what the nodes cosigned
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for suffix in ("", "-wal"):  # the files as a crash leaves them: every entry in the WAL
            shutil.copyfile(f"{live}{suffix}", crashed / f"audit.sqlite{suffix}")
    damage_wal_frame(crashed / "audit.sqlite-wal")

    copy = crashed / "audit.sqlite"
    with SqliteAuditLog(copy, origin=ORIGIN, signing_key=fixed_key(7), clock=clock) as reopened:
        assert 0 < reopened.size() < 12  # no error: the tail is simply gone
        problem = AuditTrail(reopened).check_witnessed(WITNESS, note)
        assert problem is not None and "entries were lost" in problem
        assert "a damaged write-ahead log" in problem
        _assert_halted(reopened, problem)


def _log(key: Ed25519PrivateKey) -> AuditLog:
    return InMemoryAuditLog(origin=ORIGIN, signing_key=key, clock=StepClock())


def _assert_halted(log: AuditLog, problem: str) -> None:
    size = log.size()
    with pytest.raises(StorageUnavailableError) as refused:
        log.append(make_event(1000))
    assert refused.value.public_message == problem
    with pytest.raises(StorageUnavailableError):
        log.signed_tree_head()
    assert log.size() == size
    assert log.storage_problem == problem
    assert log.recheck_storage() == problem  # no probe write clears it
