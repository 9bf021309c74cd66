"""Scenario ``netns`` (needs root): the aggregate's latency over a network at 0, 10 and 50 ms RTT.

Every node runs in its own network namespace (:mod:`mpc_gateway.devnet.netns`:
a veth link each to a bridge, private 10.x addresses), the gateway and the
analyst in the root namespace. First with nothing between them ("netns,
direct"); then, in a second consortium over the same namespaces, with a relay
process (:mod:`mpc_gateway.devnet.relay`) in front of every node's gRPC port,
both its MPC ports and the gateway's port: the analyst reaches the gateway, the
gateway each node, and each node the others, only through it. The kernel here
has no ``netem``, so the relay makes the latency: it holds every chunk, in each
direction, for half the round-trip time (RTT), so every request and answer,
analyst to gateway, gateway to node and between two parties, costs what it would
over such a link. ``--netns-repeats`` benchmark aggregates per RTT in
``--netns-rtts`` (0 first: the relays' own cost), each reply checked against the
pooled plaintext.

Rounds are counted twice. *Implied*: (median at RTT − median at 0 through the
relays) / RTT. *Counted*: the relay records every flight (a run of chunks one
way on one connection) and :func:`~mpc_gateway.devnet.relay.critical_path`
chains those each sent by the receiver of the one before once that one had
arrived; the chain's length is the number of sequential one-way trips (hops),
half as many round trips. A query's chain can be one too long (a node late for
lack of CPU looks like one waiting for a message) or one too short (a keepalive
ping sent just before a message joins its flight and seems to leave too early),
so the table gives the length most queries' chains had. An aggregate on a warm
session takes 7 hops, 3.5 round trips (MPyC's connection set-up, the TLS
handshakes and gRPC channels are all made before the first query; none happens
per query):

0. analyst → gateway: ``Run``, the request;
1. gateway → nodes: ``Execute``, the signed order, to every node at once;
2. node → node: input sharing, each party's Shamir shares of its pre-aggregates
   to each other party: the only MPC round (the sums are local, the result's
   re-randomisation is a pseudorandom sharing of zero, without a message, and
   nothing is opened);
3. nodes → gateway: ``Execute``'s answer;
4. gateway → nodes: ``Release``, the checkpoint over the release entry to cosign;
5. nodes → gateway: the cosignature and the sealed shares;
6. gateway → analyst: ``Run``'s answer, the sealed result.

That is under the open policies measured here, with no output controls: a cell
threshold or dominance rule adds secure comparisons, node → node rounds of
their own (not measured here). The issue's target (latency ≤ rounds × RTT +
10 ms) is printed beside the figures, with the counted rounds.

Then, at the largest RTT, every other computation the same way, once each (the
demo's scoring registers its model, which it can do once), every answer checked
against the pooled plaintext: an entity check
(one LEI against every member's alerts), the demo's risk queries (scoring,
concentration, a quantile search, :data:`~mpc_gateway.devnet.risk_demo.RISK_CHECKS`)
and its joint training (logistic, 12 Newton steps, held-out AUC). A quantile
search or a training run is a sequence of MPC steps, each its own ``Execute``
round with the gateway; their secure comparisons and products add node → node
rounds inside each step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.consortium import client_for, first_answer, running_consortium
from benchmarks.report import note
from benchmarks.stats import percentile, summary
from benchmarks.workload import BENCH_QUERY, Reference, run_query
from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet.localnet import DEFAULT_NODES, ConsortiumFiles, schema_path
from mpc_gateway.devnet.netns import (
    GATEWAY_ROUTE,
    NamespacedConsortium,
    NamespaceNetwork,
    namespaced_consortium,
    namespaces_unavailable,
    node_namespaces,
)
from mpc_gateway.devnet.relay import Flight, RelayProcess, critical_path
from mpc_gateway.devnet.risk_demo import RISK_CHECKS, RiskCheck
from mpc_gateway.devnet.screening_demo import members_per_key
from mpc_gateway.devnet.train_demo import training_check
from mpc_gateway.query.schema import load_schema

__all__ = ["netns_scenario"]

TARGET_SLACK_MS = 10.0  # the target: latency <= rounds x RTT + 10 ms
# A TLS record holding only an HTTP/2 PING, its ack or a WINDOW_UPDATE (gRPC's keepalive,
# bandwidth probes and flow control) is 31-39 bytes; none is a step of the query (the
# smallest, a node's answer, is ~180 bytes), so such flights are left out of the chains.
CONTROL_FRAME_BYTES = 64


def _path(flights: list[Flight], one_way_s: float, net: NamespaceNetwork) -> tuple[str, ...]:
    """The query's critical path, hop by hop, every node named ``node``: ``gw→node``, ...

    The analyst dials from the gateway's own host: its side of the relay's route in
    front of the gateway is named ``analyst``.
    """
    names = {net.host_address: "gw", **{net.address(n): "node" for n in net.namespaces}}
    messages = [
        replace(f, client="analyst") if f.route == GATEWAY_ROUTE else f
        for f in flights
        if f.size > CONTROL_FRAME_BYTES
    ]
    return tuple(
        f"{names.get(hop.sender, hop.sender)}→{names.get(hop.receiver, hop.receiver)}"
        for hop in critical_path(messages, one_way_s)
    )


def _rounds_counted(paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """The hops most queries' chains had (the fewer of a tie), and the most common such chain."""
    if not paths:
        return {}
    seen = Counter(len(path) for path in paths)
    hops = min(seen, key=lambda n: (-seen[n], n))
    typical = Counter(path for path in paths if len(path) == hops).most_common(1)[0][0]
    return {"hops": hops, "path": ", ".join(typical), "hops_seen": dict(sorted(seen.items()))}


