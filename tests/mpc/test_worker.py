"""The supervised MPC worker: three real worker processes over mutual TLS.

These run the same worker the nodes run (``python -m mpc_gateway.mpc.worker``)
with certificates from a throwaway consortium PKI, without any gRPC around it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mpc_gateway.devnet.localnet import free_port
from mpc_gateway.errors import GatewayError, ProtocolAbortedError
from mpc_gateway.mpc.wire import WorkerConfig
from mpc_gateway.node.session import WorkerProcess
from mpc_gateway.orders import recombine_shares, signed
from mpc_gateway.pki import Identity, init_consortium

pytestmark = pytest.mark.mpc

NODES = ("bank-a", "bank-b", "broker-c")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return init_consortium(tmp_path_factory.mktemp("pki"), nodes=list(NODES))


def _workers(pki, identities: tuple[str, ...] | None = None) -> list[WorkerProcess]:
    ports = [free_port() for _ in NODES]
    spiffe = identities or tuple(Identity("node", n, pki.trust_domain).spiffe_id for n in NODES)
    return [
        WorkerProcess(
            WorkerConfig(
                pid=i,
                addresses=tuple(("127.0.0.1", p) for p in ports),
                identities=spiffe,
                mpc_dir=str(pki.mpc_dir(name)),
                epoch=1,
            )
        )
        for i, name in enumerate(NODES)
    ]


def _run_all(workers: list[WorkerProcess], args: list[dict], timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(len(workers)) as pool:
        futures = [
            pool.submit(w.run, "aggregate:joint_aggregates", a, deadline)
            for w, a in zip(workers, args)
        ]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except GatewayError as err:
                outcomes.append(err)
    return outcomes


def _reconstruct(outcomes: list, block: str) -> list[int]:
    modulus = outcomes[0][0][block][0]
    columns = [o[0][block][1] for o in outcomes]
    return [
        signed(recombine_shares([(i + 1, v) for i, v in enumerate(vals)], modulus), modulus)
        for vals in zip(*columns)
    ]


def _args(i: int) -> dict:
    additive = np.array([[10 + i, 1000 * i], [0, 0]], dtype=object)
    minima = np.array([[50 - 7 * i], [999]], dtype=object)
    maxima = np.array([[50 + 7 * i], [-999]], dtype=object)
    return {
        "additive": additive,
        "minima": minima,
        "maxima": maxima,
        "bits": 64,
        "sentinel": 999,
    }


def test_three_workers_compute_joint_sums_and_extremes_over_tls(pki) -> None:
    workers = _workers(pki)
    try:
        first = _run_all(workers, [_args(i) for i in range(3)])
        second = _run_all(workers, [_args(i) for i in range(3)])  # the session stays warm
    finally:
        for worker in workers:
            worker.kill()
    for outcomes in (first, second):
        assert all(not isinstance(o, Exception) for o in outcomes), outcomes
        assert _reconstruct(outcomes, "additive") == [33, 3000, 0, 0]
        assert _reconstruct(outcomes, "minima") == [36, 999]
        assert _reconstruct(outcomes, "maxima") == [64, -999]
    # re-randomised: the same result comes back as fresh shares
    assert first[0][0]["additive"][1] != second[0][0]["additive"][1]


def test_worker_refuses_a_peer_whose_certificate_is_not_the_expected_node(pki) -> None:
    """MPyC trusts the party index a peer claims; our check binds the index to its certificate."""
    wrong = tuple(
        Identity("node", n, pki.trust_domain).spiffe_id for n in ("bank-a", "broker-c", "bank-b")
    )
    workers = _workers(pki, identities=wrong)
    try:
        outcomes = _run_all(workers, [_args(i) for i in range(3)], timeout=15)
    finally:
        for worker in workers:
            worker.kill()
    assert all(isinstance(o, ProtocolAbortedError) for o in outcomes), outcomes
    assert any("peer certificate check failed" in o.public_message for o in outcomes)


def test_a_peer_that_never_starts_fails_the_session_by_its_deadline(pki) -> None:
    *workers, absent = _workers(pki)
    absent.kill()  # broker-c never comes
    started = time.monotonic()
    try:
        outcomes = _run_all(workers, [_args(i) for i in range(2)], timeout=3)
    finally:
        for worker in workers:
            worker.kill()
    assert all(isinstance(o, GatewayError) for o in outcomes)
    assert "did not finish in time" in outcomes[0].public_message
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("report_rules", [False, True])
def test_output_controls_withhold_failing_cells_inside_the_mpc(pki, report_rules: bool) -> None:
    """A suppressed cell's figures are never opened: its released shares recombine to zero.

    Only one bit per cell says it was withheld; a policy that opts in learns the first
    rule it failed, never every rule (which would tell an empty cell from a small one).
    """
    counts = {0: [100, 100, 100], 1: [2, 1, 1], 2: [50, 0, 0], 3: [40, 40, 40]}
    sums = {0: [10, 10, 10], 1: [5, 5, 5], 2: [500, 0, 0], 3: [10, 900, 10]}
    controls = {
        "count_column": 0,
        "min_count": 10,
        "min_institutions": 2,
        "dominance_percent": 80,
        "dominance_columns": [1],
        "report_rules": report_rules,
    }

    def args(i: int) -> dict:
        additive = np.array([[counts[g][i], sums[g][i]] for g in range(4)], dtype=object)
        extremes = np.array([[7 * g + i] for g in range(4)], dtype=object)
        presence = np.array([1 if counts[g][i] else 0 for g in range(4)], dtype=object)
        return {
            "additive": additive,
            "minima": extremes,
            "maxima": extremes[:, :0],
            "bits": 64,
            "sentinel": 999,
            "controls": controls,
            "presence": presence,
        }

    workers = _workers(pki)
    try:
        outcomes = _run_all(workers, [args(i) for i in range(3)])
    finally:
        for worker in workers:
            worker.kill()
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    if report_rules:  # cell 1 fails the count first, 2 the institutions, 3 dominance
        assert _reconstruct(outcomes, "failed") == [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
        assert "withheld" not in outcomes[0][0]
    else:
        assert _reconstruct(outcomes, "withheld") == [0, 1, 1, 1]
        assert "failed" not in outcomes[0][0]
    assert _reconstruct(outcomes, "additive") == [300, 30, 0, 0, 0, 0, 0, 0]
    assert _reconstruct(outcomes, "minima") == [0, 999, 999, 999]
