"""Results sealed to their receiver and released only once every node witnessed the release.

The gateway relays ciphertexts: it holds no key that opens them, its log and its
reply carry no released value, and another analyst's key opens nothing. The
client accepts a result only with every node's cosignature on the checkpoint
that logs its release, and with each ciphertext exactly as the log names it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from cryptography import x509

from mpc_gateway.audit.sqlite import load_raw
from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import AggregateRequest, Plan, build
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.devnet.localnet import LocalConsortium, schema_path
from mpc_gateway.errors import IntegrityError
from mpc_gateway.orders.release import open_relayed
from mpc_gateway.pki import Identity, load_ca, load_layout
from mpc_gateway.pki.receiver import ReceiverKey, load_receiver_key
from mpc_gateway.proto.v1 import gateway_pb2, node_pb2
from mpc_gateway.query.schema import load_schema
from mpc_gateway.rpc.convert import result_from_proto
from tests.e2e.conftest import client_for, gateway_stub
from tests.forged import forge, receiver_certificate
from tests.syncs import strace_syncs, syncs_in

pytestmark = pytest.mark.e2e
QUERIES_ONLY = True  # the session's shared consortium (conftest)

AGGREGATES = ["count", "sum:exposure", "mean:exposure"]


@pytest.fixture(scope="module")
def alice(consortium: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(consortium, timeout_s=60) as client:
        yield client


@pytest.fixture(scope="module")
def relayed(alice: GatewayClient) -> gateway_pb2.ComputationResult:
    """What the gateway sends back for one grouped aggregate, as it is on the wire."""
    message = alice.request("aggregate", "loans", aggregates=AGGREGATES, group_by="sector")
    reply: gateway_pb2.ComputationResult = alice._call(alice._stub.Run, message)
    return reply


def _key(consortium: LocalConsortium, analyst: str) -> ReceiverKey:
    layout = load_layout(consortium.files.pki_dir)
    return load_receiver_key(
        *layout.sealing_paths(Identity("analyst", analyst, layout.trust_domain))
    )


def _released_texts(alice: GatewayClient, reply: gateway_pb2.ComputationResult) -> list[str]:
    outcome = alice._open(reply, None).outcome
    texts = [str(v) for _, values in outcome.rows for v in values if v is not None]
    assert any(len(t) >= 7 for t in texts)  # sums of exposure: long, distinctive numbers
    return [t for t in texts if len(t) >= 7]


def test_the_gateway_relays_only_ciphertexts_and_the_receiver_opens_the_result(
    consortium: LocalConsortium, alice: GatewayClient, relayed: gateway_pb2.ComputationResult
) -> None:
    assert len(relayed.sealed.shares) == 3
    wire = relayed.SerializeToString()
    texts = _released_texts(alice, relayed)
    assert not any(t.encode() in wire for t in texts)  # the reply holds no released value
    audit = (consortium.files.root / "audit.sqlite").read_bytes()
    gateway_log = (consortium.files.root / "logs" / "gateway.log").read_bytes()
    assert not any(t.encode() in audit or t.encode() in gateway_log for t in texts)
    # the same query through the client gives the same table as the opened reply
    again = alice.query("loans", AGGREGATES, group_by="sector").outcome
    assert again.rows == alice._open(relayed, None).outcome.rows


def test_the_gateway_drives_a_quantile_search_without_learning_its_path_or_result(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    """The nodes open each round's brackets among themselves; the gateway only counts rounds."""
    message = alice.request("quantile", "loans", column="exposure", levels=["0.5", "0.9"])
    reply: gateway_pb2.ComputationResult = alice._call(alice._stub.Run, message)
    relayed = result_from_proto(reply)
    assert set(relayed.public) == {"rounds"} and relayed.public["rounds"][0] >= 2
    quantiles = [v for _, v in alice._open(reply, None).outcome.quantiles]
    assert all(v is not None and v > 1000 for v in quantiles)
    texts = [t for v in quantiles for t in (str(v), str(int(v * 100)))]
    wire = reply.SerializeToString()
    audit = b"".join(p.read_bytes() for p in consortium.files.root.glob("audit.sqlite*"))
    assert b"quantile" in audit  # the write-ahead log included: it holds the newest entries
    gateway_log = (consortium.files.root / "logs" / "gateway.log").read_bytes()
    assert not any(t.encode() in wire + audit + gateway_log for t in texts)


def test_another_analysts_key_opens_nothing(
    consortium: LocalConsortium, relayed: gateway_pb2.ComputationResult
) -> None:
    layout = load_layout(consortium.files.pki_dir)
    bob = Identity("analyst", "bob", layout.trust_domain)
    with pytest.raises(IntegrityError, match="is for analyst/alice, not for analyst/bob"):
        open_relayed(
            result_from_proto(relayed), _key(consortium, "bob"), bob, load_ca(layout.ca_cert)
        )
    alice = Identity("analyst", "alice", layout.trust_domain)  # bob's key as if it were alice's
    with pytest.raises(IntegrityError, match="does not open with this receiver's key"):
        open_relayed(
            result_from_proto(relayed), _key(consortium, "bob"), alice, load_ca(layout.ca_cert)
        )


def _tampered(reply: gateway_pb2.ComputationResult) -> gateway_pb2.ComputationResult:
    copy = gateway_pb2.ComputationResult()
    copy.CopyFrom(reply)
    return copy


