"""Reconciling events across logs: what the nodes did must be what the gateway's log says.

The gateway's log and each node's witness log are verified one by one
elsewhere (:mod:`.verify`: trees, signatures, heads). This module reads the
*events* they hold, already decoded, and checks that they tell one story:

* every order a node recorded as completed (or failed) has an outcome in the
  gateway's log for the same query id and plan hash, and a dispatch entry for the
  same (query id, lane, epoch, sequence, plan hash) that names the node;
* every dispatch entry in the gateway's log names nodes whose logs hold that
  order (received, or refused once its signature checked);
* every release in the gateway's log is backed by the completion, at every node
  its last dispatch names, of that (query id, lane, epoch, sequence, plan hash);
* each node's log is consistent in itself (one order per lane, epoch and
  sequence, an outcome only for an order it received) and with the other nodes'
  logs (the same order at the same lane, epoch and sequence everywhere);
* every query's dispatches are in one lane;
* every persons' pseudonym evaluation a node recorded is a request the gateway
  logged, with its outcome (:mod:`.reconcile_pseudonyms`).

Sequence numbers count per lane (:mod:`mpc_gateway.lanes`): each lane is its own
MPC session with its own epochs. Entries written before lanes name none; they
are read as the short lane's, which then was the only one.

It assumes the entries' integrity was checked (an entry that does not decode is
skipped here; :func:`~.verify.verify_log` reports it; :func:`decode_events` decodes a log
once for both) and that every node log
given is the whole log. Nodes whose logs are not given are named as unchecked,
never as failing. Where a gap has an innocent explanation (a dispatch to a node
that was down, for a query that then failed), it is a warning, not a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.reconcile_pseudonyms import reconcile_pseudonyms
from mpc_gateway.lanes import is_lane

__all__ = ["OUTCOME_KINDS", "OrderKey", "Reconciliation", "decode_events", "reconcile"]

OUTCOME_KINDS = frozenset(
    {"result.released", "query.failed", "query.rejected", "query.refused", "query.abandoned"}
)
"""The gateway's entries that end a query (one per query)."""

_NODE_ENDS = {"order.completed": "completed", "order.failed": "recorded as failed"}

Slot = tuple[str, str, int, int]  # (query id, lane, epoch, sequence): one execution order
Position = tuple[str, int, int]  # (lane, epoch, sequence): one turn in a lane's MPC order


@dataclass(frozen=True)
class OrderKey:
    """One execution order as the logs name it."""

    query_id: str
    lane: str
    epoch: int
    sequence: int
    plan_hash: str

    @property
    def slot(self) -> Slot:
        return (self.query_id, self.lane, self.epoch, self.sequence)

    @property
    def position(self) -> Position:
        return (self.lane, self.epoch, self.sequence)

    def about(self) -> str:
        return (
            f"query {self.query_id} ({self.lane} lane, epoch {self.epoch}, "
            f"sequence {self.sequence})"
        )


@dataclass(frozen=True)
class _Dispatch:
    order: OrderKey
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class _Outcome:
    kind: str
    plan_hash: str | None
    index: int


