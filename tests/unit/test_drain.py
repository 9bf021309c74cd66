"""The drain gate: new work refused once closed, work under way counted until it ends."""

from __future__ import annotations

import threading

import pytest

from mpc_gateway.errors import ShuttingDownError
from mpc_gateway.rpc.drain import Gate


def test_a_closed_gate_refuses_new_calls_with_unavailable_and_says_who() -> None:
    gate = Gate("node bank-a", always=("AbortSession",))
    with gate.admit("Execute"):
        pass
    gate.close()
    with pytest.raises(ShuttingDownError, match="node bank-a is shutting down") as caught:
        with gate.admit("Execute"):
            pytest.fail("a closed gate ran a new call")
    assert caught.value.status == "UNAVAILABLE"
    with gate.admit("AbortSession"):  # ends work, so it is let in while draining
        assert gate.busy == 1
    assert gate.busy == 0


def test_work_under_way_is_waited_for_and_a_timeout_says_it_is_not_done() -> None:
    gate = Gate("the gateway")
    release = threading.Event()
    entered = threading.Event()

    def call() -> None:
        with gate.admit():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=call)
    thread.start()
    assert entered.wait(10)
    gate.close()
    assert gate.wait_idle(0.05) is False and gate.busy == 1
    release.set()
    assert gate.wait_idle(10) is True
    thread.join()


def test_held_work_counts_from_before_its_thread_runs() -> None:
    gate = Gate("the gateway")
    gate.close()
    ran = threading.Event()
    work = gate.holding(ran.set)  # accepted before the drain: counted, not refused
    assert gate.busy == 1 and not gate.wait_idle(0)
    threading.Thread(target=work).start()
    assert gate.wait_idle(10) and ran.is_set()
    with gate.hold():
        assert gate.busy == 1
