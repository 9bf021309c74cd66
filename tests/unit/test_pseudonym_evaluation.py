"""A node's checks before it evaluates blinded national ids, attacked as a gateway would."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
    UnauthenticatedError,
)
from mpc_gateway.node.pseudonyms import Evaluator
from mpc_gateway.oprf import (
    MAX_POINTS,
    REQUESTED,
    SignedRequest,
    blind,
    check_points,
    evaluate,
    points_sha256,
    read_key_statement,
    request_sha256,
    save_key_share,
    shares_in_one_process,
    sign_request,
    verify,
)
from mpc_gateway.pki import ConsortiumLayout, Identity, init_consortium, load_ca, load_signing_key
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

Request = Callable[..., tuple[str, DispatchEvidence, list[bytes], SignedRequest]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    """A consortium whose analysts and nodes sign their pseudonym requests."""
    return init_consortium(
        tmp_path_factory.mktemp("pki"),
        nodes=("bank-a", "bank-b", "bank-c"),
        analysts=("alice", "bob"),
    )


def signed_by(
    pki: ConsortiumLayout, who: str, purpose: str, points: list[bytes], now_ms: int | None = None
) -> SignedRequest:
    identity = Identity.parse(who, pki.trust_domain)
    cert, key = pki.signing_paths(identity)
    return sign_request(identity, load_signing_key(key), cert.read_bytes(), purpose, points, now_ms)


def _evaluator(
    pki: ConsortiumLayout, name: str, party: int, share: Path | None, **kw: object
) -> Evaluator:
    return Evaluator(
        name,
        party,
        3,
        share,
        POLICY,
        UsageLedger(),
        kw["witness"],  # type: ignore[arg-type]
        kw["gateway_key"],  # type: ignore[arg-type]
        ORIGIN,
        NODE_SIGNING,
        load_ca(pki.ca_cert),
        pki.trust_domain,
    )


@pytest.fixture()
def setup(tmp_path: Path, pki: ConsortiumLayout) -> tuple[Evaluator, Request, AuditTrail]:
    share = shares_in_one_process(3, 1)[0]
    save_key_share(tmp_path / "share.json", share)
    gateway_key = Ed25519PrivateKey.generate()
    gateway = AuditTrail.open(tmp_path / "gateway.sqlite", gateway_key, ORIGIN)
    witness = AuditTrail.open(
        tmp_path / "witness.sqlite", Ed25519PrivateKey.generate(), "mpc-gateway.test/node/a/audit"
    )
    node = _evaluator(
        pki,
        "bank-a",
        1,
        tmp_path / "share.json",
        witness=witness,
        gateway_key=gateway_key.public_key(),
    )

    def request(
        n: int = 2,
        who: str = "analyst/alice",
        purpose: str = "aml screening",
        kind: str = REQUESTED,
        logged: list[bytes] | None = None,
        signed: SignedRequest | None = None,
        points: list[bytes] | None = None,
    ) -> tuple[str, DispatchEvidence, list[bytes], SignedRequest]:
        """A request as the gateway logs it, and as ``who`` signed it (unless ``signed``)."""
        points = points or [blind(f"NID-{i}").point for i in range(n)]
        query_id = uuid.uuid4().hex
        signed = signed or signed_by(pki, who, purpose, logged or points)
        details = {
            "purpose": purpose,
            "count": n,
            "points_sha256": points_sha256(logged or points),
            "request_sha256": request_sha256(signed),
        }
        record = lambda: gateway.record(kind, who, query_id=query_id, details=details)  # noqa: E731
        return query_id, gateway.sealed([record])[0], points, signed

    return node, request, witness


def _kinds(witness: AuditTrail) -> list[str]:
    return [AuditEvent.from_entry(e).kind for e in witness.log.entries()]


def test_a_logged_request_is_evaluated_with_the_node_s_share_and_witnessed(setup) -> None:
    node, request, witness = setup
    query_id, evidence, points, signed = request(3)
    done = node.answer("gateway/gateway", query_id, evidence, points, signed)
    key = done.key
    assert done.points == evaluate(key.share, check_points(points)) and key.party == 1
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
    assert entry.details["request_sha256"] == request_sha256(signed)


def test_points_other_than_the_logged_ones_or_another_entry_are_refused(setup) -> None:
    node, request, witness = setup
    query_id, evidence, points, signed = request(2)
    with pytest.raises(IntegrityError, match="not the 2 the gateway logged"):
        node.answer("gateway/gateway", query_id, evidence, [points[1], points[0]], signed)
    with pytest.raises(IntegrityError, match="not the pseudonyms.requested entry"):
        node.answer("gateway/gateway", uuid.uuid4().hex, evidence, points, signed)
    other_id, other, other_points, other_signed = request(2, kind="query.submitted")
    with pytest.raises(IntegrityError, match="not the pseudonyms.requested entry"):
        node.answer("gateway/gateway", other_id, other, other_points, other_signed)
    forged = DispatchEvidence(
        evidence.entry, evidence.index, evidence.proof, evidence.checkpoint[:-8]
    )
    with pytest.raises(IntegrityError):
        node.answer("gateway/gateway", query_id, forged, points, signed)
    assert _kinds(witness) == ["pseudonyms.refused"] * 4


def test_a_request_its_requester_did_not_sign_as_it_was_logged_is_refused(
    setup, pki: ConsortiumLayout
) -> None:
    """The gateway asking in alice's name, with points of its own: it could unblind the answers."""
    node, request, witness = setup
    points = [blind("NID-1").point]
    unsigned = SignedRequest(b"", b"", b"")
    with pytest.raises(UnauthenticatedError, match="not signed by analyst/alice"):
        node.answer("gateway/gateway", *request(1, signed=unsigned))
    alices = signed_by(pki, "analyst/alice", "aml screening", points)  # her request, replayed
    with pytest.raises(IntegrityError, match="its points_sha256 differ"):
        node.answer("gateway/gateway", *request(1, signed=alices))
    bobs = signed_by(pki, "analyst/bob", "aml screening", points)
    with pytest.raises(UnauthenticatedError, match="for .*analyst/bob, expected .*analyst/alice"):
        node.answer("gateway/gateway", *request(1, signed=bobs))
    query_id, evidence, mine, _ = request(1)
    other_purpose = signed_by(pki, "analyst/alice", "marketing", mine)
    with pytest.raises(IntegrityError, match="its purpose differ"):
        node.answer("gateway/gateway", query_id, evidence, mine, other_purpose)
    resigned = signed_by(pki, "analyst/alice", "aml screening", mine)  # not the logged body
    with pytest.raises(IntegrityError, match="not the one the gateway logged"):
        node.answer("gateway/gateway", query_id, evidence, mine, resigned)
    stale = signed_by(pki, "analyst/alice", "aml screening", points, now_ms=1)
    with pytest.raises(UnauthenticatedError, match="out of its time"):
        node.answer("gateway/gateway", *request(1, signed=stale, points=points))
    altered = SignedRequest(
        alices.body.replace(b"aml", b"AML"), alices.signature, alices.certificate
    )
    with pytest.raises(IntegrityError, match="signature does not verify"):
        node.answer("gateway/gateway", *request(1, signed=altered, points=points))
    assert _kinds(witness) == ["pseudonyms.refused"] * 7
    node.answer("gateway/gateway", *request(1))  # alice's own request still goes through


