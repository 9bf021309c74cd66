"""A witness log rolled back, emptied or forked is caught with the auditor's state."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.audit.sqlite import SqliteAuditLog
from mpc_gateway.auditor import AuditOutcome, load_last_seen, load_state, save_state
from mpc_gateway.errors import ConfigurationError
from tests.audit.helpers import StepClock
from tests.audit.witnesses import TRUST_DOMAIN, Consortium, erase_tail, event, snapshot

BANK_A = log_origin(TRUST_DOMAIN, "node", "bank-a")


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    running = Consortium(tmp_path / "logs")
    yield running
    running.close()


def verified(outcome: AuditOutcome, state: Path) -> None:
    assert outcome.ok, outcome.problems
    save_state(state, outcome.latest_notes)


def rollback_problems(outcome: AuditOutcome) -> list[str]:
    return [p for p in outcome.problems if p.startswith("node bank-a log:")]


def test_state_keeps_every_logs_size_and_root_and_each_later_visit_checks_it(
    consortium: Consortium, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    consortium.query("q-1")
    verified(consortium.verify(), state)
    kept = json.loads(state.read_text())
    assert set(kept) == {
        log_origin(TRUST_DOMAIN, o.role, o.name) for o in consortium.owners.values()
    }
    assert kept[BANK_A]["size"] == consortium.logs["bank-a"].size() == 2
    consortium.query("q-2")
    again = consortium.verify(load_state(state))
    assert again.ok, again.problems
    assert (
        "node bank-a witness log: 4 entries, 4 signed tree heads verified, consistent with "
        "the head you last saw (size 2)"
    ) in " ".join(again.checked)


def test_a_witness_log_restored_from_an_older_copy_is_caught(
    consortium: Consortium, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    consortium.query("q-1")
    old = snapshot(consortium.path("bank-a"), tmp_path / "bank-a-old.sqlite")
    consortium.query("q-2")
    verified(consortium.verify(), state)
    found = consortium.verify(load_state(state), files={"bank-a": old})
    assert rollback_problems(found)[0] == (
        "node bank-a log: the log holds 2 entries, fewer than the size 4 of the last head you "
        "saw: entries were removed"
    )


def test_a_restored_copy_that_grew_again_is_caught_by_the_consistency_proof(
    consortium: Consortium, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    consortium.query("q-1")
    old = snapshot(consortium.path("bank-a"), tmp_path / "bank-a-old.sqlite")
    consortium.query("q-2")
    verified(consortium.verify(), state)
    restored = SqliteAuditLog(
        old, origin=BANK_A, signing_key=consortium.keys["bank-a"], clock=StepClock()
    )
    for _ in range(3):  # the node carries on from the old copy, past the size last seen
        restored.append(event("order.refused", "gateway/gateway", None, reason="replayed"))
        restored.signed_tree_head()
    restored.close()
    found = rollback_problems(consortium.verify(load_state(state), files={"bank-a": old}))
    assert found[0] == (
        "node bank-a log: the log's first 4 entries do not reproduce the root of the last head "
        "you saw: history was rewritten"
    )
    assert (
        "node bank-a log: tree head at size 5 is not consistent with the last head you saw (size 4)"
        in found
    )


def test_an_emptied_witness_log_is_caught(consortium: Consortium, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    consortium.query("q-1")
    verified(consortium.verify(), state)
    consortium.close()
    erase_tail(consortium.path("bank-a"), 0)
    found = consortium.verify(load_state(state))
    assert rollback_problems(found) == [
        "node bank-a log: the log holds 0 entries, fewer than the size 2 of the last head you "
        "saw: entries were removed"
    ]


def test_an_emptied_witness_log_is_caught_without_state_when_it_backed_a_release(
    consortium: Consortium,
) -> None:
    consortium.query("q-1")
    consortium.close()
    erase_tail(consortium.path("bank-a"), 0)
    found = consortium.verify()
    assert rollback_problems(found) == []  # nothing to compare with: the log is valid, empty
    assert any("to node bank-a, whose log holds no such order" in p for p in found.problems), (
        found.problems
    )


def test_a_forked_witness_log_signed_with_the_nodes_key_is_caught(
    consortium: Consortium, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    consortium.query("q-1")
    verified(consortium.verify(), state)
    fork = tmp_path / "fork.sqlite"
    forged = SqliteAuditLog(
        fork, origin=BANK_A, signing_key=consortium.keys["bank-a"], clock=StepClock()
    )
    for _ in range(2):  # as many entries as before, but others
        forged.append(event("order.refused", "gateway/gateway", None, reason="rewritten"))
        forged.signed_tree_head()
    forged.close()
    found = rollback_problems(consortium.verify(load_state(state), files={"bank-a": fork}))
    assert found[0] == (
        "node bank-a log: the log's first 2 entries do not reproduce the root of the last head "
        "you saw: history was rewritten"
    )


def test_the_state_is_not_moved_past_a_failed_verification(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A CLI run saves only a clean outcome; a rolled-back log keeps failing on every visit."""
    state = tmp_path / "state.json"
    consortium.query("q-1")
    verified(consortium.verify(), state)
    consortium.close()
    erase_tail(consortium.path("bank-a"), 0)
    for _ in range(2):
        assert rollback_problems(consortium.verify(load_state(state)))


def test_state_files_in_the_former_format_are_read(consortium: Consortium, tmp_path: Path) -> None:
    consortium.query("q-1")
    note = consortium.logs["bank-a"].tree_heads()[-1]
    state = tmp_path / "state.json"
    state.write_text(json.dumps({BANK_A: note}))
    assert load_last_seen(state, BANK_A) == note
    save_state(state, {})
    assert json.loads(state.read_text())[BANK_A] == {
        "size": 2,
        "root_hash": base64.b64encode(consortium.logs["bank-a"].root(2)).decode(),
        "checkpoint": note,
    }


def test_an_unreadable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(ConfigurationError, match="the audit state file .* is unreadable"):
        load_state(state)
    state.write_text("[]")
    with pytest.raises(ConfigurationError, match="is not a JSON object"):
        load_state(state)


def test_a_state_head_the_logs_key_did_not_sign_is_a_problem_not_a_crash(
    consortium: Consortium,
) -> None:
    consortium.query("q-1")
    forged = consortium.logs["bank-b"].tree_heads()[-1]  # another log's head, filed as bank-a's
    found = consortium.verify({BANK_A: forged})
    assert any(
        p.startswith(
            "node bank-a log: the head you last saw (in your state file) does not verify under "
            "the key the CA certified"
        )
        for p in found.problems
    ), found.problems
