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
    ProtocolAbortedError,
    ShuttingDownError,
)
from mpc_gateway.gateway.blame import all_refuse, root_cause
from mpc_gateway.gateway.lanes import LaneSequence, lane_parties
from mpc_gateway.gateway.recombine import Dispatched, recombined
from mpc_gateway.lanes import LANES, Lane
from mpc_gateway.orders import ExecutionOrder, Party
from mpc_gateway.pki import sign
from mpc_gateway.policy import SignedApproval
from mpc_gateway.proto.v1 import node_pb2, node_pb2_grpc
from mpc_gateway.rpc.errors import error_from_rpc
from mpc_gateway.rpc.server import TlsMaterial, client_channel
from mpc_gateway.settings import NodeLink

__all__ = ["Dispatcher", "Dispatched"]

log = logging.getLogger(__name__)

_ABORT_TIMEOUT_S = 5.0
_STOP_CHECK_S = 0.25  # how soon a query waiting on nodes notices that the gateway stops
# queries in flight per lane: together below the nodes' 64 handler threads (rpc.server.build_server)
MAX_IN_FLIGHT: dict[Lane, int] = {"short": 32, "long": 16}


class Dispatcher:
    def __init__(
        self,
        links: Sequence[NodeLink],
        party_order: Sequence[str],
        tls: TlsMaterial,
        signing_key: Ed25519PrivateKey,
    ) -> None:
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
        # queries in flight wait at nodes for their turn, each holding a node handler thread:
        # keep them fewer than a node's handler threads, so the query whose turn it is has one;
        # per lane, so long jobs queued in their lane never take the short queries' places
        self._in_flight = {lane: threading.BoundedSemaphore(n) for lane, n in MAX_IN_FLIGHT.items()}
        self._lock = threading.Lock()
        self._stopped: str | None = None  # why no order runs any more (stop())
        self._closed = False

    def run(
        self,
        query_id: str,
        plan: Plan,
        timeout_s: float,
        evidence: DispatchEvidence,
        on_dispatched: Callable[[ExecutionOrder], None] = lambda order: None,
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
        with self._in_flight[computation_of(plan).lane]:
            try:
                return self._dispatch(
                    query_id, plan, timeout_s, proof, on_dispatched, approvals, step or {}, receiver
                )
            except ProtocolAbortedError as err:
                self._raise_if_stopped(query_id)
                # every node answered ABORTED: its session was torn down under it (another
                # query's failure, a stale session opening), not by this query or a bad node.
                # Nothing was released; run it once more in the session that replaced it.
                log.info(
                    "query %s met a torn-down MPC session (%s); retrying once",
                    query_id,
                    err.public_message,
                )
                return self._dispatch(
                    query_id, plan, timeout_s, proof, on_dispatched, approvals, step or {}, receiver
                )

    def _dispatch(
        self,
        query_id: str,
        plan: Plan,
        timeout_s: float,
        proof: node_pb2.AuditEvidence,
        on_dispatched: Callable[[ExecutionOrder], None],
        approvals: tuple[SignedApproval, ...],
        step: dict[str, Any],
        receiver: str,
    ) -> Dispatched:
        lane = self._lanes[computation_of(plan).lane]
        with self._lock:
            self._raise_if_stopped(query_id)
            order = lane.order(query_id, plan, timeout_s, approvals, step, receiver)
            data = order.canonical()
            request = node_pb2.SignedOrder(
                order=data, signature=sign(self._key, data), evidence=proof
            )
            wait_s = (order.deadline_ms - order.issued_at_ms) / 1000 + 1
            # blocking calls on long-lived threads: a gRPC future starts a thread per call
            calls = [
                self._pool.submit(_execute, name, stub, request, wait_s)
                for name, stub in self._stubs
            ]
        try:
            on_dispatched(order)
            replies, failures = self._collect(query_id, order, calls)
        finally:
            with self._lock:
                lane.finished(order)
        if failures:
            raise root_cause(failures)
        return recombined(order, replies)

    def _collect(
        self,
        query_id: str,
        order: ExecutionOrder,
        calls: list[Future[tuple[str, node_pb2.ResultShares | GatewayError]]],
    ) -> tuple[dict[str, node_pb2.ResultShares], list[GatewayError]]:
        replies: dict[str, node_pb2.ResultShares] = {}
        failures: list[GatewayError] = []
        waiting = set(calls)
        while waiting:
            done, waiting = wait(waiting, timeout=_STOP_CHECK_S, return_when=FIRST_COMPLETED)
            if not done:
                self._raise_if_stopped(query_id)  # stop() has aborted the session already
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
        for channel in self._channels:
            channel.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _raise_if_stopped(self, query_id: str) -> None:
        if self._stopped is not None:
            raise ShuttingDownError(f"query {query_id}: {self._stopped}", query_id=query_id)

    @property
    def stubs(self) -> list[tuple[str, node_pb2_grpc.NodeServiceStub]]:
        """Every node's name and stub, in party order."""
        return self._stubs

    def open_session(self, lane: Lane, timeout_s: float = 15.0) -> bool:
        """Connect ``lane``'s current MPC session at every node; True once all report it open."""
        with self._lock:
            order = self._lanes[lane].session_order()
        data = order.canonical()
        request = node_pb2.SignedOrder(order=data, signature=sign(self._key, data))
        calls = [
            (name, stub.OpenSession.future(request, timeout=timeout_s, wait_for_ready=True))
            for name, stub in self._stubs
        ]
        for name, call in calls:
            try:
                call.result()
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
        ``epoch`` is not the lane's current one).
        """
        with self._lock:
            if self._closed or not self._lanes[lane].turn_over(epoch):
                return []
        log.warning("aborting the %s lane's MPC session epoch %d: %s", lane, epoch, reason)
        request = node_pb2.AbortRequest(lane=lane, epoch=epoch, reason=reason)
        aborts: list[grpc.Future[Any]] = [
            stub.AbortSession.future(request, timeout=_ABORT_TIMEOUT_S) for _, stub in self._stubs
        ]
        if reopen:  # once every node has let go of the old session, connect the next one
            threading.Thread(target=self._reopen_after, args=(lane, aborts), daemon=True).start()
        return aborts

    def _reopen_after(self, lane: Lane, aborts: list[grpc.Future[Any]]) -> None:
        for call in aborts:
            try:
                call.result()
            except grpc.RpcError:
                pass  # an unreachable node: the next session's opening will say so
        self.open_session(lane)  # once: a node that stays down is reported by the next query


def _execute(
    name: str, stub: node_pb2_grpc.NodeServiceStub, request: node_pb2.SignedOrder, timeout_s: float
) -> tuple[str, node_pb2.ResultShares | GatewayError]:
    try:
        return name, stub.Execute(request, timeout=timeout_s)
    except grpc.RpcError as err:
        return name, error_from_rpc(err, f"node {name}")