@dataclass(frozen=True)
class Reconciliation:
    """What :func:`reconcile` found: problems fail verification, warnings do not."""

    checked: tuple[str, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


def decode_events(entries: Iterable[bytes]) -> list[AuditEvent | None]:
    """Each entry as an event, or None where it does not decode (verify_log names those)."""
    events: list[AuditEvent | None] = []
    for data in entries:
        try:
            events.append(AuditEvent.from_entry(data))
        except (ValueError, TypeError):
            events.append(None)
    return events


def _events(events: Sequence[AuditEvent | None]) -> Iterable[tuple[int, AuditEvent]]:
    return ((index, event) for index, event in enumerate(events) if event is not None)


def _order_key(event: AuditEvent) -> OrderKey | None:
    details: Mapping[str, Any] = event.details
    epoch, sequence, plan = details.get("epoch"), details.get("sequence"), details.get("plan_hash")
    if not (isinstance(epoch, int) and isinstance(sequence, int) and isinstance(plan, str)):
        return None
    if event.query_id is None or isinstance(epoch, bool) or isinstance(sequence, bool):
        return None
    lane = details.get("lane", "short")  # written before lanes: the one session was this one
    if not isinstance(lane, str) or not is_lane(lane):
        return None
    return OrderKey(event.query_id, lane, epoch, sequence, plan)


@dataclass
class _GatewayEvents:
    dispatches: dict[str, list[_Dispatch]] = field(default_factory=dict)
    outcomes: dict[str, list[_Outcome]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, events: Sequence[AuditEvent | None]) -> _GatewayEvents:
        found = cls()
        for index, event in _events(events):
            if event.kind == "query.dispatched":
                key, nodes = _order_key(event), event.details.get("nodes")
                if key is None or not isinstance(nodes, list):
                    found.problems.append(
                        f"gateway entry {index} is a dispatch without query id, lane, epoch, "
                        "sequence, plan hash and nodes"
                    )
                    continue
                dispatch = _Dispatch(key, tuple(str(n) for n in nodes))
                found.dispatches.setdefault(key.query_id, []).append(dispatch)
            elif event.kind in OUTCOME_KINDS and event.query_id is not None:
                plan = event.details.get("plan_hash")
                outcome = _Outcome(event.kind, plan if isinstance(plan, str) else None, index)
                found.outcomes.setdefault(event.query_id, []).append(outcome)
        return found

    def dispatch_of(self, slot: Slot) -> _Dispatch | None:
        return next((d for d in self.dispatches.get(slot[0], []) if d.order.slot == slot), None)


@dataclass
class _NodeEvents:
    name: str
    held: dict[Slot, OrderKey] = field(default_factory=dict)  # received, or refused
    positions: dict[Position, OrderKey] = field(default_factory=dict)
    ends: dict[Slot, str] = field(default_factory=dict)  # slot -> order.completed | order.failed
    cosigned: dict[str, int] = field(default_factory=dict)  # query -> gateway log size cosigned
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, name: str, events: Sequence[AuditEvent | None]) -> _NodeEvents:
        found = cls(name)
        open_orders: list[OrderKey] = []  # received, no outcome yet (oldest first)
        for _, event in _events(events):
            key = _order_key(event)
            if event.kind in ("order.received", "order.refused") and key is not None:
                found._hold(key)
                if event.kind == "order.received":
                    open_orders.append(key)
            elif event.kind in _NODE_ENDS and event.query_id is not None:
                found._end(event, key, open_orders)
            elif event.kind == "result.released" and event.query_id is not None:
                size = event.details.get("gateway_log_size")
                found.cosigned[event.query_id] = size if isinstance(size, int) else -1
        return found

    def _hold(self, key: OrderKey) -> None:
        other = self.positions.setdefault(key.position, key)
        if other != key:
            self.problems.append(
                f"node {self.name} recorded two different orders in the {key.lane} lane at "
                f"epoch {key.epoch}, sequence {key.sequence}: query {other.query_id} and "
                f"query {key.query_id}"
            )
        self.held.setdefault(key.slot, key)

    def _end(self, event: AuditEvent, key: OrderKey | None, open_orders: list[OrderKey]) -> None:
        verb = _NODE_ENDS[event.kind]
        if key is None:  # an outcome written before outcomes named their epoch and sequence
            key = next((k for k in open_orders if k.query_id == event.query_id), None)
        received = next((k for k in open_orders if key is not None and k.slot == key.slot), None)
        if key is None or received is None:
            self.problems.append(
                f"node {self.name} {verb} query {event.query_id} without having recorded "
                "receiving it (or recorded two outcomes for it)"
            )
            return
        open_orders.remove(received)
        if event.details.get("plan_hash") != received.plan_hash:
            self.problems.append(
                f"node {self.name} {verb} {received.about()} under another plan hash than "
                "the one it received"
            )
        self.ends[received.slot] = event.kind


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)


def _agreement(nodes: Sequence[_NodeEvents], found: _Findings) -> int:
    """Every node holds the same order at the same lane, epoch and sequence; returns the orders."""
    by_slot: dict[Position, dict[str, OrderKey]] = {}
    for node in nodes:
        for key in node.positions.values():
            by_slot.setdefault(key.position, {})[node.name] = key
    for (lane, epoch, sequence), held in sorted(by_slot.items()):
        if len(set(held.values())) > 1:
            views = ", ".join(
                f"{name} holds query {k.query_id} (plan {k.plan_hash[:12]}…)"
                for name, k in sorted(held.items())
            )
            found.problems.append(
                f"nodes disagree on the order in the {lane} lane at epoch {epoch}, "
                f"sequence {sequence}: {views}"
            )
    return len(by_slot)


def _node_outcomes(node: _NodeEvents, gateway: _GatewayEvents, found: _Findings) -> int:
    """Each order the node completed or failed has its outcome and dispatch at the gateway."""
    for slot, kind in node.ends.items():
        order, verb = node.held[slot], _NODE_ENDS[kind]
        said = f"node {node.name} {verb} {order.about()} but the gateway's log"
        outcomes = gateway.outcomes.get(order.query_id, [])
        if not outcomes:
            found.problems.append(f"{said} has no outcome for it")
            continue
        if all(o.plan_hash not in (None, order.plan_hash) for o in outcomes):
            found.problems.append(f"{said} records its outcome under another plan hash")
        dispatch = gateway.dispatch_of(slot)
        if dispatch is None:
            abandoned = all(o.kind == "query.abandoned" for o in outcomes)
            (found.warnings if abandoned else found.problems).append(
                f"{said} records no dispatch of it"
            )
        elif node.name not in dispatch.nodes:
            found.problems.append(f"{said} dispatched it to {', '.join(dispatch.nodes)} only")
        elif dispatch.order.plan_hash != order.plan_hash:
            found.problems.append(f"{said} dispatched it under another plan hash")
    return len(node.ends)


