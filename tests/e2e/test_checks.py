"""Real-time entity checks through the real consortium, against the pooled plaintext alerts.

Per key only the bit "flagged at some member" or the number of members that flagged
it reaches the analyst; the gateway relays it sealed and learns nothing (no block is
opened to it); the filter (kind, age) applies at every node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import grpc
import pandas as pd
import pytest
from typer.testing import CliRunner

from mpc_gateway.cli.app import app
from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.check import alert_filter
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.devnet.screening_demo import UNKNOWN_LEI, members_per_key, watchlist_overlap
from mpc_gateway.devnet.synth import national_id
from mpc_gateway.errors import (
    InvalidQueryError,
    InvalidRequestError,
    PolicyDeniedError,
    UnauthenticatedError,
)
from mpc_gateway.oprf import (
    MAX_POINTS,
    blind,
    joint_key,
    load_key_share,
    pseudonyms_with_key,
    sign_request,
)
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.proto.v1 import gateway_pb2, node_pb2
from mpc_gateway.rpc.convert import result_from_proto
from tests.e2e.conftest import client_for, gateway_events, gateway_stub

pytestmark = pytest.mark.e2e
QUERIES_ONLY = True  # the session's shared consortium (conftest)


@pytest.fixture(scope="module")
def alice(consortium: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(consortium, timeout_s=60) as client:
        yield client


def _sample(members: dict[str, int]) -> list[str]:
    """A key flagged at each number of members present, and one flagged nowhere."""
    picked = {n: k for k, n in sorted(members.items(), reverse=True)}
    return [*(picked[n] for n in sorted(picked)), UNKNOWN_LEI]


def test_members_and_flags_per_counterparty_equal_the_pooled_alerts(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    members = members_per_key(consortium.files, "counterparty_lei")
    keys = _sample(members)
    assert {members.get(k, 0) for k in keys} >= {0, 1, 2}  # the data overlaps across members
    counted = alice.check(keys, "members")
    assert counted.records() == [{"key": k, "members": members.get(k, 0)} for k in keys]
    flagged = alice.check(keys)
    assert flagged.records() == [{"key": k, "flagged": k in members} for k in keys]


def test_a_kind_and_an_age_filter_apply_at_every_member(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    where = alert_filter("aml", 60, "")
    recent = members_per_key(consortium.files, "counterparty_lei", where)
    anytime = members_per_key(consortium.files, "counterparty_lei")
    keys = sorted(set(anytime) - set(recent))[:2] + sorted(recent)[:3]
    result = alice.check(keys, "members", where=where)
    assert result.records() == [{"key": k, "members": recent.get(k, 0)} for k in keys]
    assert any(recent.get(k, 0) == 0 < anytime[k] for k in keys)  # older or other alerts


def test_persons_are_checked_by_pseudonym_and_the_gateway_learns_nothing(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    members = members_per_key(consortium.files, "person_pseudonym")
    keys = _sample(members)
    message = alice.request(
        "check", "alerts", keys=keys, key_column="person_pseudonym", question="members"
    )
    reply: gateway_pb2.ComputationResult = alice._call(alice._stub.Run, message)
    assert result_from_proto(reply).public == {}  # nothing was opened to the gateway
    opened = alice._open(reply, None)
    assert opened.records() == [{"key": k, "members": members.get(k, 0)} for k in keys]
    audit = b"".join(p.read_bytes() for p in consortium.files.root.glob("audit.sqlite*"))
    assert b"check" in audit  # the query is logged (the write-ahead log holds the newest)
    assert not any(k.encode() in audit for k in keys)  # with the batch's digest, not its keys


def test_persons_are_screened_by_national_id_and_no_one_else_sees_an_id_or_a_pseudonym(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    files = consortium.files
    key = joint_key([load_key_share(files.key_share(n)) for n in files.nodes])
    members = members_per_key(files, "person_pseudonym")
    ids = [national_id(p) for p in range(60)] + ["NID-999999999"]  # the alerts' persons, and one
    pseudonyms = alice.pseudonyms(ids)
    assert pseudonyms == pseudonyms_with_key(ids, key)  # the pseudonyms the data holds
    result = alice.check(pseudonyms, "members", key_column="person_pseudonym")
    assert result.records() == [{"key": p, "members": members.get(p, 0)} for p in pseudonyms]
    assert {members.get(p, 0) for p in pseudonyms} >= {0, 1, 2}
    # no file of the consortium (logs, audit and usage databases, data, keys) holds an id,
    # and no log a pseudonym asked about
    for path in (p for p in files.root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert b"NID-0000000" not in data and b"NID0000000" not in data, path
        if path.suffix != ".parquet":
            assert not any(p.encode() in data for p in pseudonyms), path
    events = gateway_events(consortium)
    [asked] = [e for e in events if e["kind"] == "pseudonyms.requested"][-1:]
    [answered] = [e for e in events if e["query_id"] == asked["query_id"]][1:]
    assert (asked["details"]["count"], answered["kind"]) == (len(ids), "pseudonyms.answered")
    assert asked["actor"] == "analyst/alice" and asked["details"]["purpose"] == "testing"


def test_an_institution_pseudonymises_its_customers_file_as_its_node(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    files = consortium.files
    ids = ["NID-000000003", "nid 000000004", "NID-000000005"]
    source = tmp_path / "customers.csv"
    pd.DataFrame({"customer": ["a", "b", "c"], "national_id": ids}).to_csv(source, index=False)
    out = tmp_path / "customers.parquet"
    result = CliRunner().invoke(
        app,
        ["oprf", "pseudonymise", str(source), "--out", str(out), "--identity", "node/bank-a"]
        + ["--gateway", files.gateway_address, "--pki", str(files.pki_dir), "--purpose", "testing"],
    )
    assert result.exit_code == 0, result.output
    written = duckdb.sql(f"SELECT * FROM '{out}'").df()
    assert list(written.columns) == ["customer", "person_pseudonym"]
    key = joint_key([load_key_share(files.key_share(n)) for n in files.nodes])
    assert list(written["person_pseudonym"]) == pseudonyms_with_key(ids, key)
    events = gateway_events(consortium)
    assert events[-2]["kind"] == "pseudonyms.requested" and events[-2]["actor"] == "node/bank-a"


def test_pseudonym_requests_are_refused_at_the_gateway_and_at_a_node(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    with pytest.raises(PolicyDeniedError, match="pseudonym evaluations for") as refused:
        alice.pseudonyms(["NID-000000001"], purpose="marketing")
    assert refused.value.query_id
    assert alice.signer is not None
    signer = alice.signer

    def signed_by_alice(points: list[bytes]) -> gateway_pb2.PseudonymRequest:
        signed = sign_request(alice._identity, *signer, "testing", points)
        return gateway_pb2.PseudonymRequest(
            points=points,
            purpose="testing",
            signed=gateway_pb2.SignedPseudonymRequest(
                body=signed.body, signature=signed.signature, signing_certificate=signed.certificate
            ),
        )

    with pytest.raises(InvalidRequestError, match="not a point of edwards25519"):
        alice._call(alice._stub.Pseudonymise, signed_by_alice([bytes(32)]))
    many = [blind("NID-1").point] * (MAX_POINTS + 1)  # the client would send two requests
    with pytest.raises(InvalidRequestError, match=f"1 to {MAX_POINTS} blinded national ids"):
        alice._call(alice._stub.Pseudonymise, signed_by_alice(many))
    # what a compromised gateway would do: ask in alice's name for points of its own choosing
    unsigned = gateway_pb2.PseudonymRequest(points=[blind("NID-1").point], purpose="testing")
    with pytest.raises(UnauthenticatedError, match="not signed by analyst/alice") as refused:
        alice._call(alice._stub.Pseudonymise, unsigned)
    refusal = [e for e in gateway_events(consortium) if e["query_id"] == refused.value.query_id]
    assert [e["kind"] for e in refusal] == ["pseudonyms.refused"]
    with client_for(consortium, "auditor/audrey") as audrey:
        with pytest.raises(PolicyDeniedError, match="Pseudonymise"):
            audrey.pseudonyms(["NID-000000001"])
    # what a compromised gateway sends: points no request it logged names
    stub = gateway_stub(consortium, "bank-a")
    order = node_pb2.PseudonymOrder(query_id="f" * 32, points=[blind("NID-1").point])
    with pytest.raises(grpc.RpcError) as err:
        stub.Pseudonymise(order, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # no signed head covers it
    assert "signatures" in str(err.value.details())


def test_a_watchlist_releases_only_how_many_of_its_keys_any_member_flagged(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    members = members_per_key(consortium.files, "counterparty_lei")
    watchlist = [*sorted(members)[:40], *(f"5493{i:012d}XXXX00" for i in range(60))]
    result = alice.check(watchlist, "overlap")
    assert result.records() == [{"keys": 100, "overlap": 40}]
    assert result.outcome.display().notes == ("40 of 100 keys flagged at some member",)


def test_a_watchlist_larger_than_a_batch_and_the_old_transport_limit_is_screened(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    """100,001 keys in 4.4 MB: over the per-key answers' 100,000 keys and over 4 MiB."""
    members = members_per_key(consortium.files, "counterparty_lei")
    known = sorted(members)
    unknown = [
        f"5493{i:012d}XXXX00/not-a-member's-{i:08d}" for i in range(MAX_BATCH + 1 - len(known))
    ]
    watchlist = [*known, *unknown]
    assert len(watchlist) > MAX_BATCH and sum(len(k) for k in watchlist) > 4 * 1024 * 1024
    with pytest.raises(InvalidQueryError, match="at most 100,000 keys .* overlap takes up to"):
        alice.check(watchlist)  # an answer per key: a batch's size at most
    result = alice.check(watchlist, "overlap")
    assert result.records() == [{"keys": len(watchlist), "overlap": len(known)}]


def test_a_watchlist_s_amount_is_the_members_alerts_on_its_keys_summed(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    """The intersection-sum: every member's alert amounts on the watchlist's keys, one total."""
    where = alert_filter("aml", None, "")
    members = members_per_key(consortium.files, "counterparty_lei", where)
    watchlist = [*sorted(members)[:25], *(f"5493{i:012d}XXXX00" for i in range(25))]
    count, amount = watchlist_overlap(consortium.files, watchlist, where)
    result = alice.check(watchlist, "overlap", where=where, amount=True)
    assert count == 25
    assert result.records() == [{"keys": 50, "overlap": 25, "amount": str(amount)}]
    with pytest.raises(InvalidQueryError, match="summed over a watchlist's overlap only"):
        alice.check(watchlist, "members", amount=True)
