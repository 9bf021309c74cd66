"""The real dispatcher batches a busy lane's queries, and each member ends on its own.

Three stand-in nodes, one per party, served on port 0: each checks the batch
signature with the gateway's certified key and answers every order with a share
that recombines to a value of that order's own query, so a result handed to the
wrong member shows. The first order waits until the test lets it go, so the
queries sent meanwhile queue behind it and leave as one batch.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest

from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.errors import DeadlineExceededError, GatewayError, PolicyDeniedError
from mpc_gateway.gateway.dispatch import Dispatcher
from mpc_gateway.orders import ExecutionOrder, SessionOrder, batch_message
from mpc_gateway.pki import Identity, load_ca, load_layout, load_verified_signing_cert, verify
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from tests.forged import count_plan, forge
from tests.rpc.conftest import dispatcher_to

MODULUS = 2**61 - 1
PLAN = count_plan()


def value_of(query_id: str) -> int:
    return zlib.crc32(query_id.encode())


class Script:
    """What every stand-in shares: the batches seen, the first order's gate, failures."""

    def __init__(self, files: ConsortiumFiles) -> None:
        layout = load_layout(files.pki_dir)
        gateway = Identity("gateway", "gateway", layout.trust_domain)
        certificate = layout.signing_paths(gateway)[0].read_bytes()
        self.key = load_verified_signing_cert(certificate, load_ca(layout.ca_cert), gateway)
        self.go = threading.Event()
        self.batches: list[list[ExecutionOrder]] = []  # as party 0 received them
        self.aborts: list[tuple[str, int]] = []
        self.opened: list[tuple[str, int]] = []  # sessions opened, as party 0 saw them
        self.fail: dict[int, Any] = {}  # party -> what it raises for a batch, given its orders
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def wait_until(self, done: Any, timeout_s: float = 10.0) -> bool:
        """Whether ``done()`` held within ``timeout_s`` (aborts and reopenings are not awaited)."""
        with self.changed:
            return self.changed.wait_for(done, timeout_s)


class PartyNode(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, index: int, script: Script) -> None:
        self.index, self.script = index, script

    def _shares(self, order: ExecutionOrder) -> node_pb2.ResultShares:
        block = node_pb2.ShareBlock(
            name="value", modulus=str(MODULUS), values=[str(value_of(order.query_id))]
        )  # every party the same share: it recombines to the value itself
        return node_pb2.ResultShares(
            node=order.parties[self.index].name, party_index=self.index, blocks=[block]
        )

    def Execute(self, request: Any, context: grpc.ServicerContext) -> Any:
        order = ExecutionOrder.from_bytes(request.order)
        verify(self.script.key, request.signature, request.order, what="execution order")
        assert self.script.go.wait(10)
        return self._shares(order)

    def ExecuteBatch(self, request: Any, context: grpc.ServicerContext) -> Any:
        verify(self.script.key, request.signature, batch_message(request.orders), what="batch")
        orders = [ExecutionOrder.from_bytes(data) for data in request.orders]
        assert len(request.evidence) == len(orders)
        if self.index == 0:
            with self.script.lock:
                self.script.batches.append(orders)
        failure = self.script.fail.get(self.index)
        if failure is not None and failure(orders) is not None:
            raise failure(orders)
        return node_pb2.BatchShares(results=[self._shares(o) for o in orders])

    def AbortSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.index == 0:
            with self.script.changed:
                self.script.aborts.append((request.lane, request.epoch))
                self.script.changed.notify_all()
        return node_pb2.AbortReply()

    def OpenSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        order = SessionOrder.from_bytes(request.order)
        if self.index == 0:
            with self.script.changed:
                self.script.opened.append((order.lane, order.epoch))
                self.script.changed.notify_all()
        return node_pb2.SessionReply(epoch=order.epoch, lane=order.lane)


