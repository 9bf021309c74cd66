"""A node: verify the gateway's signed order, pre-aggregate locally, take part in the MPC.

Only the consortium's gateway reaches these methods (the server's access
table says so). Before contributing anything the node checks, on its own: the
Ed25519 signature on the order against the
gateway's certified signing key; that the order places this node at its own
party index and its MPC port for the order's lane; that the lane is the one the
plan's computation runs in (:mod:`.lanes`: a long job never gets into the short
lane's session, nor a short query into the long one's); that the plan is for a
dataset it holds with the same schema; and that the plan re-validates against
its own schema (a gateway that sends a plan it did not validate gets refused).
Only then does it compute its local aggregates and hand them to the MPC step, in
its lane's sequence. A helper node (``role = "helper"``) checks every order the
same way against its own policy; its datasets are empty tables, so it contributes
zeros of every computation's shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from mpc_gateway.audit.evidence import DispatchEvidence, log_origin, verify_evidence
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import VOCABULARY, LocalData, ProgramCall, computation_of
from mpc_gateway.errors import (
    ConfigurationError,
    DeadlineExceededError,
    GatewayError,
    IntegrityError,
    InvalidQueryError,
)
from mpc_gateway.lanes import Lane
from mpc_gateway.node.admission import Admission, Taken
from mpc_gateway.node.lanes import LaneSessions, worker_spawner
from mpc_gateway.node.pseudonyms import Evaluator
from mpc_gateway.node.release import Contribution, Releases, order_receiver, split_blocks
from mpc_gateway.node.sources import DataSource, close_dataset, open_dataset
from mpc_gateway.node.steps import StepMemory
from mpc_gateway.node.witness import outcomes, received, refused
from mpc_gateway.orders import (
    ExecutionOrder,
    SessionOrder,
    batch_message,
    check_batch,
)
from mpc_gateway.pki import (
    Identity,
    load_ca,
    load_layout,
    load_signing_key,
    load_verified_signing_cert,
    tls_credentials_bytes,
    verify,
)
from mpc_gateway.policy import UsageLedger, load_policy
from mpc_gateway.privacy import PrivacyLedger
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.settings import NodeSettings

__all__ = ["Node", "Contribution"]

log = logging.getLogger(__name__)

BATCH_PROGRAM = "batch:run_all"  # runs a batch's members as one MPC job


@dataclass(frozen=True)
class _Admitted:
    """A member order that passed every check, with what it took and whom it is sealed to."""

    order: ExecutionOrder
    evidence: DispatchEvidence
    log_size: int  # of the gateway's log, by the checkpoint the order came with
    dataset: DataSource
    taken: Taken
    receiver: X25519PublicKey


class Node:
    """Everything a node does for the gateway, without any gRPC."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.layout = load_layout(settings.pki_dir)
        self.identity = Identity("node", settings.name, self.layout.trust_domain)
        self.party_index = self.layout.party_index(settings.name)
        self.tls = tls_credentials_bytes(self.layout, self.identity)
        self.gateway = Identity("gateway", settings.gateway, self.layout.trust_domain)
        signing_cert, _ = self.layout.signing_paths(self.gateway)
        self._gateway_key = load_verified_signing_cert(
            signing_cert.read_bytes(), load_ca(self.layout.ca_cert), self.gateway
        )
        self.datasets = {
            name: open_dataset(
                name,
                load_schema(src.schema_file),
                src,
                settings.scan_threads,
                holds_data=settings.role != "helper",
            )
            for name, src in settings.datasets.items()
        }
        self.sessions = LaneSessions(
            settings.name,
            self.party_index,
            settings.mpc_port_of,
            worker_spawner(
                self.party_index, self.layout.trust_domain, self.layout.mpc_dir(settings.name)
            ),
        )
        self.steps = StepMemory()
        self._ca = load_ca(self.layout.ca_cert)
        schemas = {n: d.schema for n, d in self.datasets.items()}
        self.policy = load_policy(settings.policy, schemas, VOCABULARY)
        if self.policy.owner != settings.name:
            raise ConfigurationError(
                f"{settings.policy} is {self.policy.owner!r}'s policy, not {settings.name!r}'s"
            )
        settings.usage_db.parent.mkdir(parents=True, exist_ok=True)
        self.usage = UsageLedger(settings.usage_db)
        self.privacy = PrivacyLedger(settings.usage_db)  # same file: one sync for both
        self.admission = Admission(
            settings.name,
            self.policy,
            self.usage,
            self.privacy,
            self._ca,
            self.layout.trust_domain,
        )
        td = self.layout.trust_domain
        self._gateway_log = log_origin(td, "gateway", settings.gateway)
        _, node_key = self.layout.signing_paths(self.identity)
        signing_key, witness_log = load_signing_key(node_key), log_origin(td, "node", settings.name)
        self.witness = AuditTrail.open(settings.audit_db, signing_key, witness_log)
        self.pseudonyms = Evaluator(
            settings.name,
            self.party_index + 1,
            len(self.layout.nodes),
            settings.pseudonym_key_share,
            self.policy,
            self.usage,
            self.witness,
            self._gateway_key,
            self._gateway_log,
            (signing_key, self.layout.signing_paths(self.identity)[0].read_bytes()),
            self._ca,
            td,
        )
        self.releases = Releases(
            settings.name,
            self.party_index,
            witness_log,
            signing_key,
            self._gateway_key,
            self._gateway_log,
            self.witness,
        )

    def _placed(self, order_bytes: bytes) -> ExecutionOrder:
        order = ExecutionOrder.from_bytes(order_bytes)
        self.sessions.check_placement(order.lane, order.parties)
        return order

    def open_session(
        self, order_bytes: bytes, signature: bytes, timeout_s: float | None, cosigned: str = ""
    ) -> SessionOrder:
        """Connect the lane's MPC session the gateway announces, ahead of its first query
        (first :meth:`Releases.check_shown`: a witness log that lost releases halts here)."""
        verify(self._gateway_key, signature, order_bytes, what="session order")
        self.releases.check_shown(cosigned)
        order = SessionOrder.from_bytes(order_bytes)
        self.sessions.open(order, time.monotonic() + (timeout_s or 30.0))
        log.info("%s lane's MPC session epoch %d connected ahead of use", order.lane, order.epoch)
        return order

    def _checked_plan(self, order: ExecutionOrder, synced: bool) -> tuple[DataSource, Taken]:
        plan = order.plan
        lane = computation_of(plan).lane
        if order.lane != lane:
            raise IntegrityError(
                f"order puts its {plan.kind} plan in the {order.lane} lane: "
                f"{plan.kind} runs in the {lane} lane"
            )
        dataset = self.datasets.get(plan.dataset)
        if dataset is None:
            raise InvalidQueryError(f"{self.settings.name} holds no dataset {plan.dataset!r}")
        if plan.schema_hash != dataset.schema.schema_hash:
            raise ConfigurationError(
                f"{self.settings.name}'s schema of {plan.dataset!r} differs from the gateway's"
            )
        # refuses what does not fit this node's own schema
        computation_of(plan).check(plan, dataset.schema, len(order.parties))
        return dataset, self.admission.admit(order, synced=synced)

    def _admit(self, order: ExecutionOrder, evidence: DispatchEvidence, synced: bool) -> _Admitted:
        """Every check of one order, on its own; the error names the order's query.

        ``synced``: its count is synced to disk, with every count written before it.
        """
        try:
            head = verify_evidence(
                evidence, order.query_id, order.plan_hash, self._gateway_key, self._gateway_log
            )
            dataset, taken = self._checked_plan(order, synced)
            try:
                receiver = order_receiver(order, self._ca, self.layout.trust_domain)
            except GatewayError:
                self.admission.give_back(taken)
                raise
        except GatewayError as err:
            err.query_id = err.query_id or order.query_id
            raise
        return _Admitted(order, evidence, head.size, dataset, taken, receiver)

    def execute(
        self,
        caller: Identity,
        order_bytes: bytes,
        signature: bytes,
        evidence: DispatchEvidence,
        timeout_s: float | None,
    ) -> Contribution:
        """Contribute to one signed order; raises a GatewayError on any refusal or failure."""

        def verified() -> None:
            verify(self._gateway_key, signature, order_bytes, what="execution order")

        return self._execute(caller, [order_bytes], [evidence], timeout_s, verified)[0]

    def execute_batch(
        self,
        caller: Identity,
        orders: Sequence[bytes],
        signature: bytes,
        evidence: Sequence[DispatchEvidence],
        timeout_s: float | None,
    ) -> list[Contribution]:
        """Contribute to a signed batch: consecutive orders of one lane, run as one MPC job.

        Every member is checked as if it had come alone; one refused member refuses
        the batch (the error names its query), and the batch's turns pass.
        """

        def verified() -> None:
            if len(evidence) != len(orders):  # how many orders a batch may hold: check_batch
                raise IntegrityError(
                    f"a batch's orders each come with their evidence: this one has "
                    f"{len(orders)} orders and {len(evidence)} evidences"
                )
            verify(self._gateway_key, signature, batch_message(orders), what="batch order")

        return self._execute(caller, orders, evidence, timeout_s, verified)

    def _execute(
        self,
        caller: Identity,
        order_bytes: Sequence[bytes],
        evidence: Sequence[DispatchEvidence],
        timeout_s: float | None,
        verified: Callable[[], None],
    ) -> list[Contribution]:
        """Check, record, run and seal the orders of one message (a batch, or one order).

        Every order is recorded in this node's witness log before anything runs,
        with the gateway's signed tree head that came with it, and so is its outcome.
        """
        orders: list[ExecutionOrder] = []
        members: list[_Admitted] = []
        in_turn = False  # the orders hold consecutive turns of one session: they can be passed
        try:
            verified()
            orders = [self._placed(data) for data in order_bytes]
            check_batch(orders)
            in_turn = True
            for i, (order, proof) in enumerate(zip(orders, evidence, strict=True)):
                # given back below if one is refused; the last count syncs them all (one fsync)
                members.append(self._admit(order, proof, synced=i == len(orders) - 1))
        except GatewayError as err:
            self._give_back(members)
            refused(self.witness, str(caller), order_bytes, orders, err.public_message)
            if in_turn:  # the gateway's own orders: their turns pass, the session stays
                first = orders[0]
                deadline = time.monotonic() + max(0.0, first.deadline_ms / 1000 - time.time())
                self.sessions.skip(first, deadline, turns=len(orders))
            raise
        try:
            received(
                self.witness, str(caller), [(m.order, m.evidence, m.log_size) for m in members]
            )
        except GatewayError:  # an unwritable witness log (a full disk): the orders count nowhere
            self._give_back(members)
            raise
        try:
            done = self._contribute(members, timeout_s)
        except Exception as err:
            self._give_back(members)
            reason = err.public_message if isinstance(err, GatewayError) else "internal error"
            failed = [{"reason": reason}] * len(orders)
            outcomes(self.witness, str(self.gateway), orders, "order.failed", failed)
            raise
        timings = [
            {"local_us": int(d.local_ms * 1000), "mpc_us": int(d.mpc_ms * 1000)} for d in done
        ]
        opened = any(d.blocks for d in done)  # else all is sealed, held until its release
        outcomes(self.witness, str(self.gateway), orders, "order.completed", timings, opened)
        return done

    def _give_back(self, members: Sequence[_Admitted]) -> None:
        for member in members:
            self.admission.give_back(member.taken)

    def _contribute(
        self, members: Sequence[_Admitted], timeout_s: float | None
    ) -> list[Contribution]:
        """Every member's local inputs, one MPC job for them all, each one's shares sealed."""
        first = members[0].order
        remaining = min(m.order.deadline_ms for m in members) / 1000 - time.time()
        if timeout_s is not None:
            remaining = min(remaining, timeout_s)
        if remaining <= 0:
            raise DeadlineExceededError(f"order {first.query_id} arrived after its deadline")
        deadline = time.monotonic() + remaining
        calls, local_ms = [], []
        for member in members:
            started = time.perf_counter()
            calls.append(self._local_inputs(member.order, member.dataset))
            local_ms.append((time.perf_counter() - started) * 1000)
        if len(calls) == 1:
            program, args = calls[0].program, calls[0].args
        else:
            program = BATCH_PROGRAM
            args = {"jobs": [{"program": c.program, "args": c.args} for c in calls]}
        what = f"{first.lane} lane, epoch {first.epoch} seq {first.sequence}"
        if len(members) > 1:
            what += f"..{first.sequence + len(members) - 1}"
        try:
            blocks, mpc_ms = self.sessions.run(first, program, args, deadline, len(members))
        except GatewayError as err:
            log.warning("query %s (%s) failed: %s", first.query_id, what, err.public_message)
            raise
        log.info(
            "queries %s (%s) done: local %.1f ms, mpc %.1f ms",
            ", ".join(m.order.query_id for m in members),
            what,
            sum(local_ms),
            mpc_ms,
        )
        done = []
        for position, (member, local) in enumerate(zip(members, local_ms, strict=True)):
            own = blocks if len(members) == 1 else _member_blocks(blocks, position)
            order = member.order
            shares = self.steps.keep(order, own)  # what the nodes steer a search with stays here
            # sealed even when empty (a search step): every release is then witnessed the same way
            shown, sealed = split_blocks(shares, computation_of(order.plan).visible(order.plan))
            digest, size = self.releases.hold(order, sealed, member.receiver)
            done.append(Contribution(shown, local, mpc_ms, digest, size))
        return done

    def _local_inputs(self, order: ExecutionOrder, dataset: DataSource) -> ProgramCall:
        """The MPC program and this node's fixed-shape inputs to it, computed locally."""
        plan, schema = order.plan, dataset.schema
        data = LocalData(
            cursor=dataset.cursor(),
            schema=schema,
            where=where_sql(schema, plan.filter),
            parties=len(order.parties),
            node=self.settings.name,
            node_key_pem=self.tls[2],
            holds_data=self.settings.role != "helper",
            opened=self.steps.opened(order),
        )
        return computation_of(plan).local_inputs(plan, order.step, data)

    def abort(self, lane: Lane, epoch: int, reason: str) -> None:
        if self.sessions.abort(lane, epoch, f"aborted by the gateway: {reason[:500]}"):
            log.info("%s lane's epoch %d aborted by the gateway: %s", lane, epoch, reason[:500])
        else:
            log.info("abort for %s lane epoch %d ignored: not this node's session", lane, epoch)

    def close(self) -> None:
        self.sessions.close()
        self.witness.close()
        self.usage.close()
        self.privacy.close()
        for dataset in self.datasets.values():
            close_dataset(dataset)


def _member_blocks(blocks: dict[str, Any], position: int) -> dict[str, Any]:
    """The blocks of a batch's member at ``position`` (the batch program names them so)."""
    prefix = f"{position}:"
    return {name[len(prefix) :]: b for name, b in blocks.items() if name.startswith(prefix)}
