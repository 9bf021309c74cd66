"""A node whose witness log lost the newest releases it recorded halts instead of cosigning on.

The gateway keeps the checkpoints each node cosigned and shows a node the newest
one bearing its cosignature; a node whose witness log no longer holds that
release (a restored older copy, a damaged write-ahead log) halts. A gateway
showing anything else (another key's cosignature, a checkpoint at another size)
halts nothing: the release is refused as before.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.checkpoint import (
    append_signature,
    cosign,
    format_checkpoint,
    parse_note,
    sign_checkpoint,
)
from mpc_gateway.audit.evidence import DispatchEvidence
from mpc_gateway.errors import IntegrityError, StorageUnavailableError
from mpc_gateway.gateway.relay import _newest_cosigned
from tests.unit.test_release_batch import GATEWAY_LOG, NODE_LOG, Consortium

LOST = (
    "node n0's witness log lost releases it recorded: the gateway shows this node's own "
    "cosignature on the gateway's log at size 1, but the newest release in the witness log is "
    "at size 0 (a restored older copy, a damaged write-ahead log or an edit); this node takes "
    "no order until the newest copy of its witness log is restored"
)


def released_once(consortium: Consortium) -> tuple[str, str]:
    """Release one query: the gateway's checkpoint and the node's cosignature line on it."""
    consortium.hold("q1")
    first = consortium.released(["q1"])
    _, cosignature, size = consortium.node.release_all(first, 0, [])
    assert size == 1
    return first[0][1].checkpoint, cosignature


def next_release(
    consortium: Consortium, query_id: str = "q2", since: int = 1
) -> tuple[list[tuple[str, DispatchEvidence]], list[bytes]]:
    """One more release, and the consistency proof from size ``since``."""
    consortium.hold(query_id)
    released = consortium.released([query_id])
    return released, consortium.log.consistency_proof(since, consortium.log.size())


@pytest.fixture()
def consortium() -> Consortium:
    return Consortium()


def test_a_node_shown_its_own_newer_cosignature_halts_its_witness_log(
    consortium: Consortium,
) -> None:
    shown = append_signature(*released_once(consortium))
    consortium.restart_node()  # on a witness log that lost the release it recorded
    assert consortium.node.cosigned_size == 0
    second, proof = next_release(consortium)
    with pytest.raises(StorageUnavailableError) as halted:
        consortium.node.release_all(second, 1, proof, shown)
    assert halted.value.public_message == LOST
    witness = consortium.witness.log
    assert witness.storage_problem == LOST  # health hears it: NOT_SERVING
    assert witness.size() == 0  # nothing cosigned, nothing handed over
    with pytest.raises(StorageUnavailableError, match="lost releases it recorded"):
        consortium.node.release_all(second, 0, [])  # nor from where the damaged log says
    assert witness.recheck_storage() == LOST  # only a restart on the restored copy clears it


def test_a_node_shown_its_newer_cosignature_as_its_session_opens_halts_before_any_order(
    consortium: Consortium,
) -> None:
    shown = append_signature(*released_once(consortium))
    consortium.node.check_shown(shown)  # it holds that release: nothing to say
    consortium.restart_node()
    with pytest.raises(StorageUnavailableError, match="at size 1, but the newest release in"):
        consortium.node.check_shown(shown)
    assert consortium.witness.log.storage_problem is not None


FORGERIES = ["another key's cosignature", "another gateway's signature", "an older checkpoint"]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_gateway_showing_what_this_node_never_cosigned_halts_nothing(
    consortium: Consortium, forgery: str
) -> None:
    checkpoint, cosignature = released_once(consortium)
    body = parse_note(checkpoint)[0]
    if forgery == "an older checkpoint":  # genuine, but the witness log holds newer releases
        shown = append_signature(checkpoint, cosignature)
        second, proof = next_release(consortium)
        consortium.node.release_all(second, 1, proof)
        second, proof = next_release(consortium, "q3", 2)
        start = 2
    else:
        consortium.restart_node()
        second, proof = next_release(consortium)
        start = 0
        if forgery == "another key's cosignature":
            line = cosign(body, 1, NODE_LOG, Ed25519PrivateKey.generate())
            shown = append_signature(checkpoint, line)
        else:
            shown = sign_checkpoint(body, GATEWAY_LOG, Ed25519PrivateKey.generate()) + cosignature
    with pytest.raises(
        IntegrityError, match=f"proof starts at size 1, but node n0 last .* {start}"
    ):
        consortium.node.release_all(second, 1, proof, shown)
    consortium.node.check_shown(shown)
    assert consortium.witness.log.storage_problem is None
    size = consortium.log.size()
    consortium.node.release_all(second, start, consortium.log.consistency_proof(start, size))


def test_the_gateway_finds_the_newest_checkpoint_each_node_cosigned_among_its_heads() -> None:
    gateway = Ed25519PrivateKey.generate()
    keys = {name: Ed25519PrivateKey.generate() for name in ("a", "b", "c")}
    witnesses = {name: (f"mpc.example/node/{name}", k.public_key()) for name, k in keys.items()}

    def head(size: int, *cosigners: str) -> str:
        body = format_checkpoint(GATEWAY_LOG, size, bytes(32))
        note = sign_checkpoint(body, GATEWAY_LOG, gateway)
        for name in cosigners:
            note = append_signature(note, cosign(body, 1, witnesses[name][0], keys[name]))
        return note

    heads = [head(1, "a", "b", "c"), head(2, "a", "b"), head(3), head(4, "a")]
    forged = append_signature(
        head(5), cosign(parse_note(head(5))[0], 1, witnesses["c"][0], gateway)
    )
    found = _newest_cosigned([*heads, forged], witnesses)
    assert found == {"a": (4, heads[3]), "b": (2, heads[1]), "c": (1, heads[0])}
    assert _newest_cosigned([heads[2]], witnesses) == {}