def test_a_signed_request_replayed_under_a_new_log_entry_is_refused(
    setup, pki: ConsortiumLayout
) -> None:
    """The gateway logs alice's request again and resends it: it would drain her allowance."""
    node, request, witness = setup
    points = [blind(f"NID-{i}").point for i in range(2)]
    alices = signed_by(pki, "analyst/alice", "aml screening", points)
    node.answer("gateway/gateway", *request(2, signed=alices, points=points))
    for _ in range(2):  # a fresh entry (new query id, checkpoint, proof) each time
        with pytest.raises(IntegrityError, match="answered the request analyst/alice signed"):
            node.answer("gateway/gateway", *request(2, signed=alices, points=points))
    assert _kinds(witness) == ["pseudonyms.evaluated"] + ["pseudonyms.refused"] * 2
    node.answer("gateway/gateway", *request(3))  # 2 + 3 of her 5 a day: replays spent nothing


def test_a_replay_is_found_after_midnight_by_a_restarted_node(
    setup, tmp_path: Path, pki: ConsortiumLayout
) -> None:
    """The request is remembered, on disk, under the day it was issued, not the day it returns."""
    node, request, _ = setup
    points = [blind("NID-9").point]
    signed = signed_by(pki, "analyst/alice", "aml screening", points)
    key, today = "pseudonym-request:" + request_sha256(signed), datetime.now(UTC).date()
    with UsageLedger(tmp_path / "usage.sqlite") as node.usage:
        node.answer("gateway/gateway", *request(1, signed=signed, points=points))
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    with UsageLedger(tmp_path / "usage.sqlite", clock=lambda: tomorrow) as node.usage:
        with pytest.raises(IntegrityError, match="answered the request analyst/alice signed"):
            node.answer("gateway/gateway", *request(1, signed=signed, points=points))
        assert node.usage.count(key, today) == 1
    later = datetime.now(UTC) + timedelta(days=2)  # long out of its time: forgotten
    with UsageLedger(tmp_path / "usage.sqlite", clock=lambda: later) as node.usage:
        node._forget_stale()
        assert node.usage.count(key, today) == 0


