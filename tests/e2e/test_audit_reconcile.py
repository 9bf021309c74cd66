"""An auditor against an operator who cuts logs: an erased tail and rolled-back witness logs.

Real gateway and node processes; the attacker edits the SQLite files directly (no key needed)
and restarts the processes on the edited files, as an operator with shell access could.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.cli.app import app
from mpc_gateway.client import HealthClient, tls_from_pki
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.errors import GatewayError, StorageUnavailableError
from tests.audit.helpers import damage_wal_frame
from tests.audit.witnesses import entry_count, erase_tail, snapshot
from tests.e2e.conftest import client_for, start_consortium
from tests.e2e.test_audit import Outcome, runner

pytestmark = pytest.mark.e2e


@pytest.fixture()
def consortium(tmp_path: Path) -> Iterator[LocalConsortium]:
    """A consortium of its own: these tests cut its logs for good."""
    running = start_consortium(tmp_path / "consortium")
    try:
        yield running
    finally:
        running.stop()


def verify_args(consortium: LocalConsortium, state: Path, *options: str) -> list[str]:
    files = consortium.files
    nodes = [f"--node={name}={address}" for name, address in files.node_addresses.items()]
    common = ["--pki", str(files.pki_dir), "--identity", "auditor/audrey", "--state", str(state)]
    return ["audit", "verify", "--gateway", files.gateway_address, *nodes, *common, *options]


def verify(consortium: LocalConsortium, state: Path, *options: str) -> Outcome:
    return Outcome(verify_args(consortium, state, *options))


def run_query(consortium: LocalConsortium) -> str:
    with client_for(consortium, timeout_s=120.0) as alice:
        return alice.query("loans", ["count"], group_by="sector").query_id


def gateway_db(consortium: LocalConsortium) -> Path:
    return consortium.files.root / "audit.sqlite"


def node_db(consortium: LocalConsortium, name: str) -> Path:
    return consortium.files.root / "nodes" / name / "audit.sqlite"


def first_entry_of(db: Path, kind: str, query_id: str) -> int:
    with closing(sqlite3.connect(db)) as con:
        for idx, data in con.execute("SELECT idx, data FROM entries ORDER BY idx"):
            event = AuditEvent.from_entry(bytes(data))
            if (event.kind, event.query_id) == (kind, query_id):
                return int(idx)
    raise AssertionError(f"no {kind} entry for {query_id} in {db}")


def restart(consortium: LocalConsortium, name: str, replace_log: Path | None = None) -> None:
    """Kill a process (if running), optionally put another file in place of its audit log,
    and start it again."""
    if name in consortium.processes:
        consortium.kill(name)
    db = gateway_db(consortium) if name == "gateway" else node_db(consortium, name)
    if replace_log is not None:
        snapshot(replace_log, db)
    if name == "gateway":
        consortium.start_gateway()
    else:
        consortium.start_node(name)
    consortium.wait_healthy(timeout_s=120.0, names=[name])


def halted_on_start(consortium: LocalConsortium) -> str:
    """Start the gateway on its edited file; why it halted its log (health NOT_SERVING)."""
    consortium.start_gateway()
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        assert consortium.processes["gateway"].poll() is None, "the gateway exited"
        text = consortium.log_path("gateway").read_text(errors="replace")
        lines = [line for line in text.splitlines() if line.endswith(HALTED)]
        if lines:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(
            f"the gateway did not halt its log; see {consortium.log_path('gateway')}"
        )
    tls = tls_from_pki(consortium.files.pki_dir, "auditor/audrey")
    with HealthClient(consortium.files.gateway_address, tls, timeout_s=5.0) as probe:
        assert probe.status() == "NOT_SERVING"
    assert len(lines) == 1, lines  # the reason the log keeps, once: other reports say "already"
    return lines[0][lines[0].index("the audit log") :]


HALTED = "no query is taken until the newest copy of the log file is restored"


def missing_outcome(name: str, query_id: str) -> str:
    return f"✗ node {name} completed query {query_id} (short lane, epoch"


def test_a_tail_erased_from_the_gateways_log_is_caught_before_and_after_a_restart(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    run_query(consortium)
    cut_query = run_query(consortium)
    assert verify(consortium, tmp_path / "honest.json").exit_code == 0
    consortium.kill("gateway")  # the operator stops the gateway and edits its file
    erase_tail(
        gateway_db(consortium),
        first_entry_of(gateway_db(consortium), "query.dispatched", cut_query),
    )

    cut = verify(consortium, tmp_path / "first.json", "--db", str(gateway_db(consortium)))
    assert cut.exit_code == 3, cut.output
    for name in consortium.files.nodes:
        assert missing_outcome(name, cut_query) in cut.output, cut.output
        assert "but the gateway's log has no outcome for it" in cut.output
    assert "✗ gateway log" not in cut.output  # the cut log is valid on its own

    # restarted on the cut file, the gateway hears from the nodes, as its sessions open, which
    # checkpoints they cosigned: its log no longer holds them, so it takes no query at all
    # (every node would refuse to witness a release in a log that does not extend them) ...
    problem = halted_on_start(consortium)
    assert "but node" in problem or "entries are not those node" in problem, problem
    with pytest.raises(StorageUnavailableError) as refused:
        run_query(consortium)
    assert refused.value.public_message.endswith(f": {problem}")
    # ... and the heads the nodes recorded, and the releases they cosigned, do not endorse it
    # (read from the file: a halted log cannot record an auditor reading it either)
    on_file = ("--db", str(gateway_db(consortium)))
    endorsed = verify(consortium, tmp_path / "second.json", *on_file)
    assert endorsed.exit_code == 3, endorsed.output
    for name in consortium.files.nodes:
        assert f"✗ node {name} cosigned the release of query {cut_query}" in endorsed.output
        assert f"split view: node '{name}' holds a head" in endorsed.output
    as_json = runner.invoke(
        app, verify_args(consortium, tmp_path / "third.json", "--json", *on_file)
    )
    report = json.loads(as_json.stdout)  # the JSON alone on stdout; the error line on stderr
    assert as_json.exit_code == 3 and report["ok"] is False
    cosigned = [p for p in report["problems"] if f"cosigned the release of query {cut_query}" in p]
    assert {p.split()[1] for p in cosigned} == set(consortium.files.nodes), report["problems"]
    assert all(p.endswith("but the gateway's log has no release of it") for p in cosigned)


def test_a_witness_log_restored_from_an_older_copy_or_emptied_is_caught(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    run_query(consortium)
    older = tmp_path / "bank-a-older.sqlite"
    snapshot(node_db(consortium, "bank-a"), older)
    older_size = entry_count(older)
    run_query(consortium)
    run_query(consortium)
    honest = verify(consortium, state)
    assert honest.exit_code == 0, honest.output
    kept = json.loads(state.read_text())
    bank_a = next(v for origin, v in kept.items() if "/node/bank-a/" in origin)
    assert bank_a["size"] > older_size

    restart(consortium, "bank-a", replace_log=older)
    rolled_back = verify(consortium, state)
    assert rolled_back.exit_code == 3, rolled_back.output
    assert (
        f"✗ node bank-a log: the log holds {older_size} entries, fewer than the size "
        f"{bank_a['size']} of the last head you saw: entries were removed"
    ) in rolled_back.output
    assert json.loads(state.read_text()) == kept  # a failed verification moves nothing
    # the gateway shows bank-a its own cosignature on a checkpoint its log no longer holds
    assert_lost_and_halted(consortium, "bank-a")

    empty = tmp_path / "bank-a-empty.sqlite"
    erase_tail(snapshot(older, empty), 0)
    assert entry_count(empty) == 0
    restart(consortium, "bank-a", replace_log=empty)
    emptied = verify(consortium, state)
    assert emptied.exit_code == 3, emptied.output
    assert (
        f"✗ node bank-a log: the log holds 0 entries, fewer than the size {bank_a['size']} of "
        "the last head you saw: entries were removed"
    ) in emptied.output
    # restarted, the gateway shows each node, as a session opens, what it kept in its log's
    # heads: bank-a halts before any query (the gateway stays NOT_SERVING without it)
    consortium.kill("gateway")
    consortium.start_gateway()
    assert gateway_status(consortium) == "NOT_SERVING"
    assert_lost_and_halted(consortium, "bank-a")


def gateway_status(consortium: LocalConsortium) -> str:
    """The gateway's health once it answers at all."""
    tls = tls_from_pki(consortium.files.pki_dir, "auditor/audrey")
    deadline = time.monotonic() + 60.0
    with HealthClient(consortium.files.gateway_address, tls, timeout_s=1.0) as probe:
        while True:
            try:
                return probe.status()
            except GatewayError:
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.2)


