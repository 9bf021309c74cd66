"""A node's side of a batched release: one cosignature for all, or nothing handed to anyone."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.errors import IntegrityError, InvalidRequestError
from mpc_gateway.node.release import Releases
from mpc_gateway.orders import ExecutionOrder, Party
from tests.forged import count_plan

GATEWAY_LOG = "mpc.example/gateway/gateway"
NODE_LOG = "mpc.example/node/n0"
PLAN = count_plan()


def _order(query_id: str) -> ExecutionOrder:
    parties = tuple(Party(index=i, name=f"n{i}", host="10.0.0.1", port=7000 + i) for i in range(3))
    return ExecutionOrder(
        query_id=query_id,
        plan=PLAN,
        plan_hash=PLAN.plan_hash,
        lane="short",
        epoch=1,
        sequence=0,
        parties=parties,
        issued_at_ms=0,
        deadline_ms=1,
    )


class Consortium:
    """One node's Releases and a gateway log that (honestly) logs releases for it."""

    def __init__(self) -> None:
        self.gateway_key = Ed25519PrivateKey.generate()
        self.node_key = Ed25519PrivateKey.generate()
        self.restart_node()
        self.log = InMemoryAuditLog(
            origin=GATEWAY_LOG, signing_key=self.gateway_key, clock=lambda: 1
        )
        self.digests: dict[str, str] = {}

    def restart_node(self) -> None:
        """The node (re)started with its keys, on an empty witness log."""
        witness = InMemoryAuditLog(origin=NODE_LOG, signing_key=self.node_key, clock=lambda: 1)
        self.witness = AuditTrail(witness)
        self.node = Releases(
            "n0",
            0,
            NODE_LOG,
            self.node_key,
            self.gateway_key.public_key(),
            GATEWAY_LOG,
            self.witness,
        )

    def hold(self, query_id: str) -> None:
        receiver = X25519PrivateKey.generate().public_key()
        digest, _ = self.node.hold(_order(query_id), {"x": (7, [1])}, receiver)
        self.digests[query_id] = digest

    def released(self, query_ids: Sequence[str]) -> list[tuple[str, DispatchEvidence]]:
        """Release entries for ``query_ids`` under one new checkpoint, with their proofs."""
        indices = [
            self.log.append(
                AuditEvent(
                    kind="result.released",
                    actor="gateway/gateway",
                    query_id=q,
                    timestamp_ms=1,
                    details={
                        "plan_hash": PLAN.plan_hash,
                        "receiver": PLAN.analyst,
                        "sealed": {"n0": self.digests.get(q, "0" * 64)},
                    },
                )
            ).index
            for q in query_ids
        ]
        note = self.log.signed_tree_head()
        size = self.log.size()
        return [
            (
                q,
                DispatchEvidence(
                    self.log.entry(i), i, tuple(self.log.inclusion_proof(i, size)), note
                ),
            )
            for q, i in zip(query_ids, indices, strict=True)
        ]


@pytest.fixture()
def consortium() -> Consortium:
    return Consortium()


def test_one_checkpoint_is_cosigned_once_for_every_release_in_it(consortium: Consortium) -> None:
    for q in ("q1", "q2", "q3"):
        consortium.hold(q)
    ciphertexts, cosignature, size = consortium.node.release_all(
        consortium.released(["q1", "q2", "q3"]), 0, []
    )
    assert len(ciphertexts) == 3 and len(set(ciphertexts)) == 3
    assert size == 3 and consortium.node.cosigned_size == 3
    log = consortium.witness.log
    written = [AuditEvent.from_entry(log.entry(i)) for i in range(log.size())]
    assert [(e.kind, e.query_id) for e in written] == [
        ("result.released", q) for q in ("q1", "q2", "q3")
    ]
    assert {e.details["cosignature"] for e in written} == {cosignature}
    assert len(log.tree_heads()) == 1  # one write, one signed head


def test_a_batch_slipping_in_a_query_this_node_never_completed_hands_over_nothing(
    consortium: Consortium,
) -> None:
    consortium.hold("genuine")
    releases = consortium.released(["genuine", "never-ran"])
    with pytest.raises(InvalidRequestError, match="holds no sealed result of query never-ran") as e:
        consortium.node.release_all(releases, 0, [])
    assert e.value.query_id == "never-ran"
    assert consortium.node.cosigned_size == 0 and consortium.witness.log.size() == 0
    ciphertexts, _, _ = consortium.node.release_all(releases[:1], 0, [])  # still held
    assert len(ciphertexts) == 1


def test_a_batch_must_name_each_query_once_under_one_checkpoint(consortium: Consortium) -> None:
    consortium.hold("q1")
    consortium.hold("q2")
    first = consortium.released(["q1"])
    with pytest.raises(IntegrityError, match="names one query twice"):
        consortium.node.release_all([*first, *first], 0, [])
    later = consortium.released(["q2"])  # a checkpoint of its own
    with pytest.raises(IntegrityError, match="share one checkpoint"):
        consortium.node.release_all([*first, *later], 0, [])
    assert consortium.node.cosigned_size == 0
