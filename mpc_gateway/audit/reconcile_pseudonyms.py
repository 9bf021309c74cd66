"""Reconciling pseudonym evaluations: each one a node recorded is a request the gateway logged.

The gateway logs each request (``pseudonyms.requested``, sealed before any node is
asked) and its outcome (``pseudonyms.answered``, ``.failed`` or ``.refused``); a
node evaluates only against the request's entry and records each evaluation
(``pseudonyms.evaluated``). So, between whole logs:

* every evaluation a node recorded has its request and an outcome in the gateway's
  log (a log whose tail was cut loses them, and the node's record names them);
* every request the gateway says was answered was evaluated by every node whose
  log is given (the answers came from somewhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mpc_gateway.audit.log import AuditEvent

__all__ = ["PSEUDONYM_OUTCOMES", "reconcile_pseudonyms"]

PSEUDONYM_OUTCOMES = frozenset({"pseudonyms.answered", "pseudonyms.failed", "pseudonyms.refused"})


def reconcile_pseudonyms(
    gateway_events: Sequence[AuditEvent | None],
    node_events: Mapping[str, Sequence[AuditEvent | None]],
) -> tuple[int, list[str]]:
    """How many evaluations were matched, and the problems found."""
    requested: set[str] = set()
    outcomes: dict[str, str] = {}
    for event in gateway_events:
        if event is None or event.query_id is None:
            continue
        if event.kind == "pseudonyms.requested":
            requested.add(event.query_id)
        elif event.kind in PSEUDONYM_OUTCOMES:
            outcomes[event.query_id] = event.kind
    problems: list[str] = []
    matched = 0
    evaluated: dict[str, set[str]] = {}
    for name, events in node_events.items():
        for event in events:
            if event is None or event.kind != "pseudonyms.evaluated" or event.query_id is None:
                continue
            query_id = event.query_id
            evaluated.setdefault(query_id, set()).add(name)
            said = f"node {name} evaluated pseudonym request {query_id}, but the gateway's log"
            if query_id not in requested:
                problems.append(f"{said} does not hold the request")
            elif query_id not in outcomes:
                problems.append(f"{said} has no outcome for it")
            else:
                matched += 1
    for query_id, kind in sorted(outcomes.items()):
        missing = sorted(set(node_events) - evaluated.get(query_id, set()))
        if kind == "pseudonyms.answered" and missing:
            problems.append(
                f"the gateway's log answered pseudonym request {query_id}, but node(s) "
                f"{', '.join(missing)} recorded no evaluation of it"
            )
    return matched, problems
