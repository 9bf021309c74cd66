"""Reconciling events: what the nodes did must be what the gateway's log says, and vice versa."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.reconcile import Reconciliation, decode_events
from mpc_gateway.audit.reconcile import reconcile as reconcile_events
from tests.audit.witnesses import EPOCH, NODES, Consortium, erase_tail, event, order, plan_of

GW = "gateway/gateway"


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    running = Consortium(tmp_path / "logs")
    yield running
    running.close()


def entries(*events: AuditEvent) -> list[bytes]:
    return [e.entry_bytes() for e in events]


def reconcile(gateway: list[bytes], nodes: dict[str, list[bytes]]) -> Reconciliation:
    """Reconcile logs given as raw entries, as an auditor receives them."""
    decoded = {name: decode_events(log) for name, log in nodes.items()}
    return reconcile_events(decode_events(gateway), decoded)


def node_log(
    query_id: str, sequence: int, *, end: str = "order.completed", lane: str | None = "short"
) -> list[bytes]:
    fields = order(query_id, sequence, lane=lane)
    return entries(
        event("order.received", GW, query_id, **fields), event(end, GW, query_id, **fields)
    )


def gateway_log(
    query_id: str, sequence: int, outcome: str = "result.released", lane: str | None = "short"
) -> list[bytes]:
    return entries(
        event("query.submitted", "analyst/alice", query_id, plan_hash=plan_of(query_id)),
        event(
            "query.dispatched",
            "analyst/alice",
            query_id,
            **order(query_id, sequence, lane=lane),
            nodes=list(NODES),
        ),
        event(outcome, "analyst/alice", query_id, plan_hash=plan_of(query_id)),
    )


def test_honest_logs_reconcile_without_problems_or_warnings(consortium: Consortium) -> None:
    consortium.query("q-1")
    consortium.query("q-2", failing=["bank-b"], outcome="query.failed")
    found = consortium.verify()
    assert found.ok, found.problems
    assert found.warnings == []
    assert any(
        "2 orders held alike by the nodes, 6 node outcomes matched" in line
        for line in found.checked
    )


def test_a_tail_erased_from_the_gateways_log_names_the_missing_outcome(
    consortium: Consortium,
) -> None:
    consortium.query("q-1")
    cut = consortium.logs["gateway"].size()
    consortium.query("q-2")
    consortium.close()
    erase_tail(consortium.path("gateway"), cut + 1)  # q-2's submission stays, its outcome goes
    found = consortium.verify()
    assert not found.ok
    assert set(found.problems) == {
        f"node {name} completed query q-2 (short lane, epoch {EPOCH}, sequence 1) but "
        "the gateway's log has no outcome for it"
        for name in NODES
    }


def test_an_erased_tail_stays_caught_after_later_queries_endorse_the_cut_log(
    tmp_path: Path,
) -> None:
    first = Consortium(tmp_path / "logs")
    first.query("q-1")
    cut = first.logs["gateway"].size()
    first.query("q-2")
    first.close()
    erase_tail(first.path("gateway"), cut + 1)
    restarted = Consortium(tmp_path / "logs")  # the gateway carries on from the cut file
    restarted.sequence = 2
    restarted.query("q-3")
    restarted.close()
    found = restarted.verify()
    assert [p for p in found.problems if "q-2" in p] == [
        f"node {name} completed query q-2 (short lane, epoch {EPOCH}, sequence 1) but "
        "the gateway's log has no outcome for it"
        for name in NODES
    ]
    assert not [p for p in found.problems if "split view" in p]  # the heads alone agree


def test_a_release_without_every_nodes_completion_is_caught() -> None:
    nodes = {name: node_log("q-1", 0) for name in NODES}
    nodes["bank-b"] = node_log("q-1", 0, end="order.failed")
    found = reconcile(gateway_log("q-1", 0), nodes)
    assert (
        f"the gateway's log released query q-1 (short lane, epoch {EPOCH}, sequence 0) "
        "but node bank-b recorded no completion of it"
    ) in found.problems


def test_a_dispatch_to_a_node_that_never_held_the_order_fails_a_release_warns_a_failure() -> None:
    nodes = {name: node_log("q-1", 0) for name in NODES}
    nodes["broker-c"] = []
    released = reconcile(gateway_log("q-1", 0), nodes)
    message = (
        f"the gateway's log dispatched query q-1 (short lane, epoch {EPOCH}, sequence 0) "
        "to node broker-c, whose log holds no such order"
    )
    assert message in released.problems
    nodes = {name: node_log("q-1", 0, end="order.failed") for name in NODES}
    nodes["broker-c"] = []  # it was down: the query failed, nothing was released
    failed = reconcile(gateway_log("q-1", 0, "query.failed"), nodes)
    assert failed.problems == ()
    assert failed.warnings == (message + " (the query did not release a result)",)


def test_an_order_a_node_refused_is_held_by_it() -> None:
    nodes = {name: node_log("q-1", 0, end="order.failed") for name in NODES}
    refused = event("order.refused", GW, "q-1", **order("q-1", 0), reason="policy")
    nodes["bank-b"] = entries(refused)
    found = reconcile(gateway_log("q-1", 0, "query.failed"), nodes)
    assert found.problems == () and found.warnings == ()


def test_nodes_that_ran_different_orders_at_one_sequence_are_caught() -> None:
    nodes = {name: node_log("q-1", 0) for name in NODES}
    nodes["broker-c"] = node_log("q-9", 0)
    found = reconcile(gateway_log("q-1", 0), nodes)
    assert any(
        p.startswith(f"nodes disagree on the order in the short lane at epoch {EPOCH}, sequence 0:")
        and "broker-c holds query q-9" in p
        for p in found.problems
    )


def test_a_node_log_with_two_orders_at_one_sequence_is_caught() -> None:
    nodes = {name: node_log("q-1", 0) for name in NODES}
    nodes["bank-a"] += node_log("q-2", 0)
    found = reconcile(gateway_log("q-1", 0), nodes)
    assert (
        "node bank-a recorded two different orders in the short lane at epoch "
        f"{EPOCH}, sequence 0: query q-1 and query q-2"
    ) in found.problems


def test_a_run_the_gateway_did_not_log_is_caught() -> None:
    """The gateway ran the query twice and logged one dispatch: the nodes' logs show both."""
    nodes = {name: node_log("q-1", 0) + node_log("q-1", 1) for name in NODES}
    found = reconcile(gateway_log("q-1", 0), nodes)
    assert sorted(found.problems) == [
        f"node {name} completed query q-1 (short lane, epoch {EPOCH}, sequence 1) but "
        "the gateway's log records no dispatch of it"
        for name in NODES
    ]


