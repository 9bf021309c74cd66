"""Global ordering and dispatch of signed execution orders to every node.

The dispatcher owns the consortium's MPC sequence: an ``epoch`` (one warm MPC
session among the nodes) and a sequence number inside it, assigned under one
lock together with sending the orders, so every node receives work in the
same order. When any node fails an order, the dispatcher aborts the epoch at
every node at once (so no node waits for a peer that will never answer) and
starts a new epoch: the next query gets a fresh session. The blocks the
computation opens to steer itself are reconstructed from every node's
re-randomised shares; the result stays sealed to its receiver at the nodes
until :class:`~mpc_gateway.gateway.relay.Relay` shows them the logged release.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.computations import Plan
from mpc_gateway.errors import (
    ConfigurationError,
    GatewayError,
    IntegrityError,
    ProtocolAbortedError,
    ShuttingDownError,
)
from mpc_gateway.gateway.blame import all_refuse, root_cause
from mpc_gateway.orders import ExecutionOrder, Party, SessionOrder, recombine_block
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
MAX_IN_FLIGHT = 32  # below the nodes' 64 handler threads (rpc.server.build_server)


@dataclass(frozen=True)
class Dispatched:
    """A joint result as signed integers per block, with where and how long it ran."""

    order: ExecutionOrder
    blocks: dict[str, list[int]]
    local_ms: float
    mpc_ms: float
    participation: list[dict[str, object]]  # per node: name, party index, timings (audit)
    sealed: dict[str, str]  # per node: the digest of its result shares, sealed and held there
    sealed_bytes: int
    cosigned: dict[str, int]  # per node: the size of our log it had cosigned last


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
        self.parties = tuple(
            Party(index=i, name=link.name, host=link.mpc_host, port=link.mpc_port)
            for i, link in enumerate(ordered)
        )
        self._channels = [client_channel(link.address, tls) for link in ordered]
        self._stubs = [
            (link.name, node_pb2_grpc.NodeServiceStub(channel))
            for link, channel in zip(ordered, self._channels, strict=True)
        ]
        self._key = signing_key
        self._pool = ThreadPoolExecutor(
            max_workers=3 * MAX_IN_FLIGHT, thread_name_prefix="dispatch"
        )
        # queries in flight wait at nodes for their turn, each holding a node handler thread:
        # keep them fewer than a node's handler threads, so the query whose turn it is has one
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._lock = threading.Lock()
        self._epoch = time.time_ns() // 1_000_000
        self._next = 0
        self._deadlines: dict[
            tuple[int, int], int
        ] = {}  # orders in flight: (epoch, seq) -> deadline
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
        with self._in_flight:
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
        with self._lock:
            self._raise_if_stopped(query_id)
            order = self._next_order(query_id, plan, timeout_s, approvals, step, receiver)
            key = (order.epoch, order.sequence)
            self._deadlines[key] = order.deadline_ms
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
                del self._deadlines[key]
        if failures:
            raise root_cause(failures)
        return self._reconstruct(order, replies)

    def _next_order(
        self,
        query_id: str,
        plan: Plan,
        timeout_s: float,
        approvals: tuple[SignedApproval, ...],
        step: dict[str, Any],
        receiver: str,
    ) -> ExecutionOrder:
        now_ms = time.time_ns() // 1_000_000
        # an order runs after every order ahead of it: its own time starts when theirs ends
        # (a query queued behind a long risk job must not time out while it waits its turn)
        ahead = [d for (epoch, _), d in self._deadlines.items() if epoch == self._epoch]
        starts_ms = max([now_ms, *ahead])
        order = ExecutionOrder(
            query_id=query_id,
            plan=plan,
            plan_hash=plan.plan_hash,
            epoch=self._epoch,
            sequence=self._next,
            parties=self.parties,
            issued_at_ms=now_ms,
            deadline_ms=starts_ms + int(timeout_s * 1000),
            approvals=approvals,
            step=step,
            receiver=receiver,
        )
        self._next += 1
        return order

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
                        self.abort(order.epoch, outcome.public_message)  # now, not at the deadline
                else:
                    replies[name] = outcome
        return replies, failures

    def stop(self, reason: str) -> None:
        """Run no order any more: the ones under way end now with ShuttingDownError.

        The current session is aborted at every node, so no node keeps computing
        for a query whose result nobody will collect.
        """
        with self._lock:
            self._stopped = reason
            epoch = self._epoch
        for call in self.abort(epoch, reason, reopen=False):  # delivered before channels close
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

    def open_session(self, timeout_s: float = 15.0) -> bool:
        """Connect the current epoch's MPC session at every node; True once all report it open."""
        with self._lock:
            order = SessionOrder(
                epoch=self._epoch, parties=self.parties, issued_at_ms=time.time_ns() // 1_000_000
            )
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
                    "could not open MPC session epoch %d ahead of use: %s", order.epoch, reason
                )
                self.abort(order.epoch, reason, reopen=False)
                return False
        log.info("MPC session epoch %d open at every node", order.epoch)
        return True

    def open_session_in_background(
        self, then: Callable[[], None] = lambda: None, retry_s: float = 1.0
    ) -> None:
        """Open the session without blocking, retrying until every node has it; then ``then()``."""

        def keep_trying() -> None:
            while not self.open_session():
                if self._stopped is not None:
                    return
                time.sleep(retry_s)
            then()

        threading.Thread(target=keep_trying, name="mpc-session-open", daemon=True).start()

    def abort(self, epoch: int, reason: str, reopen: bool = True) -> list[grpc.Future[Any]]:
        """Tear down ``epoch``'s session at every node; later queries use a new epoch.

        Returns the abort calls under way (none if ``epoch`` is not the current one).
        """
        with self._lock:
            if self._epoch != epoch or self._closed:
                return []
            self._epoch = max(epoch + 1, time.time_ns() // 1_000_000)
            self._next = 0
        log.warning("aborting MPC session epoch %d: %s", epoch, reason)
        request = node_pb2.AbortRequest(epoch=epoch, reason=reason)
        aborts: list[grpc.Future[Any]] = [
            stub.AbortSession.future(request, timeout=_ABORT_TIMEOUT_S) for _, stub in self._stubs
        ]
        if reopen:  # once every node has let go of the old session, connect the next one
            threading.Thread(target=self._reopen_after, args=(aborts,), daemon=True).start()
        return aborts

    def _reopen_after(self, aborts: list[grpc.Future[Any]]) -> None:
        for call in aborts:
            try:
                call.result()
            except grpc.RpcError:
                pass  # an unreachable node: the next session's opening will say so
        self.open_session()  # once: a node that stays down is reported by the next query

    def _reconstruct(
        self, order: ExecutionOrder, replies: dict[str, node_pb2.ResultShares]
    ) -> Dispatched:
        shares: dict[str, list[tuple[int, int, list[int]]]] = {}
        for party in order.parties:
            reply = replies[party.name]
            if reply.party_index != party.index:
                raise IntegrityError(f"node {party.name} answered as party {reply.party_index}")
            for block in reply.blocks:
                point = (party.index + 1, int(block.modulus), [int(v) for v in block.values])
                shares.setdefault(block.name, []).append(point)
        parties = len(order.parties)
        blocks = {name: recombine_block(name, points, parties) for name, points in shares.items()}
        return Dispatched(
            order=order,
            blocks=blocks,
            local_ms=max(r.local_ms for r in replies.values()),
            mpc_ms=max(r.mpc_ms for r in replies.values()),
            participation=[
                {
                    "node": r.node,
                    "party": r.party_index,
                    "local_us": int(r.local_ms * 1000),
                    "mpc_us": int(r.mpc_ms * 1000),
                }
                for r in sorted(replies.values(), key=lambda r: r.party_index)
            ],
            sealed={name: r.sealed_sha256 for name, r in replies.items()},
            cosigned={name: r.cosigned_size for name, r in replies.items()},
            sealed_bytes=sum(r.sealed_size for r in replies.values()),
        )


def _execute(
    name: str, stub: node_pb2_grpc.NodeServiceStub, request: node_pb2.SignedOrder, timeout_s: float
) -> tuple[str, node_pb2.ResultShares | GatewayError]:
    try:
        return name, stub.Execute(request, timeout=timeout_s)
    except grpc.RpcError as err:
        return name, error_from_rpc(err, f"node {name}")
