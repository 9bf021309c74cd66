"""Lanes on a real consortium: short queries run while a long job does, and outlive its failure.

The consortium gives aggregate queries a short deadline (2 s) and risk jobs the
default (600 s); the scoring job here takes several seconds. Each lane is its own
MPC session (its own worker at every node, on its own MPC port): the aggregates
complete while the job is still running, in the short lane's own order, and a
long-lane worker killed mid-job tears down the long lane only. What is asserted
is the order of events in the nodes' witness logs and the gateway's audit log,
not timings.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.client import GatewayClient, Released
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.devnet.risk_demo import long_job_keys, long_job_model
from mpc_gateway.errors import GatewayError
from mpc_gateway.lanes import IDLE, NICENESS
from mpc_gateway.settings import NodeSettings, load_settings
from tests.e2e.conftest import ROWS, client_for

pytestmark = pytest.mark.e2e

ROWS_ALL = 3 * ROWS  # every node's rows
KEYS = long_job_keys(1500)  # ~3 s alone, longer beside short queries: they fit inside it


def _entries(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as log:
        return [json.loads(r[0]) for r in log.execute("SELECT data FROM entries ORDER BY idx")]


def _witnessed(consortium: LocalConsortium, node: str) -> list[dict[str, Any]]:
    return _entries(consortium.files.node_config(node).parent / "audit.sqlite")


def _wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    until = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < until, "timed out waiting"
        time.sleep(0.05)


def _wait_for_long_order(consortium: LocalConsortium, node: str, after: int) -> None:
    """Until ``node``'s witness log holds a long-lane order received after entry ``after``."""
    _wait_for(
        lambda: any(
            e["kind"] == "order.received" and e["details"].get("lane") == "long"
            for e in _witnessed(consortium, node)[after:]
        )
    )


def _score_in_background(client: GatewayClient, model_id: str, keys: list[str]) -> Any:
    outcome: dict[str, object] = {}

    def score() -> None:
        try:
            outcome["risk"] = client.score("loans", model_id, keys)
        except GatewayError as err:
            outcome["risk"] = err

    worker = threading.Thread(target=score)
    worker.start()
    return worker, outcome


@pytest.fixture(scope="module")
def lanes(short_deadlines: LocalConsortium) -> LocalConsortium:
    return short_deadlines


def _analysts(consortium: LocalConsortium) -> tuple[GatewayClient, GatewayClient]:
    """alice scores, bob queries: two analysts, as two institutions' risk teams would be."""
    alice, bob = (client_for(consortium, f"analyst/{n}", timeout_s=300) for n in ("alice", "bob"))
    return alice, bob


def test_short_queries_complete_while_a_long_job_runs(lanes: LocalConsortium) -> None:
    alice, bob = _analysts(lanes)
    with alice, bob:
        model_id = alice.register_model(long_job_model("analyst/alice"))
        started = len(_witnessed(lanes, "bank-a"))
        worker, outcome = _score_in_background(alice, model_id, KEYS)
        _wait_for_long_order(lanes, "bank-a", started)
        counted = [bob.query("loans", ["count"]) for _ in range(3)]
        running = worker.is_alive()
        priority = _priority_of_workers(lanes, "bank-b")
        worker.join(timeout=300)
    risk = outcome.get("risk")
    assert isinstance(risk, Released), risk
    assert risk.lane == "long" and risk.outcome.count is not None
    assert 0 <= risk.outcome.count <= len(KEYS)
    assert all(c.outcome.rows[0][1][0] == ROWS_ALL for c in counted)  # correct, every node's rows
    assert {c.lane for c in counted} == {"short"}
    assert [c.sequence for c in counted] == [counted[0].sequence + i for i in range(3)]
    assert running, "the short queries waited for the long job"
    # the long job's worker yields the CPU to the short lane's, at once where Linux lets it
    idle = {lane: os.SCHED_IDLE if on else os.SCHED_OTHER for lane, on in IDLE.items()}
    assert priority == {lane: (NICENESS[lane], idle[lane]) for lane in NICENESS}
    for node in lanes.files.nodes:  # each node completed the short queries before the long job
        completed = [
            e["query_id"] for e in _witnessed(lanes, node) if e["kind"] == "order.completed"
        ]
        assert completed.index(risk.query_id) > max(completed.index(c.query_id) for c in counted)


