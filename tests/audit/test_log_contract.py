"""The AuditLog contract, run against every backend (see the ``make_log`` fixture)."""

from __future__ import annotations

import threading

import pytest

from mpc_gateway.audit.checkpoint import (
    append_signature,
    cosign,
    parse_note,
    verify_checkpoint,
    verify_cosignature,
)
from mpc_gateway.audit.log import AuditEvent, AuditLog
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from mpc_gateway.audit.verify import verify_log
from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.errors import ConfigurationError, IntegrityError
from tests.audit.helpers import ORIGIN, START_MS, StepClock, fill, fixed_key, make_event


def test_append_returns_index_and_leaf_hash_of_the_stored_bytes(log: AuditLog) -> None:
    first = log.append(make_event(0))
    second = log.append(make_event(1))
    assert (first.index, second.index) == (0, 1)
    assert log.size() == 2
    assert second.leaf_hash == leaf_hash(log.entry(1))


def test_entry_is_the_canonical_encoding_of_the_event(log: AuditLog) -> None:
    event = make_event(3, kind="policy.decision", decision="allow")
    log.append(event)
    assert log.entry(0) == canonical_bytes(event.model_dump()) == event.entry_bytes()
    assert AuditEvent.from_entry(log.entry(0)) == event


def test_entries_returns_ranges_and_refuses_out_of_range(log: AuditLog) -> None:
    fill(log, 5, sign_every=5)
    assert log.entries() == [log.entry(i) for i in range(5)]
    assert log.entries(1, 3) == [log.entry(1), log.entry(2)]
    assert log.entries(5, 5) == []
    with pytest.raises(IndexError):
        log.entry(5)
    with pytest.raises(IndexError):
        log.entries(2, 9)


def test_events_filters_by_every_given_field(log: AuditLog) -> None:
    for number in range(9):
        log.append(make_event(number, kind="dispatch" if number % 2 else "query.submitted"))
    dispatches = log.events(kind="dispatch")
    assert [e.index for e in dispatches] == [1, 3, 5, 7]
    assert all(e.event.kind == "dispatch" for e in dispatches)
    assert [e.index for e in log.events(kind="dispatch", actor="analyst-0")] == [3]
    assert [e.index for e in log.events(query_id="q-4")] == [4]
    assert log.events(decision="allow") == []
    window = log.events(since_ms=START_MS + 2, until_ms=START_MS + 5)
    assert [e.index for e in window] == [2, 3, 4]
    assert log.events(dataset="other") == []


def test_empty_log_signs_the_empty_root(log: AuditLog) -> None:
    head = verify_checkpoint(log.signed_tree_head(), ORIGIN, log.public_key)
    assert (head.origin, head.size, head.root_hash) == (ORIGIN, 0, EMPTY_ROOT)
    assert log.root() == EMPTY_ROOT


def test_signed_tree_head_commits_to_the_entries_and_the_clock(log: AuditLog) -> None:
    fill(log, 6, sign_every=100)
    note = log.signed_tree_head()
    head = verify_checkpoint(note, log.key_name, log.public_key, origin=ORIGIN)
    assert head.size == 6
    assert head.root_hash == log.root() == root_hash([leaf_hash(d) for d in log.entries()])
    assert head.timestamp_ms == START_MS  # the first reading of the injected clock
    assert log.key_name == ORIGIN


def test_every_signed_head_is_kept_in_order(log: AuditLog) -> None:
    notes = fill(log, 6, sign_every=2)
    notes.append(log.signed_tree_head())  # re-signing the same size is kept too
    assert log.tree_heads() == notes
    sizes = [verify_checkpoint(n, ORIGIN, log.public_key).size for n in log.tree_heads()]
    assert sizes == [2, 4, 6, 6]


def test_a_head_keeps_the_cosignatures_it_gathered_in_its_place(log: AuditLog) -> None:
    notes = fill(log, 4, sign_every=2)
    witness = fixed_key(9)
    line = cosign(parse_note(notes[0])[0], 1_700_000_000, "witness.example/w", witness)
    cosigned = append_signature(notes[0], line)
    log.add_cosignatures(notes[0], cosigned)
    assert log.tree_heads() == [cosigned, notes[1]]  # the same head, in its place
    assert verify_cosignature(log.tree_heads()[0], "witness.example/w", witness.public_key())
    assert verify_log(log.entries(), log.tree_heads(), log.public_key, ORIGIN).ok


