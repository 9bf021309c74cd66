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

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from mpc_gateway.audit.evidence import DispatchEvidence, log_origin, verify_evidence
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import VOCABULARY, LocalData, ProgramCall, computation_of
from mpc_gateway.errors import (
    BudgetExhaustedError,
    ConfigurationError,
    DeadlineExceededError,
    GatewayError,
    IntegrityError,
    InvalidQueryError,
)
from mpc_gateway.lanes import Lane
from mpc_gateway.node.lanes import LaneSessions, worker_spawner
from mpc_gateway.node.release import Contribution, Releases, order_receiver, split_blocks
from mpc_gateway.node.sources import DataSource, close_dataset, open_dataset
from mpc_gateway.node.steps import StepMemory
from mpc_gateway.orders import ExecutionOrder, SessionOrder
from mpc_gateway.pki import (
    Identity,
    load_ca,
    load_layout,
    load_signing_key,
    load_verified_signing_cert,
    tls_credentials_bytes,
    verify,
)
from mpc_gateway.policy import (
    RequiredApproval,
    UsageLedger,
    evaluate,
    load_policy,
    privacy_charges,
    require_approvals,
    usage_key,
)
from mpc_gateway.privacy import Charge, PrivacyLedger
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.settings import NodeSettings

__all__ = ["Node", "Contribution"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Taken:
    """What one order took of the daily limit and privacy budgets (given back if it fails)."""

    key: str
    day: date
    order: str
    charged: bool


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
        td = self.layout.trust_domain
        self._gateway_log = log_origin(td, "gateway", settings.gateway)
        _, node_key = self.layout.signing_paths(self.identity)
        signing_key, witness_log = load_signing_key(node_key), log_origin(td, "node", settings.name)
        self.witness = AuditTrail.open(settings.audit_db, signing_key, witness_log)
        self.releases = Releases(
            settings.name,
            self.party_index,
            witness_log,
            signing_key,
            self._gateway_key,
            self._gateway_log,
            self.witness,
        )

    def _verified_order(self, order_bytes: bytes, signature: bytes) -> ExecutionOrder:
        verify(self._gateway_key, signature, order_bytes, what="execution order")
        order = ExecutionOrder.from_bytes(order_bytes)
        self.sessions.check_placement(order.lane, order.parties)
        return order

    def open_session(
        self, order_bytes: bytes, signature: bytes, timeout_s: float | None
    ) -> SessionOrder:
        """Connect the lane's MPC session the gateway announces, ahead of its first query."""
        verify(self._gateway_key, signature, order_bytes, what="session order")
        order = SessionOrder.from_bytes(order_bytes)
        self.sessions.open(order, time.monotonic() + (timeout_s or 30.0))
        log.info("%s lane's MPC session epoch %d connected ahead of use", order.lane, order.epoch)
        return order

    def _checked_plan(self, order: ExecutionOrder) -> tuple[DataSource, _Taken]:
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
        return dataset, self._check_policy(order)

    def _check_policy(self, order: ExecutionOrder) -> _Taken:
        """This institution's own policy, on the signed order: whatever the gateway decided.

        Every order it lets run counts once on the daily limit (a quantile search
        counts each round) and pays its privacy cost from this node's own budgets.
        """
        plan, now = order.plan, datetime.now(UTC)
        key = usage_key(plan.dataset, plan.analyst)
        charges = privacy_charges([self.policy], plan, plan.analyst)
        decision = evaluate(
            self.policy,
            plan,
            plan.analyst,
            now,
            self.usage.count(key),
            check_plan_controls=True,
            privacy_spent=self.privacy.spent_by_holder(charges),
        )
        decision.raise_if_denied()
        if decision.approval is not None:
            need = RequiredApproval(decision.owner, decision.approval)
            require_approvals(
                [need],
                order.approvals,
                plan.plan_hash,
                self._ca,
                now,
                trust_domain=self.layout.trust_domain,
                query_id=order.query_id,  # a decision approves the one query it was given on
            )
        return self._take(order, key, charges)

    def _take(self, order: ExecutionOrder, key: str, charges: list[Charge]) -> _Taken:
        plan, day = order.plan, self.usage.today()
        limit = self.policy.datasets[plan.dataset].max_queries_per_day
        if not self.usage.record_if_below(key, limit, day, durable=not charges):
            raise BudgetExhaustedError(
                f"refused by rule dataset.daily_limit: {self.settings.name} allows "
                f"{plan.analyst} {limit} queries a day on {plan.dataset!r}, all taken",
                rule="dataset.daily_limit",
            )
        slot = f"{order.query_id}/{order.lane}/{order.epoch}/{order.sequence}"
        taken = _Taken(key, day, slot, bool(charges))
        try:
            if charges:
                self.privacy.charge(taken.order, charges)
        except BudgetExhaustedError:
            self.usage.release(key, 1, day)
            raise
        return taken

    def _give_back(self, taken: _Taken) -> None:
        """An order this node did not complete released nothing: it counts nowhere."""
        self.usage.release(taken.key, 1, taken.day)
        if taken.charged:
            self.privacy.refund(taken.order)

    def execute(
        self,
        caller: Identity,
        order_bytes: bytes,
        signature: bytes,
        evidence: DispatchEvidence,
        timeout_s: float | None,
    ) -> Contribution:
        """Contribute to one signed order; raises a GatewayError on any refusal or failure.

        Every order is recorded in this node's witness log before anything runs,
        with the gateway's signed tree head that came with it, and so is its outcome.
        """
        order: ExecutionOrder | None = None
        try:
            order = self._verified_order(order_bytes, signature)
            head = verify_evidence(
                evidence, order.query_id, order.plan_hash, self._gateway_key, self._gateway_log
            )
            dataset, taken = self._checked_plan(order)
            try:
                receiver = order_receiver(order, self._ca, self.layout.trust_domain)
            except GatewayError:
                self._give_back(taken)
                raise
        except GatewayError as err:
            # an order whose signature checked is named, so auditors can match the dispatch
            named = {} if order is None else order.witness_fields()
            with self.witness.batch():
                self.witness.record(
                    "order.refused",
                    str(caller),
                    query_id=None if order is None else order.query_id,
                    decision="refused",
                    details={
                        "reason": err.public_message,
                        "order_sha256": hashlib.sha256(order_bytes).hexdigest(),
                        **named,
                    },
                )
                self.witness.seal()
            if order is not None:  # the gateway's own order: its turn passes, the session stays
                deadline = time.monotonic() + max(0.0, order.deadline_ms / 1000 - time.time())
                self.sessions.skip(order, deadline)
            raise
        try:
            with self.witness.batch():  # signed at once: a head covers the receipt while it runs
                self.witness.record(
                    "order.received",
                    str(caller),
                    query_id=order.query_id,
                    dataset=order.plan.dataset,
                    decision="accepted",
                    details={
                        **order.witness_fields(),
                        "gateway_checkpoint": evidence.checkpoint,
                        "gateway_log_size": head.size,
                        "submission_index": evidence.index,
                    },
                )
                self.witness.seal()
        except GatewayError:  # an unwritable witness log (a full disk): the order counts nowhere
            self._give_back(taken)
            raise
        try:
            done = self._contribute(order, dataset, timeout_s, receiver)
        except Exception as err:
            self._give_back(taken)
            reason = err.public_message if isinstance(err, GatewayError) else "internal error"
            self._outcome(order, "order.failed", "failed", {"reason": reason})
            raise
        self._outcome(
            order,
            "order.completed",
            "contributed",
            {"local_us": int(done.local_ms * 1000), "mpc_us": int(done.mpc_ms * 1000)},
        )
        return done

    def _outcome(
        self, order: ExecutionOrder, kind: str, decision: str, details: dict[str, Any]
    ) -> None:
        with self.witness.batch():
            self.witness.record(
                kind,
                str(self.gateway),
                query_id=order.query_id,
                dataset=order.plan.dataset,
                decision=decision,
                details={**order.witness_fields(), **details},
            )
            self.witness.seal()

    def _contribute(
        self,
        order: ExecutionOrder,
        dataset: DataSource,
        timeout_s: float | None,
        receiver: X25519PublicKey,
    ) -> Contribution:
        remaining = order.deadline_ms / 1000 - time.time()
        if timeout_s is not None:
            remaining = min(remaining, timeout_s)
        if remaining <= 0:
            raise DeadlineExceededError(f"order {order.query_id} arrived after its deadline")
        deadline = time.monotonic() + remaining
        started = time.perf_counter()
        call = self._local_inputs(order, dataset)
        local_ms = (time.perf_counter() - started) * 1000
        try:
            blocks, mpc_ms = self.sessions.run(order, call.program, call.args, deadline)
        except GatewayError as err:
            log.warning(
                "query %s (%s lane, seq %d) failed: %s",
                order.query_id,
                order.lane,
                order.sequence,
                err.public_message,
            )
            raise
        log.info(
            "query %s (%s lane, epoch %d seq %d) done: local %.1f ms, mpc %.1f ms",
            order.query_id,
            order.lane,
            order.epoch,
            order.sequence,
            local_ms,
            mpc_ms,
        )
        shares = self.steps.keep(order, blocks)  # what the nodes steer a search with stays here
        # sealed even when empty (a search step): every release is then witnessed the same way
        shown, sealed = split_blocks(shares, computation_of(order.plan).visible(order.plan))
        digest, size = self.releases.hold(order, sealed, receiver)
        return Contribution(shown, local_ms, mpc_ms, digest, size)

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