def test_policy_purpose_allowance_and_points_are_checked_before_anything_counts(setup) -> None:
    node, request, witness = setup
    with pytest.raises(PolicyDeniedError, match="allows analyst/bob no pseudonym evaluations"):
        node.answer("gateway/gateway", *request(1, who="analyst/bob"))
    with pytest.raises(PolicyDeniedError, match="for aml screening"):
        node.answer("gateway/gateway", *request(1, purpose="marketing"))
    query_id, evidence, _, signed = request(2, logged=[bytes(32), bytes(32)])
    with pytest.raises(InvalidRequestError, match="blinded national id 0 is not a point"):
        node.answer("gateway/gateway", query_id, evidence, [bytes(32), bytes(32)], signed)
    many = [blind("NID-1").point] * (MAX_POINTS + 1)  # as a gateway that logged them sends
    with pytest.raises(InvalidRequestError, match=f"1 to {MAX_POINTS} blinded national ids, not"):
        node.answer("gateway/gateway", *request(MAX_POINTS + 1, points=many))
    node.answer("gateway/gateway", *request(4))  # 4 of alice's 5 a day
    with pytest.raises(
        BudgetExhaustedError, match="evaluates 5 national ids a day for analyst/alice"
    ):
        node.answer("gateway/gateway", *request(2))
    node.answer("gateway/gateway", *request(1))  # the refused 2 counted nothing
    node.answer("gateway/gateway", *request(50, who="node/bank-b"))  # its own allowance
    assert _kinds(witness).count("pseudonyms.evaluated") == 3


def test_a_node_without_a_key_share_or_with_another_party_s_refuses(
    setup, tmp_path: Path, pki: ConsortiumLayout
) -> None:
    node, request, witness = setup
    keyless = _evaluator(pki, "bank-a", 1, None, witness=witness, gateway_key=node._gateway_key)
    with pytest.raises(ConfigurationError, match="holds no share of the pseudonym key"):
        keyless.answer("gateway/gateway", *request(1))
    with pytest.raises(
        ConfigurationError, match="party 1's share among 3 nodes; bank-b is party 2"
    ):
        _evaluator(
            pki,
            "bank-b",
            2,
            tmp_path / "share.json",
            witness=witness,
            gateway_key=node._gateway_key,
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
