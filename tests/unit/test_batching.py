"""Group commit of a lane's queries: who leads, who joins, and how each member ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.evidence import DispatchEvidence, verify_evidence
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import AggregateRequest, Plan
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.errors import GatewayError, IntegrityError, NodeUnavailableError
from mpc_gateway.gateway.batching import Batcher, Member
from mpc_gateway.gateway.record import QueryRecord, Submissions
from mpc_gateway.orders import MAX_BATCH, ExecutionOrder, Party, batch_message, check_batch
from mpc_gateway.proto.v1 import node_pb2
from tests.forged import count_plan

PLAN = count_plan()


def _member(query_id: str) -> Member:
    return Member(query_id, PLAN, 5.0, node_pb2.AuditEvidence(), lambda o, b: None, (), {}, "")


class Nodes:
    """A ``send`` that records each batch; the first waits for ``go``, so others queue."""

    def __init__(self, fits: int = MAX_BATCH, fail: GatewayError | None = None) -> None:
        self.batches: list[list[str]] = []
        self.go = threading.Event()
        self.fits, self.fail = fits, fail

    def send(self, members: Sequence[Member]) -> list[Member]:
        self.batches.append([m.query_id for m in members[: self.fits]])
        if len(self.batches) == 1:
            assert self.go.wait(10)
        for member in members[: self.fits]:
            if self.fail is not None:
                member.fail(self.fail)
            else:
                member.succeed(f"result of {member.query_id}")
        return list(members[self.fits :])


def _submit_all(batcher: Batcher, ids: Sequence[str]) -> dict[str, Any]:
    ended: dict[str, Any] = {}

    def one(query_id: str) -> None:
        try:
            ended[query_id] = batcher.submit(_member(query_id))
        except GatewayError as err:
            ended[query_id] = err

    threads = [threading.Thread(target=one, args=(q,)) for q in ids]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # in this order
    return {"threads": threads, "ended": ended}


def _join(run: dict[str, Any]) -> dict[str, Any]:
    for thread in run["threads"]:
        thread.join(10)
        assert not thread.is_alive(), "a member waits for ever"
    ended: dict[str, Any] = run["ended"]
    return ended


def test_an_idle_lane_sends_each_query_alone_at_once() -> None:
    nodes = Nodes()
    nodes.go.set()
    batcher = Batcher(nodes.send, max_size=8, in_flight=1)
    assert batcher.submit(_member("a")) == "result of a"
    assert batcher.submit(_member("b")) == "result of b"
    assert nodes.batches == [["a"], ["b"]]


def test_queries_queued_behind_a_busy_lane_go_out_together_each_with_its_own_result() -> None:
    nodes = Nodes()
    batcher = Batcher(nodes.send, max_size=3, in_flight=1)
    run = _submit_all(batcher, ["first", "q1", "q2", "q3", "q4"])
    nodes.go.set()
    ended = _join(run)
    assert nodes.batches == [["first"], ["q1", "q2", "q3"], ["q4"]]  # in order, at most 3
    assert ended == {q: f"result of {q}" for q in ["first", "q1", "q2", "q3", "q4"]}


def test_what_does_not_fit_one_message_is_sent_next_by_the_same_leader() -> None:
    nodes = Nodes(fits=2)
    batcher = Batcher(nodes.send, max_size=8, in_flight=1)
    run = _submit_all(batcher, ["first", "q1", "q2", "q3"])
    nodes.go.set()
    ended = _join(run)
    assert nodes.batches == [["first"], ["q1", "q2"], ["q3"]]
    assert ended["q3"] == "result of q3"


def test_a_failed_batch_fails_every_member_with_an_error_naming_its_own_query() -> None:
    nodes = Nodes(fail=NodeUnavailableError("node bank-b is unavailable", query_id="first"))
    batcher = Batcher(nodes.send, max_size=8, in_flight=1)
    run = _submit_all(batcher, ["first", "q1", "q2"])
    nodes.go.set()
    ended = _join(run)
    for query_id, err in ended.items():
        assert isinstance(err, NodeUnavailableError)
        assert err.public_message == "node bank-b is unavailable"
        assert err.query_id == query_id


def test_a_send_that_breaks_fails_its_members_and_none_hangs() -> None:
    def broken(members: Sequence[Member]) -> list[Member]:
        raise RuntimeError("a bug")

    batcher = Batcher(broken, max_size=8, in_flight=1)
    with pytest.raises(GatewayError) as caught:
        batcher.submit(_member("a"))
    assert caught.value.query_id == "a"
    with pytest.raises(GatewayError):
        batcher.submit(_member("b"))


def _orders(sequences: Sequence[int], ids: Sequence[str] | None = None) -> list[ExecutionOrder]:
    parties = tuple(Party(index=i, name=f"n{i}", host="10.0.0.1", port=7000 + i) for i in range(3))
    plan: Plan = PLAN
    return [
        ExecutionOrder(
            query_id=(ids or [f"q{s}" for s in sequences])[i],
            plan=plan,
            plan_hash=plan.plan_hash,
            lane="short",
            epoch=5,
            sequence=s,
            parties=parties,
            issued_at_ms=0,
            deadline_ms=1,
        )
        for i, s in enumerate(sequences)
    ]


def test_a_batch_is_consecutive_orders_of_one_session_each_query_once() -> None:
    check_batch(_orders([4, 5, 6]))
    with pytest.raises(IntegrityError, match="consecutive"):
        check_batch(_orders([4, 6]))  # a gap: the node would run out of the gateway's order
    with pytest.raises(IntegrityError, match="consecutive"):
        check_batch(_orders([5, 4]))
    late = _orders([5])[0].model_copy(update={"epoch": 6})
    with pytest.raises(IntegrityError, match="consecutive"):
        check_batch([*_orders([4]), late])
    with pytest.raises(IntegrityError, match="twice"):
        check_batch(_orders([1, 2], ids=["same", "same"]))
    with pytest.raises(IntegrityError, match="1 to"):
        check_batch(_orders(range(MAX_BATCH + 1)))


def test_the_batch_signature_covers_every_order_and_their_order() -> None:
    a, b = b'{"order":"a"}', b'{"order":"b"}'
    assert batch_message([a, b]) != batch_message([b, a])
    assert batch_message([a, b]) != batch_message([a])
    assert batch_message([a, b]) != batch_message([a, b + b" "])


def test_submissions_written_together_share_one_checkpoint_each_with_its_own_proof() -> None:
    key = Ed25519PrivateKey.generate()
    origin = "mpc.example/gateway/gateway"
    audit = AuditTrail(InMemoryAuditLog(origin=origin, signing_key=key, clock=lambda: 1))
    seal, first = audit.seal, threading.Event()

    def slow_first_seal() -> str:  # the first write takes a while: the others queue behind it
        if not first.is_set():
            first.set()
            time.sleep(0.3)
        return seal()

    audit.seal = slow_first_seal  # type: ignore[method-assign]
    submissions = Submissions(audit, batch_max=8)
    request = AggregateRequest(dataset="loans", aggregates=(parse_aggregate("count"),))
    proofs: dict[str, DispatchEvidence] = {}

    def submit(query_id: str) -> None:
        record = QueryRecord(audit, query_id, "loans", "analyst/alice")
        proofs[query_id] = submissions.submit(record, PLAN, request, "", [])

    threads = [threading.Thread(target=submit, args=(f"q{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(10)
    assert len({proofs[f"q{i}"].checkpoint for i in range(1, 5)}) == 1  # one head for four
    assert proofs["q0"].checkpoint != proofs["q1"].checkpoint
    assert len(audit.log.tree_heads()) == 2
    for query_id, proof in proofs.items():  # what each node checks, query by query
        verify_evidence(proof, query_id, PLAN.plan_hash, key.public_key(), origin)
