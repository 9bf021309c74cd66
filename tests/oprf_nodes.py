"""Stand-in nodes for a pseudonym request: what each answers, proved and signed, in one process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mpc_gateway.oprf import KeyShare, check_points, evaluate, key_statement, prove
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
        answers = evaluate(key.share, check_points(points))
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


Relay = Callable[[gateway_pb2.PseudonymRequest], gateway_pb2.PseudonymReply]


class Sent:
    """A pseudonym request as :meth:`GatewayClient._send` leaves it: its reply comes when read,
    and ``events`` records each request sent, read and cancelled, in order."""

    def __init__(self, relay: Relay, request: gateway_pb2.PseudonymRequest, events: list[str]):
        self.n = sum(e.startswith("sent") for e in events)
        self._relay, self._request, self._events = relay, request, events
        events.append(f"sent {self.n}")

    def result(self) -> gateway_pb2.PseudonymReply:
        self._events.append(f"read {self.n}")
        return self._relay(self._request)

    def cancel(self) -> bool:
        self._events.append(f"cancelled {self.n}")
        return True


def relayed_by(relay: Relay, events: list[str] | None = None) -> Callable[..., Sent]:
    """A stand-in for :meth:`GatewayClient._send` (monkeypatched): ``relay`` answers."""
    log = [] if events is None else events
    return lambda client, method, request: Sent(relay, request, log)