def _dispatches(gateway: _GatewayEvents, nodes: Mapping[str, _NodeEvents], found: _Findings) -> int:
    """Each dispatch names nodes that hold the order; each release is backed by completions."""
    count = 0
    for query_id, dispatches in gateway.dispatches.items():
        lanes = sorted({d.order.lane for d in dispatches})
        if len(lanes) > 1:  # a computation runs in one lane: every node refuses the other
            found.problems.append(
                f"the gateway's log dispatched query {query_id} in {' and '.join(lanes)} lanes"
            )
        released = any(o.kind == "result.released" for o in gateway.outcomes.get(query_id, []))
        for dispatch in dispatches:
            count += 1
            for name in dispatch.nodes:
                node = nodes.get(name)
                if node is None:
                    found.unchecked.add(name)
                    continue
                if dispatch.order.slot not in node.held:
                    message = (
                        f"the gateway's log dispatched {dispatch.order.about()} to node {name}, "
                        "whose log holds no such order"
                    )
                    if released:
                        found.problems.append(message)
                    else:  # e.g. the node was down: the query failed, nothing was released
                        found.warnings.append(message + " (the query did not release a result)")
    return count


def _releases(gateway: _GatewayEvents, nodes: Mapping[str, _NodeEvents], found: _Findings) -> int:
    count = 0
    for query_id, outcomes in gateway.outcomes.items():
        if len(outcomes) > 1:
            kinds = ", ".join(f"{o.kind} (entry {o.index})" for o in outcomes)
            found.problems.append(
                f"the gateway's log records {len(outcomes)} outcomes for query {query_id}: {kinds}"
            )
        for release in (o for o in outcomes if o.kind == "result.released"):
            count += 1
            dispatches = gateway.dispatches.get(query_id, [])
            if not dispatches:
                found.problems.append(
                    f"the gateway's log released query {query_id} (entry {release.index}) "
                    "without any dispatch of it"
                )
                continue
            last = max(dispatches, key=lambda d: (d.order.epoch, d.order.sequence))
            if release.plan_hash != last.order.plan_hash:
                found.problems.append(
                    f"the gateway's log released query {query_id} under another plan hash "
                    "than the one it dispatched"
                )
            for name in last.nodes:
                node = nodes.get(name)
                if node is None or last.order.slot not in node.held:
                    continue  # unchecked, or reported with the dispatches
                if node.ends.get(last.order.slot) != "order.completed":
                    found.problems.append(
                        f"the gateway's log released {last.order.about()} but node {name} "
                        "recorded no completion of it"
                    )
    return count


def _cosigned(gateway: _GatewayEvents, nodes: Mapping[str, _NodeEvents], found: _Findings) -> int:
    """Every release a node cosigned (and handed its sealed shares for) is in the gateway's log."""
    for node in nodes.values():
        for query_id, size in node.cosigned.items():
            if not any(o.kind == "result.released" for o in gateway.outcomes.get(query_id, [])):
                found.problems.append(
                    f"node {node.name} cosigned the release of query {query_id} (the gateway's "
                    f"log at size {size}) but the gateway's log has no release of it"
                )
    return sum(len(node.cosigned) for node in nodes.values())


def reconcile(
    gateway_events: Sequence[AuditEvent | None],
    node_events: Mapping[str, Sequence[AuditEvent | None]],
) -> Reconciliation:
    """Cross-check the events of the gateway's log and the given nodes' witness logs.

    Each log is given as :func:`decode_events` returns it (an entry's index is its position).
    """
    gateway = _GatewayEvents.read(gateway_events)
    nodes = {name: _NodeEvents.read(name, events) for name, events in node_events.items()}
    found = _Findings(problems=list(gateway.problems))
    for node in nodes.values():
        found.problems += node.problems
    orders = _agreement(list(nodes.values()), found)
    ends = sum(_node_outcomes(node, gateway, found) for node in nodes.values())
    dispatched = _dispatches(gateway, nodes, found)
    released = _releases(gateway, nodes, found)
    cosigned = _cosigned(gateway, nodes, found)
    evaluations, problems = reconcile_pseudonyms(gateway_events, node_events)
    found.problems += problems
    checked = [
        f"events reconciled: {orders} orders held alike by the nodes, {ends} node outcomes "
        f"matched to the gateway's outcomes and dispatches, {dispatched} dispatches and "
        f"{released} releases matched to the nodes' orders and completions, {cosigned} "
        f"cosigned releases found in the gateway's log, {evaluations} pseudonym evaluations "
        "matched to the gateway's requests and outcomes"
    ]
    if found.unchecked:
        found.warnings.append(
            "no witness log given for node(s) "
            + ", ".join(sorted(found.unchecked))
            + ": their part of every dispatch and release is not checked"
        )
    return Reconciliation(tuple(checked), tuple(found.problems), tuple(found.warnings))
