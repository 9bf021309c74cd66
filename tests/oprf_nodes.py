"""Stand-in nodes for a pseudonym request: what each answers, proved and signed, in one process."""

from __future__ import annotations

from collections.abc import Sequence

from mpc_gateway.oprf import KeyShare, evaluate, key_statement, prove
from mpc_gateway.pki import ConsortiumLayout, Identity, load_signing_key
from mpc_gateway.proto.v1 import gateway_pb2


def node_answers(
    layout: ConsortiumLayout, keys: Sequence[KeyShare], points: Sequence[bytes]
) -> list[gateway_pb2.NodePseudonyms]:
    """Every node's answers as the gateway relays them: raised, proved, the key statement signed."""
    out = []
    for name, key in zip(layout.nodes, keys, strict=True):
        node = Identity("node", name, layout.trust_domain)
        cert, private = layout.signing_paths(node)
        statement = key_statement(name, key.party, key.public)
        answers = [evaluate(key.share, p) for p in points]
        out.append(
            gateway_pb2.NodePseudonyms(
                node=name,
                party=key.party,
                points=answers,
                proof=prove(key.share, points, answers),
                key_statement=statement,
                key_signature=load_signing_key(private).sign(statement),
                signing_certificate=cert.read_bytes(),
            )
        )
    return out