@pytest.fixture()
def batching(files: ConsortiumFiles) -> Iterator[tuple[Dispatcher, Script]]:
    script = Script(files)
    nodes = [PartyNode(i, script) for i in range(len(files.nodes))]
    with dispatcher_to(files, nodes, batch_max=8, batches_in_flight=1) as dispatcher:
        yield dispatcher, script


def _run_all(
    dispatcher: Dispatcher, files: ConsortiumFiles, script: Script, ids: Sequence[str]
) -> dict[str, Any]:
    """``ids[0]`` first, alone; the others while it waits; then let everything go."""
    evidence = forge(files, PLAN).evidence
    ended: dict[str, Any] = {}

    def one(query_id: str) -> None:
        try:
            ended[query_id] = dispatcher.run(query_id, PLAN, 5.0, evidence)
        except GatewayError as err:
            ended[query_id] = err

    threads = [threading.Thread(target=one, args=(q,)) for q in ids]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # queued in this order
    script.go.set()
    for thread in threads:
        thread.join(15)
        assert not thread.is_alive(), "a member of a batch never ended"
    return ended


def test_queries_queued_together_go_as_one_batch_and_each_gets_its_own_result(
    batching: tuple[Dispatcher, Script], files: ConsortiumFiles
) -> None:
    dispatcher, script = batching
    ids = ["first", *(f"q{i}" for i in range(6))]
    ended = _run_all(dispatcher, files, script, ids)
    assert [[o.query_id for o in batch] for batch in script.batches] == [ids[1:]]
    batch = script.batches[0]
    first = ended["first"].order.sequence
    assert [o.sequence for o in batch] == list(range(first + 1, first + 7))  # consecutive
    for query_id in ids:
        result = ended[query_id]
        assert result.order.query_id == query_id
        assert result.blocks == {"value": [value_of(query_id)]}, query_id  # its own, not another's


def test_a_node_failing_a_batch_fails_every_query_in_it_naming_each(
    batching: tuple[Dispatcher, Script], files: ConsortiumFiles
) -> None:
    dispatcher, script = batching
    script.fail[1] = lambda orders: DeadlineExceededError("MPC session: the step did not finish")
    ids = ["first", "q1", "q2", "q3"]
    ended = _run_all(dispatcher, files, script, ids)
    assert ended["first"].order.query_id == "first"  # alone, before the failure
    for query_id in ids[1:]:
        err = ended[query_id]
        assert isinstance(err, DeadlineExceededError), err
        assert "did not finish" in err.public_message
        assert err.query_id == query_id
    # The abort goes out without the queries waiting for it; the lane's next
    # session opens only once every node answered it, so by then all have arrived.
    assert script.wait_until(lambda: bool(script.opened)), "the lane was never reopened"
    assert [lane for lane, _ in script.aborts] == ["short"]  # torn down once, for the batch
    (lane, epoch), (_, aborted) = script.opened[0], script.aborts[0]
    assert lane == "short" and epoch > aborted  # then the lane's next session opened


def test_a_member_one_node_refuses_fails_alone_and_the_others_run_without_it(
    batching: tuple[Dispatcher, Script], files: ConsortiumFiles
) -> None:
    dispatcher, script = batching

    def refuse_bad(orders: list[ExecutionOrder]) -> GatewayError | None:
        if any(o.query_id == "bad" for o in orders):
            return PolicyDeniedError("refused by rule dataset.analysts", query_id="bad")
        return None

    script.fail[2] = refuse_bad
    ended = _run_all(dispatcher, files, script, ["first", "q1", "bad", "q2"])
    err = ended["bad"]
    assert isinstance(err, PolicyDeniedError) and err.query_id == "bad"
    assert "dataset.analysts" in err.public_message
    for query_id in ["first", "q1", "q2"]:
        assert ended[query_id].blocks == {"value": [value_of(query_id)]}
    sent = [[o.query_id for o in batch] for batch in script.batches]
    assert sent == [["q1", "bad", "q2"], ["q1", "q2"]]
    assert script.batches[1][0].epoch > script.batches[0][0].epoch  # in the session that followed
