"""Lanes: each runs its own jobs in its own order, and one lane's failure leaves the other alone.

A node's :class:`LaneSessions` with stand-in workers (no MPC), and the gateway's
:class:`LaneSequence`: sequence numbers, epochs and deadlines per lane.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.errors import IntegrityError, ProtocolAbortedError
from mpc_gateway.gateway.lanes import LaneSequence
from mpc_gateway.lanes import LANES, NICENESS, Lane
from mpc_gateway.node.lanes import LaneSessions
from mpc_gateway.node.session import WorkerProcess
from mpc_gateway.orders import ExecutionOrder, Party
from tests.forged import count_plan

PORTS: dict[Lane, int] = {"short": 7001, "long": 7101}
EPOCH = 1_750_000_000_000


class _Worker:
    """Stands in for a lane's MPC worker: records its jobs; a "hold" job waits to be let go."""

    def __init__(self, lane: Lane, done: list[tuple[Lane, str]]) -> None:
        self.lane, self.done = lane, done
        self.let_go = threading.Event()
        self.killed = False

    def wait_ready(self, deadline: float) -> None:
        pass

    def run(
        self, program: str, args: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any], float]:
        if program == "hold" and not self.let_go.wait(max(0.0, deadline - time.monotonic())):
            raise ProtocolAbortedError("held past its deadline")
        if self.killed:
            raise ProtocolAbortedError("MPC session ended unexpectedly")
        self.done.append((self.lane, args["name"]))
        return {"out": [1]}, 1.0

    def kill(self) -> None:
        self.killed = True
        self.let_go.set()


class _Node:
    def __init__(self) -> None:
        self.done: list[tuple[Lane, str]] = []
        self.workers: dict[Lane, list[_Worker]] = {lane: [] for lane in LANES}
        self.sessions = LaneSessions("bank-a", 0, PORTS.__getitem__, self._spawn)

    def _spawn(self, lane: Lane, epoch: int, parties: tuple[Party, ...]) -> WorkerProcess:
        self.workers[lane].append(_Worker(lane, self.done))
        return self.workers[lane][-1]  # type: ignore[return-value]  # same methods

    def run(self, order: ExecutionOrder, name: str, program: str = "count") -> None:
        self.sessions.run(order, program, {"name": name}, time.monotonic() + 5)


def _parties(lane: Lane) -> tuple[Party, ...]:
    port = PORTS[lane]
    return tuple(
        Party(index=i, name=n, host="127.0.0.1", port=port + i)
        for i, n in enumerate(("bank-a", "bank-b", "broker-c"))
    )


def _order(lane: Lane, sequence: int, epoch: int = EPOCH) -> ExecutionOrder:
    plan = count_plan()
    now = int(time.time() * 1000)
    return ExecutionOrder(
        query_id=f"{lane}-{sequence}",
        plan=plan,
        plan_hash=plan.plan_hash,
        lane=lane,
        epoch=epoch,
        sequence=sequence,
        parties=_parties(lane),
        issued_at_ms=now,
        deadline_ms=now + 5000,
    )


def _in_thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _wait_for(condition: Any) -> None:
    until = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < until, "timed out"
        time.sleep(0.01)


def test_each_lane_runs_its_jobs_in_its_own_sequence_order() -> None:
    node = _Node()
    # arriving out of order in both lanes: each lane waits for its own sequence number 0
    late = [_in_thread(node.run, _order(lane, 1), f"{lane}-1") for lane in LANES]
    time.sleep(0.1)
    assert node.done == []
    for lane in LANES:
        node.run(_order(lane, 0), f"{lane}-0")
    for thread in late:
        thread.join(5)
    for lane in LANES:
        assert [name for ran, name in node.done if ran == lane] == [f"{lane}-0", f"{lane}-1"]
    assert len(node.workers["short"]) == len(node.workers["long"]) == 1  # a session each


def test_a_long_job_running_does_not_hold_up_the_short_lane() -> None:
    node = _Node()
    long_job = _in_thread(node.run, _order("long", 0), "long-0", "hold")
    _wait_for(lambda: node.workers["long"])
    for sequence in range(3):
        node.run(_order("short", sequence), f"short-{sequence}")
    assert node.done == [("short", "short-0"), ("short", "short-1"), ("short", "short-2")]
    node.workers["long"][0].let_go.set()
    long_job.join(5)
    assert node.done[-1] == ("long", "long-0")  # completed after the short queries


