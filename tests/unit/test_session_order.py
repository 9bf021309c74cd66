"""A node's MPC session order: aborts that name no session, refused turns, who is to blame."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mpc_gateway.errors import (
    DeadlineExceededError,
    InvalidQueryError,
    NoAnswerError,
    ProtocolAbortedError,
)
from mpc_gateway.gateway.blame import root_cause
from mpc_gateway.node.session import SessionSequencer, WorkerProcess


class _Worker:
    """Stands in for the MPC worker process: answers every job at once."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self.killed = False

    def wait_ready(self, deadline: float) -> None:
        pass

    def run(
        self, program: str, args: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any], float]:
        self.jobs.append(program)
        return {"out": [1]}, 1.0

    def kill(self) -> None:
        self.killed = True


def _sequencer() -> tuple[SessionSequencer, list[_Worker]]:
    spawned: list[_Worker] = []

    def spawn(epoch: int, parties: Any) -> WorkerProcess:
        spawned.append(_Worker())
        return spawned[-1]  # type: ignore[return-value]  # a stand-in with the same methods

    return SessionSequencer(spawn), spawned


def _soon() -> float:
    return time.monotonic() + 2.0


def test_an_abort_for_an_epoch_no_node_has_entered_locks_nothing_out() -> None:
    sequencer, _ = _sequencer()
    epoch = int(time.time() * 1000)
    sequencer.run(epoch, 0, ("a", "b"), "count", {}, _soon())
    assert sequencer.abort(2**63 - 1, "forged") is False
    # the session it names never existed: the current one, and the next epoch, still run
    sequencer.run(epoch, 1, ("a", "b"), "count", {}, _soon())
    sequencer.run(epoch + 1, 0, ("a", "b"), "count", {}, _soon())
    # only the epoch it named is refused, should an order for it ever come
    with pytest.raises(ProtocolAbortedError, match="forged"):
        sequencer.run(2**63 - 1, 0, ("a", "b"), "count", {}, _soon())


def test_an_abort_for_a_past_epoch_does_not_touch_the_current_session() -> None:
    sequencer, spawned = _sequencer()
    sequencer.run(10, 0, ("a",), "count", {}, _soon())
    sequencer.run(11, 0, ("a",), "count", {}, _soon())
    assert sequencer.abort(10, "old news") is False
    sequencer.run(11, 1, ("a",), "count", {}, _soon())
    assert not spawned[-1].killed


def test_an_abort_for_the_current_epoch_tears_it_down() -> None:
    sequencer, spawned = _sequencer()
    sequencer.run(10, 0, ("a",), "count", {}, _soon())
    assert sequencer.abort(10, "peer failed") is True
    assert spawned[-1].killed
    with pytest.raises(ProtocolAbortedError, match="peer failed"):
        sequencer.run(10, 1, ("a",), "count", {}, _soon())


def test_a_refused_order_passes_its_turn_and_the_session_goes_on() -> None:
    sequencer, spawned = _sequencer()
    sequencer.run(10, 0, ("a",), "count", {}, _soon())
    assert sequencer.skip(10, 1, ("a",), _soon()) is True
    sequencer.run(10, 2, ("a",), "count", {}, _soon())  # does not wait for sequence 1
    assert len(spawned) == 1 and not spawned[0].killed


def test_the_node_that_never_answered_is_blamed_not_the_ones_that_waited_for_it() -> None:
    failures = [
        DeadlineExceededError("node bank-b: MPC session: the MPC step did not finish in time"),
        DeadlineExceededError("node bank-a: MPC session: the MPC step did not finish in time"),
        NoAnswerError("node broker-c did not answer before the deadline"),
    ]
    cause = root_cause(failures)
    assert isinstance(cause, NoAnswerError)
    assert cause.public_message.startswith("node broker-c did not answer")
    assert "bank-b" not in cause.public_message
    assert "2 other node(s) timed out waiting for it" in cause.public_message


def test_without_a_silent_node_the_first_real_failure_is_the_cause() -> None:
    refused = InvalidQueryError("node bank-a: bad plan")
    assert root_cause([ProtocolAbortedError("torn down"), refused]) is refused
