"""Scenario 7: short-query latency while a long job runs in the other lane, and without one.

One consortium (three nodes, open policies, ``--lanes-rows`` loans each). First
``--lanes-repeats`` benchmark aggregates one after another with nothing else
running; then a ``--lanes-entities`` scoring batch (three secure maxima per
entity: :func:`~mpc_gateway.devnet.risk_demo.long_job_model`) is started, and
the same aggregate is sent back to back until the batch's answer arrives. Only
the aggregates that started after the batch was running at every node and ended
before its answer count as "during". Every reply is checked against the pooled
plaintext. With one MPC order for everything, the aggregates would wait for the
batch; with lanes, the short lane answers on its own. An entity check (one
counterparty against every member's alerts, :mod:`mpc_gateway.computations.check`)
alternates with the aggregate in both phases and is timed on its own row.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.consortium import client_for, first_answer, running_consortium
from benchmarks.report import note
from benchmarks.stats import percentile, summary
from benchmarks.workload import BENCH_QUERY, Reference, run_query
from mpc_gateway.client import GatewayClient, Released
from mpc_gateway.devnet.localnet import DEFAULT_NODES, ConsortiumFiles
from mpc_gateway.devnet.risk_demo import long_job_keys, long_job_model
from mpc_gateway.devnet.screening_demo import members_per_key
from mpc_gateway.errors import GatewayError

__all__ = ["lanes_scenario"]

Sample = tuple[float, float, bool, str]  # (started, ended) on perf_counter, right, which query


@dataclass(frozen=True)
class ShortQueries:
    """The short queries timed: the benchmark aggregate and an entity check, in turn."""

    reference: Reference
    lei: str  # the counterparty the check screens
    members: int  # how many institutions hold an alert of it (the pooled plaintext)

    @classmethod
    def for_files(cls, files: ConsortiumFiles) -> ShortQueries:
        members = members_per_key(files, "counterparty_lei")
        lei = min(members, key=lambda k: (-members[k], k))
        return cls(Reference.for_files(files), lei, members[lei])

    def timed(self, client: GatewayClient, turn: int) -> Sample:
        started = time.perf_counter()
        if turn % 2:
            answer = client.check([self.lei], "members", purpose="benchmark")
            right = answer.records() == [{"key": self.lei, "members": self.members}]
            return started, time.perf_counter(), right, "check"
        result = run_query(client, BENCH_QUERY)
        return started, time.perf_counter(), self.reference.matches(BENCH_QUERY, result), "agg"


def _long_job_running(files: ConsortiumFiles) -> bool:
    """Whether every node has received the long lane's order (its witness log says so)."""
    for node in files.nodes:
        with sqlite3.connect(files.node_config(node).parent / "audit.sqlite") as log:
            rows = log.execute("SELECT data FROM entries ORDER BY idx DESC LIMIT 50").fetchall()
        events = [json.loads(r[0]) for r in rows]
        if not any(
            e["kind"] == "order.received" and e["details"].get("lane") == "long" for e in events
        ):
            return False
    return True


def _during_long_job(
    files: ConsortiumFiles,
    alice: GatewayClient,
    bob: GatewayClient,
    entities: int,
    short: ShortQueries,
) -> tuple[list[Sample], float, float]:
    """Aggregates sent back to back while the batch runs; its start and end (perf_counter)."""
    model_id = alice.register_model(long_job_model("analyst/alice"))
    ended: dict[str, Any] = {}

    def score() -> None:
        try:
            ended["risk"] = alice.score(
                "loans", model_id, long_job_keys(entities), purpose="benchmark"
            )
        except GatewayError as err:
            ended["risk"] = err
        ended["at"] = time.perf_counter()

    job = threading.Thread(target=score)
    job.start()
    while not _long_job_running(files) and job.is_alive():
        time.sleep(0.05)
    running_from = time.perf_counter()
    samples = []
    while job.is_alive():
        samples.append(short.timed(bob, len(samples)))
    job.join()
    if not isinstance(ended["risk"], Released):
        raise RuntimeError(f"the long job failed: {ended['risk']}")
    return [s for s in samples if s[1] <= ended["at"]], running_from, ended["at"]


def _rows(case: str, samples: list[Sample], **extra: Any) -> list[dict[str, Any]]:
    """One row per kind of short query: the aggregate, then the entity check."""
    rows = []
    for kind, label in (("agg", "aggregate"), ("check", "entity check")):
        mine = [s for s in samples if s[3] == kind]
        latencies = [(end - start) * 1000 for start, end, _, _ in mine]
        figures = summary(latencies)
        figures["p99_ms"] = round(percentile(latencies, 99), 3) if latencies else None
        rows.append(
            {
                "case": f"{label}, {case}",
                "short_query": figures,
                "wrong_results": sum(not ok for _, _, ok, _ in mine),
                **extra,
            }
        )
    return rows


def lanes_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    root = args.workdir / "lanes"
    with running_consortium(root, DEFAULT_NODES, args.lanes_rows, args.seed) as running:
        files = running.files
        short = ShortQueries.for_files(files)
        with client_for(files) as alice, client_for(files, "bob") as bob:
            first_answer(bob, BENCH_QUERY)
            for turn in range(2 * args.warmup):
                short.timed(bob, turn)
            note(f"lanes: {args.lanes_repeats} aggregates and checks with no long job")
            idle = [short.timed(bob, turn) for turn in range(2 * args.lanes_repeats)]
            note(f"lanes: aggregates and checks while a {args.lanes_entities:,}-entity score runs")
            during, started, ended = _during_long_job(files, alice, bob, args.lanes_entities, short)
    return [
        *_rows("no long job", idle),
        *_rows(
            f"while a {args.lanes_entities:,}-entity score runs",
            during,
            long_job_running_ms=round((ended - started) * 1000, 1),
        ),
    ]