def assert_lost_and_halted(consortium: LocalConsortium, node: str) -> None:
    """A query fails: ``node``'s witness log lost releases; the node halted (NOT_SERVING)."""
    with pytest.raises(StorageUnavailableError) as refused:
        run_query(consortium)
    lost = f"node {node}'s witness log lost releases it recorded: the gateway shows this node's own"
    assert lost in refused.value.public_message, refused.value.public_message
    tls = tls_from_pki(consortium.files.pki_dir, "auditor/audrey")
    with HealthClient(consortium.files.node_addresses[node], tls, timeout_s=5.0) as probe:
        assert probe.status() == "NOT_SERVING"


def test_a_write_ahead_log_damaged_in_a_crash_halts_the_gateway_instead_of_failing_releases(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    released = [run_query(consortium) for _ in range(3)]
    consortium.kill("gateway")  # a crash: the newest entries are still in the write-ahead log
    damage_wal_frame(Path(f"{gateway_db(consortium)}-wal"))
    copy = snapshot(gateway_db(consortium), tmp_path / "as-sqlite-reads-it.sqlite")
    with pytest.raises(AssertionError, match="no result.released entry"):  # silently gone
        first_entry_of(copy, "result.released", released[-1])

    problem = halted_on_start(consortium)
    assert "(a restored older copy, a damaged write-ahead log or an edit)" in problem
    with pytest.raises(StorageUnavailableError) as refused:
        run_query(consortium)
    assert refused.value.public_message.endswith(f": {problem}")
    for name in consortium.files.nodes:  # no node was asked to compute anything more
        with closing(sqlite3.connect(node_db(consortium, name))) as db:
            orders = [
                json.loads(d)["query_id"]
                for (d,) in db.execute("SELECT data FROM entries")
                if json.loads(d)["kind"] == "order.received"
            ]
        assert orders[-1] == released[-1], (name, orders)