def _inodes_at(port: int) -> set[str]:
    """Sockets whose local port is ``port``: the MPC connections peers made to it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue  # not a process, or one that just ended
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _worker_at(node_pid: int, port: int) -> int:
    """The node's MPC worker process connected at its ``port`` (one lane's session)."""
    inodes = _inodes_at(port)
    for child in _children(node_pid):
        try:
            links = {os.readlink(f) for f in Path(f"/proc/{child}/fd").iterdir()}
        except OSError:
            continue
        if {f"socket:[{i}]" for i in inodes} & links:
            return child
    raise AssertionError(f"no worker of node {node_pid} is connected at port {port}")


def _priority_of_workers(consortium: LocalConsortium, node: str) -> dict[str, tuple[int, int]]:
    """The CPU niceness (over the node's) and scheduling policy of ``node``'s worker per lane."""
    settings = load_settings(NodeSettings, consortium.files.node_config(node))
    ports = {"short": settings.mpc_port, "long": settings.mpc_long_port}
    pid = consortium.processes[node].pid
    workers = {lane: _worker_at(pid, port) for lane, port in ports.items()}
    return {
        lane: (
            os.getpriority(os.PRIO_PROCESS, worker) - os.getpriority(os.PRIO_PROCESS, pid),
            os.sched_getscheduler(worker),
        )
        for lane, worker in workers.items()
    }


def _short_queries_until(client: GatewayClient, done: threading.Event, seen: list[Any]) -> None:
    while not done.is_set():
        try:
            seen.append(client.query("loans", ["count"]))
        except GatewayError as err:
            seen.append(err)


def test_a_long_lane_failure_leaves_short_queries_running_and_the_lane_reopens(
    lanes: LocalConsortium,
) -> None:
    victim = "bank-b"  # party 1: party 0 connects to it at its MPC ports
    long_port = load_settings(NodeSettings, lanes.files.node_config(victim)).mpc_long_port
    alice, bob = _analysts(lanes)
    with alice, bob:
        model_id = alice.register_model(long_job_model("analyst/alice"))
        started = len(_witnessed(lanes, victim))
        worker, outcome = _score_in_background(alice, model_id, KEYS)
        _wait_for_long_order(lanes, victim, started)
        done, seen = threading.Event(), []
        shorts = threading.Thread(target=_short_queries_until, args=(bob, done, seen))
        shorts.start()
        _wait_for(lambda: len(seen) >= 2)  # short queries run alongside the job
        os.kill(_worker_at(lanes.processes[victim].pid, long_port), signal.SIGKILL)
        before_kill = len(seen)
        _wait_for(lambda: len(seen) >= before_kill + 2)  # and go on after the failure
        done.set()  # the job's second run has the CPU to itself (its workers yield to these)
        shorts.join(timeout=60)
        worker.join(timeout=300)
        again = alice.score("loans", model_id, KEYS[:50])  # the long lane works again
    assert seen and all(isinstance(s, Released) for s in seen), [
        s for s in seen if not isinstance(s, Released)
    ]
    assert all(s.outcome.rows[0][1][0] == ROWS_ALL for s in seen)
    risk = outcome["risk"]
    # every node answered ABORTED, so the gateway ran the job once more in the reopened lane
    assert isinstance(risk, Released), risk
    dispatches = [
        e["details"]
        for e in _entries(lanes.files.root / "audit.sqlite")
        if e["kind"] == "query.dispatched" and e["query_id"] == risk.query_id
    ]
    assert [d["lane"] for d in dispatches] == ["long", "long"]
    assert dispatches[0]["epoch"] < dispatches[1]["epoch"]  # a new long-lane session
    assert again.lane == "long" and again.outcome.count is not None
    # the short lane's session was never torn down: its queries all ran in one epoch
    short_ids = {s.query_id for s in seen}
    epochs = {
        e["details"]["epoch"]
        for e in _witnessed(lanes, victim)
        if e["kind"] == "order.completed" and e["query_id"] in short_ids
    }
    assert len(epochs) == 1
