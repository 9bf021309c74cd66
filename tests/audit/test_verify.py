"""An auditor's checks: tampering with the SQLite file, rewritten history, split views."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpc_gateway.audit.checkpoint import Checkpoint, verify_checkpoint
from mpc_gateway.audit.log import AuditLog
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.sqlite import SqliteAuditLog, load_raw
from mpc_gateway.audit.verify import VerificationReport, compare_views, verify_log
from mpc_gateway.errors import IntegrityError
from tests.audit.helpers import ORIGIN, StepClock, TamperedFile, fill, fixed_key, make_event

KEY = fixed_key(7)


def audit(path: Path, last_seen: Checkpoint | None = None) -> VerificationReport:
    raw = load_raw(path)
    return verify_log(raw.entries, raw.tree_heads, KEY.public_key(), ORIGIN, last_seen)


def head(note: str) -> Checkpoint:
    return verify_checkpoint(note, ORIGIN, KEY.public_key())


@pytest.fixture
def signed_file(sqlite_log: SqliteAuditLog) -> TamperedFile:
    """20 entries, a head signed after each: mismatches can be pinned to one entry."""
    fill(sqlite_log, 20, sign_every=1)
    sqlite_log.close()
    assert audit(sqlite_log.path).ok
    return TamperedFile(sqlite_log.path)


def memory_log(count: int, *, diverge_at: int | None = None, sign_every: int = 1) -> AuditLog:
    """A log under the same key; from ``diverge_at`` on its entries differ (a rewritten history)."""
    log = InMemoryAuditLog(origin=ORIGIN, signing_key=KEY, clock=StepClock())
    for number in range(count):
        forked = diverge_at is not None and number >= diverge_at
        log.append(make_event(number, decision="deny" if forked else None))
        if (number + 1) % sign_every == 0:
            log.signed_tree_head()
    return log


def test_changed_entry_is_pinned_down(signed_file: TamperedFile) -> None:
    signed_file.replace_entry(7, make_event(7, decision="allow").entry_bytes())
    report = audit(signed_file.path)
    assert report.problems == (
        "entry 7 does not match the root signed at size 8 (the root signed at size 7 still "
        "matches); 12 later head(s), up to size 20, fail too",
    )
    with pytest.raises(IntegrityError, match="entry 7 does not match the root signed at size 8"):
        report.raise_if_failed()


def test_change_is_narrowed_to_the_span_between_heads(sqlite_log: SqliteAuditLog) -> None:
    fill(sqlite_log, 20, sign_every=5)
    sqlite_log.close()
    TamperedFile(sqlite_log.path).replace_entry(7, make_event(70).entry_bytes())
    assert (
        audit(sqlite_log.path)
        .problems[0]
        .startswith(
            "entries 5..9 do not match the root signed at size 10 (the root signed at size 5 still"
        )
    )


def test_deleted_entry_is_detected(signed_file: TamperedFile) -> None:
    signed_file.delete_entry(7)
    problems = audit(signed_file.path).problems
    assert problems[0] == (
        "tree head at size 20 covers more entries than the log holds (19): entries were "
        "deleted or the log was truncated"
    )
    assert problems[1].startswith("entry 7 does not match the root signed at size 8")


def test_reordered_entries_are_detected(signed_file: TamperedFile) -> None:
    signed_file.swap_entries(3, 11)
    assert (
        audit(signed_file.path)
        .problems[0]
        .startswith(
            "entry 3 does not match the root signed at size 4 (the root signed at size 3 still"
        )
    )


def test_truncated_tail_is_detected(signed_file: TamperedFile) -> None:
    signed_file.truncate(keep=15)
    assert audit(signed_file.path).problems == (
        "tree head at size 16 covers more entries than the log holds (15): entries were "
        "deleted or the log was truncated (4 later head(s) too)",
    )


def test_truncation_with_its_heads_removed_is_caught_by_the_last_head_seen(
    signed_file: TamperedFile,
) -> None:
    last_seen = head(load_raw(signed_file.path).tree_heads[-1])  # size 20, kept by the auditor
    signed_file.truncate(keep=15)
    signed_file.drop_heads_above(15)
    assert audit(signed_file.path).ok  # the file alone now looks like an honest log of 15
    assert audit(signed_file.path, last_seen).problems == (
        "the log holds 15 entries, fewer than the size 20 of the last head you saw: "
        "entries were removed",
    )


def test_forged_entry_appended_after_the_last_head_is_detected(signed_file: TamperedFile) -> None:
    index = signed_file.append_forged(make_event(20, actor="intruder").entry_bytes())
    assert audit(signed_file.path).problems == (
        f"entry {index} is not covered by any signed tree head: appended after the last head "
        "was signed, or forged",
    )


def test_entry_that_is_not_a_canonical_event_is_named(signed_file: TamperedFile) -> None:
    signed_file.replace_entry(19, b'{"kind": "dispatch"}')
    signed_file.replace_entry(18, b'{"kind":"dispatch"}')
    problems = audit(signed_file.path).problems
    assert "entry 19 is not canonical JSON" in problems
    assert any(p.startswith("entry 18 is not a valid audit event (actor:") for p in problems)


def test_head_signed_by_another_key_is_reported(signed_file: TamperedFile) -> None:
    raw = load_raw(signed_file.path)
    forger = InMemoryAuditLog(origin=ORIGIN, signing_key=fixed_key(8), clock=StepClock())
    heads = [*raw.tree_heads, forger.signed_tree_head()]
    report = verify_log(raw.entries, heads, KEY.public_key(), ORIGIN)
    assert len(report.problems) == 1
    assert report.problems[0].startswith("tree head #20 is rejected: the signature by")


def test_heads_rejected_alike_in_a_row_are_reported_once_and_runs_stay_apart(
    signed_file: TamperedFile,
) -> None:
    raw = load_raw(signed_file.path)
    forger = InMemoryAuditLog(origin=ORIGIN, signing_key=fixed_key(8), clock=StepClock())
    forged = [forger.signed_tree_head() for _ in range(3)]
    heads = [*forged[:2], *raw.tree_heads, forged[2]]
    problems = verify_log(raw.entries, heads, KEY.public_key(), ORIGIN).problems
    assert [p.split(":")[0] for p in problems] == [
        "tree heads #0..#1 are rejected",
        "tree head #22 is rejected",
    ]


def test_rewritten_history_is_inconsistent_with_the_last_head_seen() -> None:
    honest = memory_log(15)
    last_seen = head(honest.tree_heads()[-1])
    rewritten = memory_log(20, diverge_at=10, sign_every=5)
    report = verify_log(
        rewritten.entries(), rewritten.tree_heads(), KEY.public_key(), ORIGIN, last_seen
    )
    assert report.problems == (
        "the log's first 15 entries do not reproduce the root of the last head you saw: "
        "history was rewritten",
        "tree head at size 15 is not consistent with the last head you saw (size 15)",
        "tree head at size 20 is not consistent with the last head you saw (size 15)",
    )


def test_two_roots_for_one_size_in_the_logs_own_heads_is_a_split_view() -> None:
    honest, fork = memory_log(12), memory_log(12, diverge_at=6)
    heads = [*honest.tree_heads(), fork.tree_heads()[-1]]
    report = verify_log(honest.entries(), heads, KEY.public_key(), ORIGIN)
    assert report.problems == (
        "the log signed two different roots at size 12; root "
        f"{fork.root().hex()[:16]}... does not match the entries: a split view",
    )


def test_compare_views_finds_no_conflict_between_honest_views() -> None:
    log = memory_log(10)
    node_heads = {"bank-a": log.tree_heads()[2:5], "bank-b": log.tree_heads()[-1:]}
    result = compare_views(log.tree_heads(), node_heads, KEY.public_key(), ORIGIN, log.entries())
    assert not result.split_view and result.unverifiable == ()


def test_compare_views_detects_two_roots_at_one_size() -> None:
    shown_to_auditor, shown_to_bank_b = memory_log(12), memory_log(12, diverge_at=9)
    fork_head = shown_to_bank_b.tree_heads()[10]  # size 11
    result = compare_views(
        shown_to_auditor.tree_heads(), {"bank-b": [fork_head]}, KEY.public_key(), ORIGIN
    )
    assert result.split_view
    (conflict,) = result.conflicts
    assert conflict.message.startswith("the log signed 2 different roots at size 11: ")
    assert (
        "shown to the gateway" in conflict.message and "shown to node 'bank-b'" in conflict.message
    )
    assert fork_head in conflict.notes and len(conflict.notes) == 2


def test_compare_views_checks_node_heads_against_the_gateways_entries() -> None:
    gateway = memory_log(20, sign_every=5)
    fork = memory_log(25, diverge_at=11)
    node_heads = {"bank-c": [fork.tree_heads()[12], fork.tree_heads()[24]]}  # sizes 13 and 25
    result = compare_views(
        gateway.tree_heads(), node_heads, KEY.public_key(), ORIGIN, gateway.entries()
    )
    assert [c.message for c in result.conflicts] == [
        "node 'bank-c' holds a head at size 13 that is not consistent with the gateway's log: "
        "the gateway's entries do not reproduce its root",
        "node 'bank-c' holds a head at size 25, but the gateway's log has only 20 entries: "
        "entries were hidden or the log truncated",
    ]


def test_compare_views_sets_aside_heads_without_a_valid_signature() -> None:
    log = memory_log(4)
    stranger = InMemoryAuditLog(origin=ORIGIN, signing_key=fixed_key(9), clock=StepClock())
    result = compare_views(
        log.tree_heads(), {"bank-a": [stranger.signed_tree_head()]}, KEY.public_key(), ORIGIN
    )
    assert not result.split_view
    assert len(result.unverifiable) == 1
    assert result.unverifiable[0].startswith("a head held by node 'bank-a' is not validly signed")
