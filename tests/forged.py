"""Orders as a compromised gateway (one holding the gateway's signing key) could make them.

What every test of a node's own checks needs: an execution order for any plan,
signed with the gateway's key (or another), and the audit evidence the node
demands, from a log of the attacker's own that the same key signs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.evidence import DispatchEvidence, log_origin
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.computations import AggregateRequest, Plan, Request, build, computation_of
from mpc_gateway.computations.aggregate import build_plan, parse_aggregate
from mpc_gateway.devnet.localnet import DATASETS, ConsortiumFiles, schema_path
from mpc_gateway.lanes import Lane
from mpc_gateway.orders import ExecutionOrder, Party
from mpc_gateway.pki import Identity, load_layout, load_signing_key
from mpc_gateway.policy import SignedApproval
from mpc_gateway.proto.v1 import node_pb2
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.settings import NodeSettings, load_settings

__all__ = ["Forged", "gateway_key", "count_plan", "dispatched", "parties", "forge"]


def gateway_key(pki_dir: Path) -> Ed25519PrivateKey:
    layout = load_layout(pki_dir)
    return load_signing_key(
        layout.signing_paths(Identity("gateway", "gateway", layout.trust_domain))[1]
    )


def count_plan(schema: DatasetSchema | None = None, purpose: str = "risk monitoring") -> Plan:
    request = AggregateRequest(
        dataset="loans", aggregates=(parse_aggregate("count"),), purpose=purpose
    )
    return build_plan(request, schema or load_schema(schema_path()), "analyst/alice")


def dispatched(files: ConsortiumFiles, request: Request, analyst: str) -> Plan:
    """``request``'s plan exactly as the gateway would dispatch it (every policy's controls)."""
    from mpc_gateway.gateway.governance import Governance

    schemas = {name: load_schema(schema_path(name)) for name in DATASETS}
    published = {n: files.policy(n) for n in files.nodes}
    governance = Governance(files.policy("consortium"), published, schemas, None)
    plan = build(request, schemas[request.dataset], analyst, len(files.nodes))
    role, _, name = analyst.partition("/")
    return governance.decide(Identity(role, name), plan).plan


def parties(files: ConsortiumFiles, lane: Lane = "short") -> tuple[Party, ...]:
    """The consortium's parties at their real MPC ports for ``lane`` (as the nodes' configs say)."""
    ports = {
        n: load_settings(NodeSettings, files.node_config(n)).mpc_port_of(lane) for n in files.nodes
    }
    return tuple(
        Party(index=i, name=n, host="127.0.0.1", port=ports[n]) for i, n in enumerate(files.nodes)
    )


@dataclass(frozen=True)
class Forged:
    order: ExecutionOrder
    data: bytes  # the order's canonical bytes
    signature: bytes
    evidence: DispatchEvidence

    def message(self) -> node_pb2.SignedOrder:
        evidence = node_pb2.AuditEvidence(
            entry=self.evidence.entry,
            index=self.evidence.index,
            proof=self.evidence.proof,
            checkpoint=self.evidence.checkpoint,
        )
        return node_pb2.SignedOrder(order=self.data, signature=self.signature, evidence=evidence)


def receiver_certificate(files: ConsortiumFiles, analyst: str) -> str:
    """``analyst``'s key-agreement certificate (PEM), or "" if the consortium has none for it."""
    layout = load_layout(files.pki_dir)
    role, _, name = analyst.partition("/")
    who = Identity(role, name, layout.trust_domain)
    if who not in layout.identities:
        return ""
    return layout.sealing_paths(who)[0].read_text()


def forge(
    files: ConsortiumFiles,
    plan: Plan,
    *,
    key: Ed25519PrivateKey | None = None,
    query_id: str = "forged",
    step: dict[str, object] | None = None,
    receiver: str | None = None,
    approvals: tuple[SignedApproval, ...] = (),
    lane: Lane | None = None,
    epoch: int | None = None,
    sequence: int = 0,
    deadline_s: float = 15.0,  # a loaded machine connects the MPC session slowly
) -> Forged:
    """``plan`` as an order signed with ``key`` (default: the gateway's), in a log it signs.

    In ``lane`` (default: the plan's computation's), at its MPC ports; due in ``deadline_s``.
    """
    signing = key or gateway_key(files.pki_dir)
    now = int(time.time() * 1000)
    lane = lane or computation_of(plan).lane
    order = ExecutionOrder(
        query_id=query_id,
        plan=plan,
        plan_hash=plan.plan_hash,
        lane=lane,
        epoch=now if epoch is None else epoch,
        sequence=sequence,
        parties=parties(files, lane),
        issued_at_ms=now,
        deadline_ms=now + int(deadline_s * 1000),
        step=step or {},
        receiver=receiver_certificate(files, plan.analyst) if receiver is None else receiver,
        approvals=approvals,
    )
    trust_domain = load_layout(files.pki_dir).trust_domain
    log = InMemoryAuditLog(
        origin=log_origin(trust_domain, "gateway", "gateway"),
        signing_key=signing,
        clock=lambda: now,
    )
    entry = log.append(
        AuditEvent(
            kind="query.submitted",
            actor=plan.analyst,
            query_id=query_id,
            timestamp_ms=now,
            details={"plan_hash": plan.plan_hash},
        )
    )
    head = log.signed_tree_head()
    evidence = DispatchEvidence(
        log.entry(entry.index), entry.index, tuple(log.inclusion_proof(entry.index)), head
    )
    data = order.canonical()
    return Forged(order, data, signing.sign(data), evidence)
