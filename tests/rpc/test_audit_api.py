"""The audit API over a log, served on port 0: proofs between the heads a monitor holds."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.checkpoint import verify_checkpoint
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.audit.merkle import verify_consistency
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.proto.v1 import audit_pb2, audit_pb2_grpc
from mpc_gateway.rpc.audit_servicer import audit_service
from tests.rpc.conftest import Served, serve

ORIGIN = "mpcgw.local/gateway/test/audit"
KEY = Ed25519PrivateKey.generate()


@pytest.fixture()
def log_served(
    files: ConsortiumFiles, gateway: Gateway
) -> Iterator[tuple[InMemoryAuditLog, Served]]:
    log = InMemoryAuditLog(origin=ORIGIN, signing_key=KEY, clock=lambda: 1_700_000_000_000)
    for size in (3, 6, 9):  # a head after every third entry: the heads a monitor may hold
        while log.size() < size:
            log.append(AuditEvent(kind="admin.test", actor="gateway/test", timestamp_ms=log.size()))
        log.signed_tree_head()
    served = serve([audit_service(log)], gateway.tls, files.pki_dir)
    yield log, served
    served.server.stop(0)


def _proof(served: Served, old: int, new: int) -> audit_pb2.ConsistencyProof:
    with served.channel("auditor/audrey") as channel:
        request = audit_pb2.ConsistencyProofRequest(old_size=old, new_size=new)
        return audit_pb2_grpc.AuditServiceStub(channel).GetConsistencyProof(request, timeout=10)


def test_a_consistency_proof_between_two_old_heads_proves_exactly_those(log_served) -> None:
    log, served = log_served
    reply = _proof(served, 3, 6)
    head = verify_checkpoint(reply.checkpoint, ORIGIN, KEY.public_key())
    assert (reply.old_size, reply.new_size, head.size) == (3, 6, 6)
    assert verify_consistency(3, 6, log.root(3), head.root_hash, list(reply.hashes))
    assert not verify_consistency(3, 9, log.root(3), log.root(9), list(reply.hashes))


def test_new_size_zero_means_a_fresh_head_of_the_whole_log(log_served) -> None:
    log, served = log_served
    reply = _proof(served, 6, 0)
    assert reply.new_size == log.size() == 9
    assert verify_consistency(6, 9, log.root(6), log.root(9), list(reply.hashes))


@pytest.mark.parametrize(
    ("old", "new", "problem"), [(3, 5, "no tree head at size 5"), (7, 6, "beyond the 6 entries")]
)
def test_a_proof_the_log_cannot_back_with_a_signed_head_is_refused(
    log_served, old, new, problem
) -> None:
    _, served = log_served
    with pytest.raises(grpc.RpcError) as caught:
        _proof(served, old, new)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in str(caught.value.details())