def test_a_completion_without_its_receipt_is_caught() -> None:
    nodes = {name: node_log("q-1", 0) for name in NODES}
    nodes["bank-a"] = node_log("q-1", 0)[1:]
    found = reconcile(gateway_log("q-1", 0), nodes)
    assert (
        "node bank-a completed query q-1 without having recorded receiving it (or recorded two "
        "outcomes for it)"
    ) in found.problems


def test_two_outcomes_for_one_query_are_caught() -> None:
    gateway = gateway_log("q-1", 0) + entries(
        event("query.failed", "analyst/alice", "q-1", plan_hash=plan_of("q-1"))
    )
    found = reconcile(gateway, {name: node_log("q-1", 0) for name in NODES})
    assert (
        "the gateway's log records 2 outcomes for query q-1: result.released (entry 2), "
        "query.failed (entry 3)"
    ) in found.problems


def test_a_release_under_another_plan_than_the_nodes_ran_is_caught() -> None:
    nodes = {name: node_log("q-1", 0) for name in NODES}
    gateway = gateway_log("q-1", 0)[:2] + entries(
        event("result.released", "analyst/alice", "q-1", plan_hash="another plan")
    )
    found = reconcile(gateway, nodes)
    assert any("under another plan hash" in p for p in found.problems)


def test_outcomes_written_before_they_named_their_sequence_pair_with_their_receipt() -> None:
    fields = order("q-1", 0)
    legacy = entries(
        event("order.received", GW, "q-1", **fields),
        event("order.completed", GW, "q-1", plan_hash=plan_of("q-1")),
    )
    found = reconcile(gateway_log("q-1", 0), {name: legacy for name in NODES})
    assert found.problems == () and found.warnings == ()


def test_nodes_whose_logs_are_not_given_are_named_as_unchecked() -> None:
    found = reconcile(gateway_log("q-1", 0), {"bank-a": node_log("q-1", 0)})
    assert found.problems == ()
    assert found.warnings == (
        "no witness log given for node(s) bank-b, broker-c: their part of every dispatch and "
        "release is not checked",
    )


def test_an_abandoned_query_without_dispatch_entries_is_a_warning() -> None:
    gateway = entries(
        event("query.submitted", "analyst/alice", "q-1", plan_hash=plan_of("q-1")),
        event("query.abandoned", "gateway/gateway", "q-1", plan_hash=plan_of("q-1")),
    )
    found = reconcile(gateway, {name: node_log("q-1", 0) for name in NODES})
    assert found.problems == ()
    assert len(found.warnings) == 3 and "records no dispatch of it" in found.warnings[0]


def test_a_malformed_dispatch_entry_is_named() -> None:
    gateway = entries(event("query.dispatched", "analyst/alice", "q-1", nodes=list(NODES)))
    found = reconcile(gateway, {})
    assert found.problems == (
        "gateway entry 0 is a dispatch without query id, lane, epoch, sequence, plan hash and "
        "nodes",
    )


def test_each_lane_counts_its_own_sequence_numbers() -> None:
    """A short query and a long job at the same epoch and sequence: two lanes, no clash."""
    nodes = {name: node_log("q-1", 0) + node_log("q-2", 0, lane="long") for name in NODES}
    found = reconcile(gateway_log("q-1", 0) + gateway_log("q-2", 0, lane="long"), nodes)
    assert found.problems == () and found.warnings == ()


def test_an_order_the_nodes_hold_in_another_lane_than_the_gateway_dispatched_is_caught() -> None:
    nodes = {name: node_log("q-1", 0, lane="long") for name in NODES}
    found = reconcile(gateway_log("q-1", 0), nodes)
    assert (
        f"the gateway's log dispatched query q-1 (short lane, epoch {EPOCH}, "
        "sequence 0) to node bank-a, whose log holds no such order"
    ) in found.problems


def test_a_query_dispatched_in_two_lanes_is_caught() -> None:
    nodes = {name: node_log("q-1", 0) + node_log("q-1", 1, lane="long") for name in NODES}
    gateway = gateway_log("q-1", 0)[:2] + gateway_log("q-1", 1, lane="long")[1:]
    found = reconcile(gateway, nodes)
    assert "the gateway's log dispatched query q-1 in long and short lanes" in found.problems


def test_logs_written_before_lanes_reconcile_as_the_short_lanes() -> None:
    nodes = {name: node_log("q-1", 0, lane=None) for name in NODES}
    assert reconcile(gateway_log("q-1", 0), nodes).problems == ()
    assert reconcile(gateway_log("q-1", 0, lane=None), nodes).problems == ()