def test_the_client_refuses_an_altered_share_a_missing_cosignature_or_another_plan(
    alice: GatewayClient, relayed: gateway_pb2.ComputationResult
) -> None:
    flipped = _tampered(relayed)
    share = flipped.sealed.shares[1]
    share.ciphertext = share.ciphertext[:-1] + bytes([share.ciphertext[-1] ^ 1])
    with pytest.raises(IntegrityError, match="not the ones the log released"):
        alice._open(flipped, None)

    unwitnessed = _tampered(relayed)
    note = unwitnessed.sealed.checkpoint
    unwitnessed.sealed.checkpoint = note[: note.rstrip("\n").rfind("\n") + 1]  # drop one line
    with pytest.raises(IntegrityError, match="fewer than the quorum of 3"):
        alice._open(unwitnessed, None)

    swapped = _tampered(relayed)
    swapped.sealed.plan_json = swapped.sealed.plan_json.replace('"sector"', '"rating"')
    with pytest.raises(IntegrityError):
        alice._open(swapped, None)


def test_the_client_checks_the_gateways_signature_and_the_release_entry_s_inclusion(
    alice: GatewayClient, relayed: gateway_pb2.ComputationResult
) -> None:
    """The gateway's signature is checked once, with the cosignatures: each still counts."""
    resigned = _tampered(relayed)
    text, _, signatures = resigned.sealed.checkpoint.partition("\n\n")
    first, _, rest = signatures.partition("\n")  # the gateway's line, then the nodes'
    name, key_and_signature = first.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(key_and_signature))
    raw[-1] ^= 1
    forged = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    resigned.sealed.checkpoint = f"{text}\n\n{forged}\n{rest}"
    with pytest.raises(IntegrityError, match="signature"):
        alice._open(resigned, None)

    elsewhere = _tampered(relayed)
    elsewhere.sealed.release_index += 1
    with pytest.raises(IntegrityError, match="not included in the tree head"):
        alice._open(elsewhere, None)

    another = _tampered(relayed)
    another.sealed.release_entry = another.sealed.release_entry.replace(b"released", b"Released")
    with pytest.raises(IntegrityError, match="not included in the tree head"):
        alice._open(another, None)


def _plan(analyst: str = "analyst/alice") -> Plan:
    request = AggregateRequest(
        dataset="loans", purpose="testing", aggregates=(parse_aggregate("count"),)
    )
    return build(request, load_schema(schema_path()), analyst, 3)


def test_a_node_refuses_to_seal_to_a_key_not_certified_for_the_plans_analyst(
    consortium: LocalConsortium,
) -> None:
    bobs = receiver_certificate(consortium.files, "analyst/bob")
    forged = forge(consortium.files, _plan(), query_id="swapped-receiver", receiver=bobs)
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, "bank-a").Execute(forged.message(), timeout=15)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "sealing certificate is for" in str(caught.value.details())
    assert "analyst/bob, expected" in str(caught.value.details())


def test_a_node_hands_over_nothing_without_a_logged_release(consortium: LocalConsortium) -> None:
    forged = forge(consortium.files, _plan(), query_id="never-released")
    with ThreadPoolExecutor(3) as pool:
        calls = [
            pool.submit(gateway_stub(consortium, n).Execute, forged.message(), timeout=30)
            for n in consortium.files.nodes
        ]
        replies = [call.result() for call in calls]
    assert all(len(r.sealed_sha256) == 64 and r.sealed_size > 0 for r in replies)
    assert all(not r.blocks for r in replies)  # an aggregate opens nothing to the gateway
    # the submission entry is in the gateway-signed checkpoint, but it is no release
    request = node_pb2.ReleaseRequest(
        query_id="never-released",
        checkpoint=forged.evidence.checkpoint,
        entry=forged.evidence.entry,
        index=forged.evidence.index,
        inclusion=forged.evidence.proof,
        from_size=replies[0].cosigned_size,
    )
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, "bank-a").Release(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "is not the result.released entry of query never-released" in str(caught.value.details())
    unknown = node_pb2.ReleaseRequest(query_id="no-such-query")
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, "bank-a").Release(unknown, timeout=10)
    assert "holds no sealed result of query no-such-query" in str(caught.value.details())


def test_the_pki_gives_every_analyst_a_key_agreement_certificate(
    consortium: LocalConsortium,
) -> None:
    layout = load_layout(consortium.files.pki_dir)
    cert_path, key_path = layout.sealing_paths(Identity("analyst", "alice", layout.trust_domain))
    assert key_path.stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_agreement and not usage.digital_signature


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_node_syncs_three_times_per_aggregate_and_its_outcomes_are_on_disk(
    consortium: LocalConsortium, alice: GatewayClient
) -> None:
    """The count, the order's receipt and the release; an outcome that opened nothing rides
    the release's sync (was four syncs a query), and every outcome is in the stored log."""
    node = consortium.processes["bank-a"].pid
    threads = ",".join(os.listdir(f"/proc/{node}/task"))
    report = consortium.files.root / "bank-a.strace"
    alice.query("loans", AGGREGATES, group_by="sector")  # warm
    with subprocess.Popen(
        [*strace_syncs(report), "-p", threads],
        stderr=subprocess.PIPE,
    ) as tracer:
        assert tracer.stderr is not None
        attached = tracer.stderr.readline().decode()  # "Process N attached" once in place
        if "attached" not in attached:  # no ptrace here (a container without it)
            tracer.kill()
            pytest.skip(f"strace cannot attach to the node: {attached.strip()}")
        time.sleep(0.5)
        queries = [alice.query("loans", AGGREGATES, group_by="sector") for _ in range(12)]
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    syncs = syncs_in(report)
    assert 3 * len(queries) <= syncs <= 3 * len(queries) + 4, syncs  # + SQLite checkpoints
    stored = load_raw(consortium.files.root / "nodes" / "bank-a" / "audit.sqlite").entries
    completed = {json.loads(e)["query_id"] for e in stored if b'"order.completed"' in e}
    assert {q.query_id for q in queries} <= completed
