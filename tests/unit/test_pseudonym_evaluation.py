"""A node's checks before it evaluates blinded national ids, attacked as a gateway would."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.reconcile_pseudonyms import reconcile_pseudonyms
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.errors import (
    BudgetExhaustedError,
    ConfigurationError,
    IntegrityError,
    InvalidRequestError,
    PolicyDeniedError,
)
from mpc_gateway.node.pseudonyms import Evaluator
from mpc_gateway.oprf import (
    REQUESTED,
    blind,
    evaluate,
    points_sha256,
    read_key_statement,
    save_key_share,
    shares_in_one_process,
    verify,
)
from mpc_gateway.policy import Policy, UsageLedger
from mpc_gateway.policy.models import PseudonymPolicy

ORIGIN = "mpc-gateway.test/gateway/gateway/audit"
POLICY = Policy(
    owner="bank-a",
    pseudonyms=PseudonymPolicy(
        principals=("analyst/alice", "node/*"),
        purposes=("aml screening",),
        max_per_day=5,
        max_per_day_for={"node/*": 100},
    ),
)

NODE_KEY = Ed25519PrivateKey.generate()
NODE_SIGNING = (NODE_KEY, b"-----BEGIN CERTIFICATE-----")  # the key is what these tests check

Request = Callable[..., tuple[str, DispatchEvidence, list[bytes]]]


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Evaluator, Request, AuditTrail]:
    share = shares_in_one_process(3, 1)[0]
    save_key_share(tmp_path / "share.json", share)
    gateway_key = Ed25519PrivateKey.generate()
    gateway = AuditTrail.open(tmp_path / "gateway.sqlite", gateway_key, ORIGIN)
    witness = AuditTrail.open(
        tmp_path / "witness.sqlite", Ed25519PrivateKey.generate(), "mpc-gateway.test/node/a/audit"
    )
    node = Evaluator(
        "bank-a",
        1,
        3,
        tmp_path / "share.json",
        POLICY,
        UsageLedger(),
        witness,
        gateway_key.public_key(),
        ORIGIN,
        NODE_SIGNING,
    )

    def request(
        n: int = 2,
        who: str = "analyst/alice",
        purpose: str = "aml screening",
        kind: str = REQUESTED,
        logged: list[bytes] | None = None,
    ) -> tuple[str, DispatchEvidence, list[bytes]]:
        points = [blind(f"NID-{i}").point for i in range(n)]
        query_id = uuid.uuid4().hex
        details = {"purpose": purpose, "count": n, "points_sha256": points_sha256(logged or points)}
        record = lambda: gateway.record(kind, who, query_id=query_id, details=details)  # noqa: E731
        return query_id, gateway.sealed([record])[0], points

    return node, request, witness


def _kinds(witness: AuditTrail) -> list[str]:
    return [AuditEvent.from_entry(e).kind for e in witness.log.entries()]


def test_a_logged_request_is_evaluated_with_the_node_s_share_and_witnessed(setup) -> None:
    node, request, witness = setup
    query_id, evidence, points = request(3)
    done = node.answer("gateway/gateway", query_id, evidence, points)
    key = done.key
    assert done.points == [evaluate(key.share, p) for p in points] and key.party == 1
    assert verify(key.public.shares[0], points, done.points, done.proof)
    NODE_KEY.public_key().verify(done.shown.signature, done.shown.statement)
    assert read_key_statement(done.shown.statement) == ("bank-a", 1, key.public)
    [entry] = [AuditEvent.from_entry(e) for e in witness.log.entries()]
    assert (entry.kind, entry.query_id, entry.details["count"]) == (
        "pseudonyms.evaluated",
        query_id,
        3,
    )
    assert entry.details["requester"] == "analyst/alice"
    assert entry.details["gateway_checkpoint"] == evidence.checkpoint


def test_points_other_than_the_logged_ones_or_another_entry_are_refused(setup) -> None:
    node, request, witness = setup
    query_id, evidence, points = request(2)
    with pytest.raises(IntegrityError, match="not the 2 the gateway logged"):
        node.answer("gateway/gateway", query_id, evidence, [points[1], points[0]])
    with pytest.raises(IntegrityError, match="not the pseudonyms.requested entry"):
        node.answer("gateway/gateway", uuid.uuid4().hex, evidence, points)
    other_id, other, other_points = request(2, kind="query.submitted")
    with pytest.raises(IntegrityError, match="not the pseudonyms.requested entry"):
        node.answer("gateway/gateway", other_id, other, other_points)
    forged = DispatchEvidence(
        evidence.entry, evidence.index, evidence.proof, evidence.checkpoint[:-8]
    )
    with pytest.raises(IntegrityError):
        node.answer("gateway/gateway", query_id, forged, points)
    assert _kinds(witness) == ["pseudonyms.refused"] * 4


def test_policy_purpose_allowance_and_points_are_checked_before_anything_counts(setup) -> None:
    node, request, witness = setup
    with pytest.raises(PolicyDeniedError, match="allows analyst/bob no pseudonym evaluations"):
        node.answer("gateway/gateway", *request(1, who="analyst/bob"))
    with pytest.raises(PolicyDeniedError, match="for aml screening"):
        node.answer("gateway/gateway", *request(1, purpose="marketing"))
    query_id, evidence, points = request(2, logged=[bytes(32), bytes(32)])
    with pytest.raises(InvalidRequestError, match="blinded national id 0 is not a point"):
        node.answer("gateway/gateway", query_id, evidence, [bytes(32), bytes(32)])
    node.answer("gateway/gateway", *request(4))  # 4 of alice's 5 a day
    with pytest.raises(
        BudgetExhaustedError, match="evaluates 5 national ids a day for analyst/alice"
    ):
        node.answer("gateway/gateway", *request(2))
    node.answer("gateway/gateway", *request(1))  # the refused 2 counted nothing
    node.answer("gateway/gateway", *request(50, who="node/bank-b"))  # its own allowance
    assert _kinds(witness).count("pseudonyms.evaluated") == 3


def test_a_node_without_a_key_share_or_with_another_party_s_refuses(setup, tmp_path: Path) -> None:
    node, request, witness = setup
    keyless = Evaluator(
        "bank-a",
        1,
        3,
        None,
        POLICY,
        UsageLedger(),
        witness,
        node._gateway_key,
        ORIGIN,
        NODE_SIGNING,
    )
    with pytest.raises(ConfigurationError, match="holds no share of the pseudonym key"):
        keyless.answer("gateway/gateway", *request(1))
    with pytest.raises(
        ConfigurationError, match="party 1's share among 3 nodes; bank-b is party 2"
    ):
        Evaluator(
            "bank-b",
            2,
            3,
            tmp_path / "share.json",
            POLICY,
            UsageLedger(),
            witness,
            node._gateway_key,
            ORIGIN,
            NODE_SIGNING,
        )


def _event(kind: str, query_id: str) -> AuditEvent:
    return AuditEvent(kind=kind, actor="a", query_id=query_id, timestamp_ms=0, details={})


def test_reconciling_finds_an_evaluation_the_gateway_s_log_lost_or_never_had() -> None:
    gateway = [_event("pseudonyms.requested", "q1"), _event("pseudonyms.answered", "q1")]
    nodes = {n: [_event("pseudonyms.evaluated", "q1")] for n in ("a", "b")}
    assert reconcile_pseudonyms(gateway, nodes) == (2, [])
    matched, problems = reconcile_pseudonyms(gateway[:1], nodes)  # the outcome cut away
    assert matched == 0 and problems[0] == (
        "node a evaluated pseudonym request q1, but the gateway's log has no outcome for it"
    )
    _, problems = reconcile_pseudonyms([], nodes)
    assert "does not hold the request" in problems[0]
    _, problems = reconcile_pseudonyms(gateway, {"a": nodes["a"], "b": []})
    assert problems == [
        "the gateway's log answered pseudonym request q1, "
        "but node(s) b recorded no evaluation of it"
    ]