def test_aborting_the_long_lane_leaves_the_short_lanes_session_running() -> None:
    node = _Node()
    failed: list[BaseException] = []

    def long_job() -> None:
        try:
            node.run(_order("long", 0), "long-0", "hold")
        except ProtocolAbortedError as err:
            failed.append(err)

    thread = _in_thread(long_job)
    node.run(_order("short", 0), "short-0")
    _wait_for(lambda: node.workers["long"])
    assert node.sessions.abort("long", EPOCH, "a long-lane worker died") is True
    thread.join(5)
    assert len(failed) == 1 and node.workers["long"][0].killed
    node.run(_order("short", 1), "short-1")  # the same short session goes on
    assert not node.workers["short"][0].killed and len(node.workers["short"]) == 1
    node.run(_order("long", 0, epoch=EPOCH + 1), "long-again")  # the long lane's next epoch
    assert len(node.workers["long"]) == 2 and node.done[-1] == ("long", "long-again")


def test_an_abort_names_one_lane_only() -> None:
    node = _Node()
    node.run(_order("short", 0), "short-0")
    assert node.sessions.abort("long", EPOCH, "forged") is False  # the long lane never entered it
    node.run(_order("short", 1), "short-1")
    assert node.done == [("short", "short-0"), ("short", "short-1")]


def test_a_lanes_order_must_place_this_node_at_that_lanes_port() -> None:
    node = _Node()
    node.sessions.check_placement("long", _parties("long"))
    with pytest.raises(IntegrityError, match="long lane's port 7101"):
        node.sessions.check_placement("long", _parties("short"))
    with pytest.raises(IntegrityError, match="short lane's port 7001"):
        node.sessions.check_placement("short", _parties("long"))


def test_the_gateway_numbers_each_lane_on_its_own() -> None:
    lanes = {lane: LaneSequence(lane, _parties(lane)) for lane in LANES}
    plan = count_plan()
    long_job = lanes["long"].order("q-long", plan, 600.0, (), {}, "")
    shorts = [lanes["short"].order(f"q-{i}", plan, 2.0, (), {}, "") for i in range(2)]
    assert [o.sequence for o in shorts] == [0, 1] and long_job.sequence == 0
    assert {o.lane for o in shorts} == {"short"} and long_job.lane == "long"
    assert shorts[0].parties[0].port == PORTS["short"]
    assert long_job.parties[0].port == PORTS["long"]
    # a short query's deadline counts from the short lane's orders ahead, never the long job's
    assert shorts[0].deadline_ms - shorts[0].issued_at_ms == 2000
    assert shorts[1].deadline_ms <= shorts[0].deadline_ms + 2000 < long_job.deadline_ms


def test_turning_one_lanes_epoch_over_leaves_the_other_as_it_is() -> None:
    lanes = {lane: LaneSequence(lane, _parties(lane)) for lane in LANES}
    plan = count_plan()
    lanes["short"].order("q-0", plan, 2.0, (), {}, "")
    short_epoch, long_epoch = lanes["short"].epoch, lanes["long"].epoch
    assert lanes["long"].turn_over(long_epoch) is True
    assert lanes["long"].epoch > long_epoch and lanes["long"].next == 0
    assert (lanes["short"].epoch, lanes["short"].next) == (short_epoch, 1)
    assert lanes["long"].turn_over(long_epoch) is False  # not the current epoch any more


_PRIORITY = """
import os, sys
if sys.argv[1] == "refused":
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")
    os.sched_setscheduler = refuse
from mpc_gateway.lanes import lower_priority
base = os.nice(0)
unset = lower_priority(sys.argv[2])
print(unset, os.sched_getscheduler(0) == os.SCHED_IDLE, os.nice(0) - base)
"""


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
@pytest.mark.parametrize(
    ("how", "lane", "printed"),
    [
        ("real", "long", f"None True {NICENESS['long']}"),
        ("real", "short", "None False 0"),
        (
            "refused",
            "long",
            f"SCHED_IDLE refused: [Errno 1] Operation not permitted False {NICENESS['long']}",
        ),
    ],
)
def test_a_long_lanes_worker_runs_idle_and_niced_and_niced_only_where_idle_is_refused(
    how: str, lane: str, printed: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PRIORITY, how, lane],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.stdout.strip() == printed
