"""Scenario 2: queries per second with 1, 8, 32, ... concurrent analysts, batched and not.

Each analyst is a thread with its own GatewayClient (alternately analyst/alice
and analyst/bob) running the benchmark query with a few distinct filters, for
``--duration`` seconds or ``--count`` queries each. Every reply is compared with
the plaintext answer of its query (computed once per distinct query); the run
counts requests, replies, wrong results, errors and duplicated query ids or
sequence numbers. The analysts run in this process, on the same cores as the
consortium: on a small machine their own CPU use is part of what is measured.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.consortium import Running, client_for, first_answer, running_consortium
from benchmarks.cpu import consortium_processes, cpu_per_query_ms, cpu_snapshot
from benchmarks.report import note
from benchmarks.scenarios import each
from benchmarks.stats import summary
from benchmarks.workload import Reference, run_query, throughput_queries
from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet.demo import ExampleQuery
from mpc_gateway.devnet.localnet import DEFAULT_NODES

__all__ = ["throughput_scenario"]

BATCH_ENV = "MPCGW_GATEWAY_BATCH_MAX"  # settings.GatewaySettings.batch_max, from the environment


@dataclass
class Analyst:
    """One analyst thread's client, plan and record."""

    client: GatewayClient
    offset: int
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wrong: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    connect_errors: int = 0
    query_ids: list[str] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)

    @property
    def replies(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    def one(self, query: ExampleQuery, reference: Reference) -> None:
        self.requests += 1
        started = time.perf_counter()
        try:
            result = run_query(self.client, query)
        except Exception as err:  # noqa: BLE001 - every failure is counted, none stops the run
            self.errors[type(err).__name__] += 1
            self.first_error.setdefault(type(err).__name__, str(err)[:300])
            return
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.query_ids.append(result.query_id)
        self.sequences.append(result.sequence)
        self.wrong += not reference.matches(query, result)

    def connect(self, attempts: int = 5) -> None:
        """Open the TLS connection before the clock starts (an untimed ListDatasets)."""
        for attempt in range(attempts):
            try:
                self.client.datasets()
                return
            except Exception as err:  # noqa: BLE001 - counted; the run goes on
                self.connect_errors += 1
                self.first_error.setdefault("connect", str(err)[:300])
                time.sleep(0.2 * (attempt + 1))


def _drive(
    analyst: Analyst,
    queries: list[ExampleQuery],
    reference: Reference,
    barrier: threading.Barrier,
    args: argparse.Namespace,
) -> None:
    analyst.connect()
    barrier.wait()
    deadline = time.monotonic() + args.duration
    k = 0
    while (k < args.count) if args.count else (time.monotonic() < deadline):
        analyst.one(queries[(analyst.offset + k) % len(queries)], reference)
        k += 1


def _duplicates(values: list[Any]) -> int:
    return sum(n - 1 for n in Counter(values).values() if n > 1)


def _tally(analysts: list[Analyst], wall_s: float, hung: int) -> dict[str, Any]:
    latencies = [ms for a in analysts for ms in a.latencies_ms]
    errors: Counter[str] = sum((a.errors for a in analysts), Counter())
    wrong = sum(a.wrong for a in analysts)
    requests = sum(a.requests for a in analysts)
    replies = sum(a.replies for a in analysts)
    return {
        "wall_s": round(wall_s, 3),
        "requests": requests,
        "replies": replies,
        "correct": len(latencies) - wrong,
        "wrong": wrong,
        "errors": dict(errors),
        "lost": requests - replies,
        "connect_errors": sum(a.connect_errors for a in analysts),
        "first_errors": {k: v for a in analysts for k, v in a.first_error.items()},
        "hung_analysts": hung,
        "duplicate_query_ids": _duplicates([q for a in analysts for q in a.query_ids]),
        # unique within one session epoch; a failure starts a new epoch at sequence 0
        "duplicate_sequences": _duplicates([s for a in analysts for s in a.sequences]),
        "qps": round((len(latencies) - wrong) / wall_s, 2) if wall_s > 0 else None,
        "latency": summary(latencies),
    }


def _run_threads(
    threads: list[threading.Thread],
    barrier: threading.Barrier,
    processes: dict[str, list[int]],
    args: argparse.Namespace,
) -> tuple[float, dict[str, Any]]:
    """Start the analysts together; wall time from the start to the last one done, and CPU."""
    for thread in threads:
        thread.start()
    barrier.wait()  # every analyst has connected
    cpu_before = cpu_snapshot(processes)
    started = time.perf_counter()
    give_up = time.monotonic() + (0 if args.count else args.duration) + 300
    for thread in threads:
        thread.join(timeout=max(0.1, give_up - time.monotonic()))
    wall_s = time.perf_counter() - started
    return wall_s, {"before": cpu_before, "after": cpu_snapshot(processes)}


def _at_concurrency(
    run: Running, reference: Reference, concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    queries = throughput_queries()
    analysts = [
        Analyst(client_for(run.files, "alice" if i % 2 == 0 else "bob"), i)
        for i in range(concurrency)
    ]
    barrier = threading.Barrier(concurrency + 1)
    threads = [
        threading.Thread(target=_drive, args=(a, queries, reference, barrier, args), daemon=True)
        for a in analysts
    ]
    try:
        wall_s, cpu = _run_threads(threads, barrier, consortium_processes(run.consortium), args)
    finally:
        for analyst in analysts:
            analyst.client.close()
    hung = sum(thread.is_alive() for thread in threads)
    replies = sum(a.replies for a in analysts)
    return {
        "concurrency": concurrency,
        "distinct_queries": len(queries),
        **_tally(analysts, wall_s, hung),
        "cpu_ms_per_query": cpu_per_query_ms(cpu["before"], cpu["after"], replies),
    }


@contextmanager
def _gateway_batches(batch_max: int) -> Iterator[None]:
    """The gateway started in this block batches at most ``batch_max`` queries (1: none)."""
    saved = os.environ.get(BATCH_ENV)
    os.environ[BATCH_ENV] = str(batch_max)
    try:
        yield
    finally:
        if saved is None:
            del os.environ[BATCH_ENV]
        else:
            os.environ[BATCH_ENV] = saved


def throughput_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One entry per --concurrency value and --batch-max, each over a consortium of its own.

    ``--batch-max 1`` is the baseline: every query goes to the nodes alone.
    """
    return [entry for batch_max in args.batch_max for entry in _batching(args, batch_max)]


def _batching(args: argparse.Namespace, batch_max: int) -> list[dict[str, Any]]:
    rows, root = args.throughput_rows, args.workdir / f"throughput-batch-{batch_max}"
    note(f"throughput: a consortium with {rows:,} rows/node, batches of {batch_max} at most")
    with (
        _gateway_batches(batch_max),
        running_consortium(root, DEFAULT_NODES, rows, args.seed) as run,
    ):
        reference = Reference.for_files(run.files)
        for query in throughput_queries():
            reference.answer(query)
        with client_for(run.files) as client:
            first = first_answer(client, throughput_queries()[0])
        what = f"{args.count} queries each" if args.count else f"{args.duration:g} s"

        def level(concurrency: int) -> dict[str, Any]:
            note(f"throughput: {concurrency} concurrent analysts, {what}")
            measured = _at_concurrency(run, reference, concurrency, args)
            return {"rows_per_node": rows, "batch_max": batch_max, **measured}

        entries = each("concurrency", args.concurrency, level)
    entries[0]["startup_failures"] = first.failures  # reported once, with the first level
    return entries
