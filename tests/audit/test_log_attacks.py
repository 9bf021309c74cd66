"""Attacks on the logs by those who hold them: the gateway's operator, a node's, or all of them.

The gateway's operator holds the gateway log's signing key, so a log it rebuilds
is a valid log on its own; what catches it is what others kept: the heads the
nodes recorded with orders and cosigned for releases, and the auditor's state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.sqlite import SqliteAuditLog, load_raw
from mpc_gateway.auditor import AuditOutcome, load_state, save_state
from mpc_gateway.errors import ConfigurationError
from tests.audit.helpers import StepClock, fill, fixed_key
from tests.audit.witnesses import NODES, TRUST_DOMAIN, Consortium, snapshot


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    running = Consortium(tmp_path / "logs")
    for number in (1, 2, 3):
        running.query(f"q-{number}", witnessed=True)
    yield running
    running.close()


def edited(index: int, **changes: object) -> Callable[[list[bytes]], list[bytes]]:
    """An edit that changes fields of entry ``index``."""

    def edit(entries: list[bytes]) -> list[bytes]:
        event = AuditEvent.from_entry(entries[index])
        entries[index] = event.model_copy(update=changes).entry_bytes()
        return entries

    return edit


def kinds(consortium: Consortium) -> list[tuple[str, str | None]]:
    events = [AuditEvent.from_entry(e) for e in consortium.copy("gateway").entries]
    return [(e.kind, e.query_id) for e in events]


def split_views(outcome: AuditOutcome) -> list[str]:
    return [p for p in outcome.problems if p.startswith("split view:")]


def test_the_logs_verify_before_any_attack(consortium: Consortium) -> None:
    outcome = consortium.verify()
    assert outcome.ok, outcome.problems
    assert kinds(consortium)[3:6] == [
        ("query.submitted", "q-2"),
        ("query.dispatched", "q-2"),
        ("result.released", "q-2"),
    ]


def test_an_entry_rewritten_mid_log_and_re_signed_is_caught_by_the_nodes_heads(
    consortium: Consortium,
) -> None:
    consortium.rewrite("gateway", edited(3, actor="analyst/mallory"))  # who asked q-2
    alone = consortium.verify(nodes=())
    assert alone.ok, alone.problems  # the key's holder can sign anything: a valid log alone
    found = split_views(consortium.verify())
    for name in NODES:  # each node holds heads past entry 3: its q-2 release and q-3 order
        held = f"node '{name}' holds a head at size 6 that is not consistent"
        assert any(held in p for p in found), found
    assert not any("at size 3 " in p for p in found)  # heads before the change still match


def test_the_last_release_rewritten_is_caught_by_its_cosigned_head(
    consortium: Consortium,
) -> None:
    # q-3's release, the newest entry: no order received since covers it, only the cosignatures
    consortium.rewrite("gateway", edited(8, actor="analyst/mallory"))
    found = split_views(consortium.verify())
    assert found[0].startswith("split view: the log signed 2 different roots at size 9: ")
    assert found[0].endswith("shown to node 'bank-a', node 'bank-b', node 'broker-c'")
    assert found[1:] == [
        f"split view: node '{name}' holds a head at size 9 that is not consistent with the "
        "gateway's log: the gateway's entries do not reproduce its root"
        for name in NODES
    ]


def test_a_rewritten_log_is_caught_by_the_auditors_state_without_any_node(
    consortium: Consortium, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    outcome = consortium.verify()
    save_state(state, outcome.latest_notes)
    consortium.rewrite("gateway", edited(0, actor="analyst/mallory"))
    found = consortium.verify(load_state(state), nodes=()).problems
    assert found[0] == (
        "gateway log: the log's first 9 entries do not reproduce the root of the last head you "
        "saw: history was rewritten"
    )


def test_reordered_entries_re_signed_are_caught(consortium: Consortium) -> None:
    """q-2 told as if it ran before q-1: each block stays whole, the order of history changes."""
    consortium.rewrite("gateway", lambda e: e[3:6] + e[0:3] + e[6:])
    assert kinds(consortium)[0] == ("query.submitted", "q-2")
    found = split_views(consortium.verify())
    for size in (1, 3, 6):  # q-1's order and release, q-2's: each node recorded one of each
        assert any(f"holds a head at size {size} that is not consistent" in p for p in found)


def test_a_duplicated_release_re_signed_is_caught(consortium: Consortium) -> None:
    consortium.rewrite("gateway", lambda e: [*e, e[5]])  # q-2 released a second time
    found = consortium.verify().problems
    assert found == [
        "the gateway's log records 2 outcomes for query q-2: result.released (entry 5), "
        "result.released (entry 9)"
    ]


def test_a_duplicated_completion_in_a_nodes_log_re_signed_is_caught(
    consortium: Consortium,
) -> None:
    consortium.rewrite("bank-b", lambda e: [*e[:2], e[1], *e[2:]])  # q-1 completed twice
    found = consortium.verify().problems
    assert (
        "node bank-b completed query q-1 without having recorded receiving it (or recorded two "
        "outcomes for it)"
    ) in found


def test_swapped_node_logs_are_refused_under_the_keys_the_ca_certified(
    consortium: Consortium,
) -> None:
    swapped = {"bank-a": consortium.path("bank-b"), "bank-b": consortium.path("bank-a")}
    found = consortium.verify(files=swapped).problems
    for name, other in (("bank-a", "bank-b"), ("bank-b", "bank-a")):
        assert (
            f"node {name} log: tree heads #0..#8 are rejected: note is not signed by "
            f"'{TRUST_DOMAIN}/node/{name}/audit' "
            f"(it is signed by '{TRUST_DOMAIN}/node/{other}/audit')"
        ) in found
        assert (
            f"node {name} log: entries 0..8 are not covered by any signed tree head: appended "
            "after the last head was signed, or forged"
        ) in found


def test_a_rollback_of_every_log_together_is_caught_only_with_the_auditors_state(
    consortium: Consortium, tmp_path: Path
) -> None:
    """Every party restores yesterday's copy: the logs agree again, and only history tells."""
    backups = {
        name: snapshot(consortium.path(name), tmp_path / f"{name}-old.sqlite")
        for name in consortium.owners
    }
    consortium.query("q-4", witnessed=True)
    state = tmp_path / "state.json"
    outcome = consortium.verify()
    assert outcome.ok, outcome.problems
    save_state(state, outcome.latest_notes)
    without_state = consortium.verify(files=backups)
    assert without_state.ok, without_state.problems  # a consortium as it was: nothing to compare
    found = consortium.verify(load_state(state), files=backups).problems
    removed = [p for p in found if p.endswith("entries were removed")]
    assert [p.split(":")[0] for p in removed] == [
        "gateway log",
        *(f"node {name} log" for name in NODES),
    ]
    assert removed[0] == (
        "gateway log: the log holds 9 entries, fewer than the size 12 of the last head you saw: "
        "entries were removed"
    )


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "header overwritten": lambda b: b"X" * 100 + b[100:],
    "a page of noise": lambda b: b[:8192] + os.urandom(4096) + b[12288:],
    "cut in half": lambda b: b[: len(b) // 2],
    "zeroed": lambda b: bytes(len(b)),
}


@pytest.fixture
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "audit.sqlite"
    origin = log_origin(TRUST_DOMAIN, "gateway", "gateway")
    with SqliteAuditLog(path, origin=origin, signing_key=fixed_key(7), clock=StepClock()) as log:
        fill(log, 300)  # several pages of entries
    path.write_bytes(DAMAGE[request.param](path.read_bytes()))
    return path


@pytest.mark.parametrize("damaged", sorted(DAMAGE), indirect=True)
def test_a_damaged_log_file_is_a_clear_error_for_the_auditor_and_the_service(
    damaged: Path,
) -> None:
    expected = f"the audit log file {damaged} is damaged .*: restore it from a backup"
    with pytest.raises(ConfigurationError, match=expected):
        load_raw(damaged)
    origin = log_origin(TRUST_DOMAIN, "gateway", "gateway")
    with pytest.raises(ConfigurationError, match=expected):
        SqliteAuditLog(damaged, origin=origin, signing_key=fixed_key(7), clock=StepClock())
