"""A local consortium for one benchmark: prepared afresh, started, always stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.workload import run_query
from mpc_gateway.client import GatewayClient, Released
from mpc_gateway.devnet.demo import ExampleQuery
from mpc_gateway.devnet.localnet import ConsortiumFiles, LocalConsortium, prepare
from mpc_gateway.errors import GatewayError

__all__ = ["Running", "running_consortium", "client_for", "first_answer"]


@dataclass(frozen=True)
class Running:
    consortium: LocalConsortium
    files: ConsortiumFiles
    prepare_s: float
    start_s: float


@contextmanager
def running_consortium(
    root: Path,
    nodes: Sequence[str],
    rows: int,
    seed: int,
    query_timeout_s: float = 60.0,
    data: Callable[[ConsortiumFiles], None] | None = None,
) -> Iterator[Running]:
    """Gateway and nodes as processes over fresh PKI and data; stopped whatever happens.

    Open policies: every analyst may run the benchmark query, no output controls.
    ``data`` may rewrite the prepared data files before the nodes start.
    """
    started = time.perf_counter()
    files = prepare(
        root, nodes=nodes, rows=rows, seed=seed, query_timeout_s=query_timeout_s, policies="open"
    )
    if data is not None:
        data(files)
    prepared = time.perf_counter()
    consortium = LocalConsortium(files)
    try:
        consortium.start(timeout_s=300.0)
        yield Running(consortium, files, prepared - started, time.perf_counter() - prepared)
    finally:
        consortium.stop()


def client_for(
    files: ConsortiumFiles,
    analyst: str = "alice",
    timeout_s: float = 120.0,
    address: str | None = None,
) -> GatewayClient:
    """An analyst's client of the gateway, at ``address`` (default: where it listens)."""
    return GatewayClient.from_pki(
        files.pki_dir, f"analyst/{analyst}", address or files.gateway_address, timeout_s=timeout_s
    )


@dataclass(frozen=True)
class FirstAnswer:
    result: Released
    ms: float  # from the first attempt to the first answer
    failures: list[str]  # what each failed attempt said


def first_answer(
    client: GatewayClient,
    query: ExampleQuery,
    timeout_s: float = 120.0,
) -> FirstAnswer:
    """The first answer after start-up, retrying refused or failed attempts (each recorded).

    A consortium whose processes all report SERVING may still fail its first
    queries (a node channel in reconnect backoff, a session still opening); the
    steady state is measured after this, and the failures are reported.
    """
    failures: list[str] = []
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while True:
        attempt = time.perf_counter()
        try:
            result = run_query(client, query)
            return FirstAnswer(result, (time.perf_counter() - started) * 1000, failures)
        except GatewayError as err:
            spent = time.perf_counter() - attempt
            failures.append(f"{type(err).__name__} after {spent:.2f} s: {err}"[:400])
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