def test_only_a_stored_head_of_this_log_gathers_cosignatures(log: AuditLog) -> None:
    notes = fill(log, 2, sign_every=1)
    line = cosign(parse_note(notes[1])[0], 1, "witness.example/w", fixed_key(9))
    with pytest.raises(IntegrityError, match="the signed one with lines added"):
        log.add_cosignatures(notes[0], append_signature(notes[1], line))  # another head
    other = InMemoryAuditLog(origin=ORIGIN, signing_key=fixed_key(8), clock=StepClock())
    foreign = fill(other, 2, sign_every=2)[0]
    with pytest.raises(IntegrityError, match="stores no such head at size 2"):
        log.add_cosignatures(foreign, append_signature(foreign, line))
    again = log.signed_tree_head()  # a second head at size 2
    log.add_cosignatures(again, append_signature(again, line))
    with pytest.raises(IntegrityError, match="stores no such head at size 2"):
        log.add_cosignatures(again, append_signature(again, line))  # stored cosigned now
    assert log.tree_heads()[:2] == notes  # the other head of that size stays as it was


def test_inclusion_proofs_verify_against_signed_heads(log: AuditLog) -> None:
    fill(log, 7, sign_every=100)
    head = verify_checkpoint(log.signed_tree_head(), ORIGIN, log.public_key)
    fill(log, 3, sign_every=100)
    for index in range(head.size):
        proof = log.inclusion_proof(index, head.size)
        leaf = leaf_hash(log.entry(index))
        assert verify_inclusion(leaf, index, head.size, proof, head.root_hash)
    assert log.inclusion_proof(9) == log.inclusion_proof(9, 10)


def test_consistency_proofs_link_successive_heads(log: AuditLog) -> None:
    notes = fill(log, 12, sign_every=3)
    heads = [verify_checkpoint(n, ORIGIN, log.public_key) for n in notes]
    for old, new in zip(heads, heads[1:], strict=False):
        proof = log.consistency_proof(old.size, new.size)
        assert verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    assert log.consistency_proof(12) == []


def test_root_of_an_earlier_size_is_that_of_the_prefix(log: AuditLog) -> None:
    fill(log, 9, sign_every=100)
    leaves = [leaf_hash(d) for d in log.entries()]
    assert [log.root(n) for n in range(10)] == [root_hash(leaves[:n]) for n in range(10)]
    with pytest.raises(ValueError):
        log.root(10)


def test_concurrent_appends_lose_nothing(log: AuditLog) -> None:
    def worker(offset: int) -> None:
        for number in range(offset, offset + 25):
            log.append(make_event(number))
            if number % 10 == 0:
                log.signed_tree_head()

    threads = [threading.Thread(target=worker, args=(t * 100,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.signed_tree_head()
    assert log.size() == 200
    query_ids = sorted(AuditEvent.from_entry(d).query_id or "" for d in log.entries())
    assert query_ids == sorted(f"q-{t * 100 + i}" for t in range(8) for i in range(25))
    report = verify_log(log.entries(), log.tree_heads(), log.public_key, ORIGIN)
    assert report.ok, report.problems


def test_an_honest_log_verifies(log: AuditLog) -> None:
    fill(log, 10, sign_every=4)
    log.signed_tree_head()
    report = verify_log(log.entries(), log.tree_heads(), log.public_key, log.key_name)
    assert report.problems == ()
    assert (report.size, report.heads_verified) == (10, 3)
    assert report.latest is not None and report.latest.size == 10


def test_an_unusable_identity_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="without spaces"):
        InMemoryAuditLog(origin="has space", signing_key=fixed_key(1), clock=StepClock())
    with pytest.raises(ConfigurationError, match="origin"):
        InMemoryAuditLog(origin="", signing_key=fixed_key(1), clock=StepClock(), key_name="k")


def test_a_storage_recheck_adds_no_entry_and_finds_a_writable_store(log: AuditLog) -> None:
    log.append(make_event(0))
    before = (log.size(), log.entries(0, 1))
    problems: list[str | None] = []
    log.watch_storage(problems.append)
    assert log.recheck_storage() is None
    assert (log.size(), log.entries(0, 1)) == before
    assert problems == [None]  # no change to report