def _fresh(relay: RelayProcess) -> None:
    """Forget the flights so far, once the last query's stragglers are over.

    A client's flow-control frames and its ack of a ping that came with its answer
    follow the answer by up to a round trip. After two round trips of quiet the next
    request starts a flight of its own (a flight ends after a pause of half the
    delay), counted with its query.
    """
    time.sleep(4 * relay.delay_s)
    relay.take()


def _measure(
    client: GatewayClient,
    reference: Reference,
    args: Any,
    relayed: NamespacedConsortium | None = None,
) -> dict[str, Any]:
    """``--netns-repeats`` aggregates (through ``relayed``'s relay at its current delay)."""
    relay = relayed.relay if relayed else None
    for _ in range(args.warmup):
        run_query(client, BENCH_QUERY)
    latencies, paths, late, wrong = [], [], [], 0
    for _ in range(args.netns_repeats):
        if relay is not None:
            _fresh(relay)  # only this query's flights count
        started = time.perf_counter()
        result = run_query(client, BENCH_QUERY)
        latencies.append((time.perf_counter() - started) * 1000)
        wrong += not reference.matches(BENCH_QUERY, result)
        if relayed is not None and relay is not None:
            flights, lateness = relay.take()
            late.append(lateness["mean_ms"])
            if relay.delay_s:
                paths.append(_path(flights, relay.delay_s, relayed.net))
    figures = summary(latencies)
    figures["p99_ms"] = round(percentile(latencies, 99), 3)
    entry: dict[str, Any] = {"latency": figures, "wrong_results": wrong}
    if late:
        entry["relay_late_ms"] = round(statistics.fmean(late), 3)
    return entry | _rounds_counted(paths)


def _entity_check(client: GatewayClient, files: ConsortiumFiles) -> RiskCheck:
    """One counterparty flagged at two members, screened against every member's alerts."""
    members = members_per_key(files, "counterparty_lei")
    lei = max(members, key=lambda k: (members[k], k))
    started = time.perf_counter()
    found = client.check([lei], "members").records()
    seconds = time.perf_counter() - started
    plain = [{"key": lei, "members": members[lei]}]
    return RiskCheck("entity check", {}, {"keys": found}, {"keys": plain}, seconds, "", "")


