"""Global ordering, per lane, and dispatch of signed execution orders to every node.

The dispatcher owns the consortium's MPC sequences, one per lane
(:mod:`mpc_gateway.lanes`; :class:`~.lanes.LaneSequence`): an ``epoch`` (one
warm MPC session of that lane among the nodes) and a sequence number inside it,
assigned under one lock together with sending the orders, so every node
receives each lane's work in the same order. A plan runs in the lane its
computation declares. When any node fails an order, the dispatcher aborts that
lane's epoch at every node at once (so no node waits for a peer that will never
answer) and starts a new epoch of that lane only: the other lane's session and
the queries running in it go on. Replies are recombined by :mod:`.recombine`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.computations import Plan, computation_of
from mpc_gateway.errors import (
    ConfigurationError,
    GatewayError,
    IntegrityError,
    ProtocolAbortedError,
    ShuttingDownError,
)
from mpc_gateway.gateway.batching import Batcher, Dispatch, Member
from mpc_gateway.gateway.blame import all_refuse, root_cause, worth_again
from mpc_gateway.gateway.calls import NodeCalls
from mpc_gateway.gateway.lanes import LaneSequence, lane_parties
from mpc_gateway.gateway.recombine import Dispatched, recombined
from mpc_gateway.lanes import LANES, Lane
from mpc_gateway.orders import MAX_BATCH, ExecutionOrder, Party, batch_message
from mpc_gateway.pki import sign
from mpc_gateway.policy import SignedApproval
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.rpc.errors import error_from_rpc
from mpc_gateway.rpc.limits import MiB
from mpc_gateway.rpc.server import TlsMaterial, client_channel
from mpc_gateway.settings import NodeLink

__all__ = ["Dispatcher", "Dispatched"]

log = logging.getLogger(__name__)

_ABORT_TIMEOUT_S = 5.0
_STOP_CHECK_S = 0.25  # how soon a query waiting on nodes notices that the gateway stops
# queries in flight per lane: together below the nodes' 64 handler threads (rpc.server.build_server)
MAX_IN_FLIGHT: dict[Lane, int] = {"short": 32, "long": 16}
BATCH_BYTES = 4 * MiB  # the orders of one batch together at most; a larger order goes alone

Shares = list[node_pb2.ResultShares]  # one node's reply: its shares of each order of a message


class Dispatcher:
    def __init__(
        self,
        links: Sequence[NodeLink],
        party_order: Sequence[str],
        tls: TlsMaterial,
        signing_key: Ed25519PrivateKey,
        batch_max: int = 1,
        batches_in_flight: int = 2,
    ) -> None:
        """``batch_max`` > 1: the short lane's queries queued together go out as one batch
        (:mod:`.batching`) of at most that many, ``batches_in_flight`` at a time."""
        by_name = {link.name: link for link in links}
        if sorted(by_name) != sorted(party_order):
            raise ConfigurationError(
                f"gateway config lists nodes {sorted(by_name)}, "
                f"the consortium PKI has {sorted(party_order)}"
            )
        ordered = [by_name[name] for name in party_order]
        self._lanes = {lane: LaneSequence(lane, lane_parties(ordered, lane)) for lane in LANES}
        self.parties: tuple[Party, ...] = self._lanes["short"].parties  # names, indices, count
        self._channels = [client_channel(link.address, tls) for link in ordered]
        self._stubs = [
            (link.name, node_pb2_grpc.NodeServiceStub(channel))
            for link, channel in zip(ordered, self._channels, strict=True)
        ]
        self._key = signing_key
        self._pool = ThreadPoolExecutor(  # a thread per node per query in flight, every lane
            max_workers=len(ordered) * sum(MAX_IN_FLIGHT.values()), thread_name_prefix="dispatch"
        )
        # releases and pseudonym requests: apart, so they never queue behind orders
        self.calls = NodeCalls(self._stubs, workers=4 * len(ordered))
        # queries in flight wait at nodes for their turn, each holding a node handler thread:
        # keep them fewer than a node's handler threads, so the query whose turn it is has one;
        # per lane, so long jobs queued in their lane never take the short queries' places
        self._in_flight = {lane: threading.BoundedSemaphore(n) for lane, n in MAX_IN_FLIGHT.items()}
        self._lock = threading.Lock()
        # the long lane's jobs are few and long: each goes alone
        self._batcher = (
            Batcher(self._send, min(batch_max, MAX_BATCH), batches_in_flight)
            if batch_max > 1
            else None
        )
        self._stopped: str | None = None  # why no order runs any more (stop())
        self._closed = False
        # each node's reply to an opening: its name and the gateway checkpoint it cosigned last
        self.on_session: Callable[[str, str], None] = lambda name, cosigned: None
        self.shown: Callable[[str], str] = lambda name: ""  # per node: what it cosigned, as kept

    def run(
        self,
        query_id: str,
        plan: Plan,
        timeout_s: float,
        evidence: DispatchEvidence,
        on_dispatched: Dispatch = lambda order, batch: None,
        approvals: tuple[SignedApproval, ...] = (),
        step: dict[str, Any] | None = None,
        receiver: str = "",
    ) -> Dispatched:
        """Order ``plan`` at every node; reconstruct the blocks it opens, the rest stays sealed.

        ``receiver`` is the analyst's key-agreement certificate (PEM) nodes seal to.
        """
        proof = node_pb2.AuditEvidence(
            entry=evidence.entry,
            index=evidence.index,
            proof=evidence.proof,
            checkpoint=evidence.checkpoint,
        )
        member = Member(
            query_id, plan, timeout_s, proof, on_dispatched, approvals, step or {}, receiver
        )
        if self._batcher is not None and computation_of(plan).lane == "short":
            self._batcher.submit(member)
        else:
            self._send([member])
        result: Dispatched = member.outcome.result()
        return result

    def _send(self, members: Sequence[Member]) -> list[Member]:
        """Dispatch the first of ``members`` that fit one message and end each; the rest back.

        A member fails with its own copy of the batch's error; once more in a new
        session if every node found the session torn down under them (nothing was
        released), or without a member a node refused, for the others' sake.
        """
        lane = self._lanes[computation_of(members[0].plan).lane]
        with self._in_flight[lane.lane]:
            sent, outcome = self._dispatch(lane, members)
            batch, retried = list(members[:sent]), False
            while isinstance(outcome, GatewayError):
                if isinstance(outcome, ProtocolAbortedError) and self._stopped is not None:
                    outcome = ShuttingDownError(self._stopped)  # stop() aborted the session
                again = [] if retried or self._stopped is not None else worth_again(batch, outcome)
                if not again:
                    for member in batch:
                        if not member.outcome.done():
                            member.fail(outcome)
                    return list(members[sent:])
                batch, retried = again, True
                _, outcome = self._dispatch(lane, batch)  # it fit before: it fits again
            for member, result in zip(batch, outcome, strict=True):
                member.succeed(result)
        return list(members[sent:])

    def _dispatch(
        self, lane: LaneSequence, members: Sequence[Member]
    ) -> tuple[int, list[Dispatched] | GatewayError]:
        """Order the first members that fit one message (at least one) at every node.

        Returns how many it ordered, and their results or the error that ended them.
        """
        with self._lock:
            if self._stopped is not None:
                return len(members), ShuttingDownError(self._stopped)
            orders, datas = self._orders(lane, members)
            proofs = [m.proof for m in members[: len(orders)]]
            request: node_pb2.SignedOrder | node_pb2.SignedBatch
            if len(orders) == 1:
                request = node_pb2.SignedOrder(
                    order=datas[0], signature=sign(self._key, datas[0]), evidence=proofs[0]
                )
            else:
                signature = sign(self._key, batch_message(datas))
                request = node_pb2.SignedBatch(orders=datas, signature=signature, evidence=proofs)
            wait_s = max(o.deadline_ms - o.issued_at_ms for o in orders) / 1000 + 1
            # blocking calls on long-lived threads: a gRPC future starts a thread per call
            calls = [
                self._pool.submit(_execute, name, stub, request, wait_s)
                for name, stub in self._stubs
            ]
        try:
            for member, order in zip(members, orders):
                member.on_dispatched(order, (orders[0].sequence, len(orders)))
            replies, failures = self._collect(orders[0], calls)
        except GatewayError as err:
            return len(orders), err
        finally:
            with self._lock:
                for order in orders:
                    lane.finished(order)
        if failures:
            return len(orders), root_cause(failures)
        try:
            return len(orders), [
                recombined(order, {name: shares[i] for name, shares in replies.items()})
                for i, order in enumerate(orders)
            ]
        except GatewayError as err:
            return len(orders), err

    def _orders(
        self, lane: LaneSequence, members: Sequence[Member]
    ) -> tuple[list[ExecutionOrder], list[bytes]]:
        """Consecutive orders for the first members that fit one message (under the lock)."""
        orders: list[ExecutionOrder] = []
        datas: list[bytes] = []
        starts = lane.starts_ms()
        for member in members:
            order = lane.order(
                member.query_id,
                member.plan,
                member.timeout_s,
                member.approvals,
                member.step,
                member.receiver,
                starts,
            )
            data = order.canonical()
            if orders and sum(map(len, datas)) + len(data) > BATCH_BYTES:
                lane.withdraw(order)
                break
            orders.append(order)
            datas.append(data)
        return orders, datas

    def _collect(
        self, order: ExecutionOrder, calls: list[Future[tuple[str, Shares | GatewayError]]]
    ) -> tuple[dict[str, Shares], list[GatewayError]]:
        """Every node's replies to the message ``order`` leads; on a failure, abort its session."""
        replies: dict[str, Shares] = {}
        failures: list[GatewayError] = []
        waiting = set(calls)
        while waiting:
            done, waiting = wait(waiting, timeout=_STOP_CHECK_S, return_when=FIRST_COMPLETED)
            if not done:
                self._raise_if_stopped(order.query_id)  # stop() has aborted the session already
            for call in done:
                name, outcome = call.result()
                if isinstance(outcome, GatewayError):
                    failures.append(outcome)
                    if len(failures) == 1 and not all_refuse(outcome, calls):
                        # now, not at the deadline; the other lane goes on
                        self.abort(order.lane, order.epoch, outcome.public_message)
                else:
                    replies[name] = outcome
        return replies, failures

    def stop(self, reason: str) -> None:
        """Run no order any more: the ones under way end now with ShuttingDownError.

        Every lane's current session is aborted at every node, so no node keeps
        computing for a query whose result nobody will collect.
        """
        with self._lock:
            self._stopped = reason
            epochs = {name: lane.epoch for name, lane in self._lanes.items()}
        aborts = [
            c for lane, e in epochs.items() for c in self.abort(lane, e, reason, reopen=False)
        ]
        for call in aborts:  # delivered before the channels close
            try:
                call.result()
            except grpc.RpcError:
                pass  # an unreachable node: it has no session to keep either

    def close(self) -> None:
        """Close the channels to the nodes: calls still waiting on a node end now."""
        with self._lock:
            self._closed = True
            self._stopped = self._stopped or "the gateway has stopped"
        self.calls.close(self._stopped)  # first: a call the channels cut short says why
        for channel in self._channels:
            channel.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _raise_if_stopped(self, query_id: str) -> None:
        if self._stopped is not None:
            # each member of a batch gets its own copy, naming its own query (batching.Member)
            raise ShuttingDownError(self._stopped, query_id=query_id)

    @property
    def stubs(self) -> list[tuple[str, node_pb2_grpc.NodeServiceStub]]:
        """Every node's name and stub, in party order."""
        return self._stubs

    def open_session(self, lane: Lane, timeout_s: float = 15.0) -> bool:
        """Connect ``lane``'s current MPC session at every node; True once all report it open."""
        with self._lock:
            order = self._lanes[lane].session_order()
        data = order.canonical()
        signature = sign(self._key, data)
        calls = [
            (
                name,
                stub.OpenSession.future(
                    node_pb2.SignedOrder(
                        order=data, signature=signature, cosigned=self.shown(name)
                    ),
                    timeout=timeout_s,
                    wait_for_ready=True,
                ),
            )
            for name, stub in self._stubs
        ]
        for name, call in calls:
            try:
                self.on_session(name, call.result().cosigned_checkpoint)
            except grpc.RpcError as err:
                reason = error_from_rpc(err, f"node {name}").public_message
                log.warning(
                    "could not open the %s lane's MPC session epoch %d ahead of use: %s",
                    lane,
                    order.epoch,
                    reason,
                )
                self.abort(lane, order.epoch, reason, reopen=False)
                return False
        log.info("%s lane's MPC session epoch %d open at every node", lane, order.epoch)
        return True

    def open_session_in_background(
        self, lane: Lane, then: Callable[[], None] = lambda: None, retry_s: float = 1.0
    ) -> None:
        """Open ``lane``'s session in the background, retrying until it opens; then ``then()``."""

        def keep_trying() -> None:
            while not self.open_session(lane):
                if self._stopped is not None:
                    return
                time.sleep(retry_s)
            then()

        threading.Thread(target=keep_trying, name=f"mpc-{lane}-open", daemon=True).start()

    def abort(
        self, lane: Lane, epoch: int, reason: str, reopen: bool = True
    ) -> list[grpc.Future[Any]]:
        """Tear down ``lane``'s session of ``epoch`` at every node; its later queries use a new one.

        The other lane is not touched. Returns the abort calls under way (none if
        ``epoch`` is not the lane's current one); a thread holds them until they end
        (gRPC cancels a call whose future is dropped), then reopens the lane if asked.
        """
        with self._lock:
            if self._closed or not self._lanes[lane].turn_over(epoch):
                return []
        log.warning("aborting the %s lane's MPC session epoch %d: %s", lane, epoch, reason)
        request = node_pb2.AbortRequest(lane=lane, epoch=epoch, reason=reason)
        aborts: list[grpc.Future[Any]] = [
            stub.AbortSession.future(request, timeout=_ABORT_TIMEOUT_S) for _, stub in self._stubs
        ]
        threading.Thread(target=self._after_abort, args=(lane, aborts, reopen), daemon=True).start()
        return aborts

    def _after_abort(self, lane: Lane, aborts: list[grpc.Future[Any]], reopen: bool) -> None:
        for call in aborts:
            try:
                call.result()
            except grpc.RpcError:
                pass  # an unreachable node: the next session's opening will say so
        if reopen:  # every node has let go of the old session: connect the next one
            try:  # once: a node that stays down is reported by the next query
                self.open_session(lane)
            except ValueError:  # the channels were closed under it: the gateway has stopped
                log.info("the %s lane's session was not reopened: the gateway has stopped", lane)


def _execute(
    name: str,
    stub: node_pb2_grpc.NodeServiceStub,
    request: node_pb2.SignedOrder | node_pb2.SignedBatch,
    timeout_s: float,
) -> tuple[str, Shares | GatewayError]:
    """One node's shares of every order in ``request`` (one order, or a batch), in order."""
    try:
        if isinstance(request, node_pb2.SignedOrder):
            return name, [stub.Execute(request, timeout=timeout_s)]
        results = list(stub.ExecuteBatch(request, timeout=timeout_s).results)
    except grpc.RpcError as err:
        return name, error_from_rpc(err, f"node {name}")
    if len(results) != len(request.orders):
        return name, IntegrityError(
            f"node {name} answered {len(results)} of a batch's {len(request.orders)} orders"
        )
    return name, results