def _each_computation(client: GatewayClient, relayed: NamespacedConsortium) -> list[dict[str, Any]]:
    """Every other computation at the relay's current RTT: hops, latency, answers checked."""
    assert relayed.relay is not None
    schema = load_schema(schema_path())
    client.purpose = "benchmark"  # the demo's queries state none of their own
    runs = {
        "check": lambda: _entity_check(client, relayed.files),
        **{n: (lambda c=c: c(client, relayed.files, schema)) for n, c in RISK_CHECKS.items()},
        "train": lambda: training_check(client, relayed.files),
    }
    rtt_ms = relayed.relay.delay_s * 2000
    entries = []
    for name, run in runs.items():
        note(f"netns: {name}, RTT {rtt_ms:g} ms")
        _fresh(relayed.relay)
        checked = run()
        flights, _ = relayed.relay.take()
        hops = len(_path(flights, relayed.relay.delay_s, relayed.net))
        entries.append(
            {
                "case": name,
                "rtt_ms": round(rtt_ms),
                "latency": summary([checked.seconds * 1000]),
                "hops": hops,
                "counted_rounds": hops / 2,
                "wrong_results": int(not checked.matches),
            }
        )
    return entries


def _loopback(args: Any) -> dict[str, Any]:
    """The same aggregate with every process on loopback, for comparison."""
    with running_consortium(
        args.workdir / "netns-loopback", DEFAULT_NODES, args.netns_rows, args.seed
    ) as running:
        with client_for(running.files) as client:
            first_answer(client, BENCH_QUERY)
            note(f"netns: {args.netns_repeats} aggregates, loopback")
            entry = _measure(client, Reference.for_files(running.files), args)
    return {"case": "loopback", "rtt_ms": 0, **entry}


def _namespaced(
    root: Path, net: NamespaceNetwork, args: Any, rtts: list[int]
) -> list[dict[str, Any]]:
    """One consortium in ``net``: with no relay when ``rtts`` is empty, else relayed at each."""
    relayed = bool(rtts)
    case = "netns + relays" if relayed else "netns, direct"
    entries = []
    with namespaced_consortium(
        root,
        net,
        relayed=relayed,
        rows=args.netns_rows,
        seed=args.seed,
        query_timeout_s=60.0,
        policies="open",
        start_timeout_s=300.0,
    ) as running:
        reference = Reference.for_files(running.files)
        with client_for(running.files, address=running.analyst_address) as client:
            first_answer(client, BENCH_QUERY)
            for rtt in rtts or [0]:
                if running.relay is not None:
                    running.relay.delay_s = rtt / 2000
                note(f"netns: {args.netns_repeats} aggregates, {case}, RTT {rtt} ms")
                entry = _measure(client, reference, args, running if relayed else None)
                entries.append({"case": case, "rtt_ms": rtt, **entry})
            if relayed and args.netns_each:
                entries += _each_computation(client, running)
    return entries


def _rounds(entries: list[dict[str, Any]]) -> None:
    """Implied rounds and the target, against the relays' own latency at RTT 0."""
    base = next((e for e in entries if e["case"] == "netns + relays" and e["rtt_ms"] == 0), None)
    for entry in entries:
        rtt = entry["rtt_ms"]
        if entry["case"] != "netns + relays" or not rtt or base is None:
            continue
        added = entry["latency"]["median_ms"] - base["latency"]["median_ms"]
        entry["implied_rounds"] = round(added / rtt, 2)
        if "hops" in entry:
            entry["counted_rounds"] = entry["hops"] / 2
            entry["target_ms"] = entry["counted_rounds"] * rtt + TARGET_SLACK_MS
            entry["meets_target"] = entry["latency"]["median_ms"] <= entry["target_ms"]


def netns_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    reason = namespaces_unavailable()
    if reason is not None:
        note(f"netns: skipped: {reason}")
        return [{"case": "nodes in network namespaces", "rtt_ms": 0, "skipped": reason}]
    rtts = sorted({0, *args.netns_rtts})
    entries = [_loopback(args)]
    with node_namespaces(DEFAULT_NODES) as net:
        entries += _namespaced(args.workdir / "netns-direct", net, args, [])
        entries += _namespaced(args.workdir / "netns-relayed", net, args, rtts)
    _rounds(entries)
    return entries
