"""Long risk jobs in the global MPC order: queued queries wait, a dying node ends the job.

Jobs run in one global order. The consortium here gives aggregate queries a
short deadline (2 s) and risk jobs the default (600 s); a scoring job of a few
thousand entities takes longer than 2 s. The aggregate query sent while it runs
must get a deadline counted from the end of the jobs ahead of it: if it timed
out while waiting, the gateway would abort the session and the risk job with it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from mpc_gateway.client import Released
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.errors import GatewayError
from tests.e2e.conftest import client_for, start_consortium

pytestmark = pytest.mark.e2e

ANALYSTS = ("analyst/alice", "analyst/bob")
KEYS = [f"5493{c:012d}MPCG{c % 97:02d}" for c in range(1, 8001)]


@pytest.fixture(scope="module")
def short_deadlines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    running = start_consortium(tmp_path_factory.mktemp("risk-sessions"), query_timeout_s=2.0)
    try:
        yield running
    finally:
        running.stop()


def _slow_model(owner: str) -> ScoringModel:
    """Three secure maxima per entity: the comparisons make this batch take seconds."""
    return ScoringModel(
        owner=owner,
        name="slow",
        kind="linear",
        features=(
            ModelFeature(name="largest_loan", scale=100_000_000),
            ModelFeature(name="max_days_past_due", scale=30),
            ModelFeature(name="worst_rating"),
        ),
        frac_bits=8,
        weight_bits=16,
        weights=(256, 128, 64),
        intercept=-512,
        threshold=Decimal(1),
        output="count",
    )


def test_an_aggregate_queued_behind_a_long_risk_job_waits_its_turn(
    short_deadlines: LocalConsortium,
) -> None:
    # the job takes ~15 s on a quiet 2-core machine, several times that on a loaded one: the
    # analyst waits as long as it takes (the aggregate's own 2 s deadline is what is tested)
    alice, bob = (client_for(short_deadlines, name, timeout_s=300) for name in ANALYSTS)
    with alice, bob:
        model_id = alice.register_model(_slow_model("analyst/alice"))
        outcome: dict[str, object] = {}

        def score() -> None:
            try:
                outcome["risk"] = alice.score("loans", model_id, KEYS)
            except Exception as err:  # reported by the assertions below
                outcome["risk"] = err

        worker = threading.Thread(target=score)
        worker.start()
        time.sleep(4.0)  # the scoring job is dispatched and running (its MPC step takes ~15 s)
        started = time.perf_counter()
        counted = bob.query("loans", ["count"])
        waited = time.perf_counter() - started
        worker.join(timeout=300)
    risk = outcome.get("risk")
    assert isinstance(risk, Released), risk
    assert risk.outcome.count is not None and 0 <= risk.outcome.count <= len(KEYS)
    assert counted.outcome.rows[0][1][0] == 3 * 3000  # every node's rows
    assert counted.sequence == risk.sequence + 1, "the aggregate did not queue behind the job"
    assert waited > 2.0  # longer than its own deadline, and it still ran


def test_a_node_dying_mid_risk_job_fails_it_at_once_and_releases_nothing(
    short_deadlines: LocalConsortium,
) -> None:
    with client_for(short_deadlines) as alice:
        model_id = alice.register_model(_slow_model("analyst/alice"))
        outcome: dict[str, object] = {}

        def score() -> None:
            started = time.perf_counter()
            try:
                outcome["risk"] = alice.score("loans", model_id, KEYS)
            except GatewayError as err:
                outcome["risk"] = err
            outcome["seconds"] = time.perf_counter() - started

        worker = threading.Thread(target=score)
        worker.start()
        time.sleep(3.0)  # the job is in its MPC step (~15 s)
        short_deadlines.kill("bank-b")
        worker.join(timeout=60)
        assert not worker.is_alive(), "the risk query must end, not wait for its 600 s deadline"
        error = outcome["risk"]
        assert isinstance(error, GatewayError), error
        assert "bank-b" in error.public_message
        assert float(outcome["seconds"]) < 3.0 + 10.0  # type: ignore[arg-type]

        with sqlite3.connect(short_deadlines.files.root / "audit.sqlite") as log:
            entries = [
                json.loads(r[0]) for r in log.execute("SELECT data FROM entries ORDER BY idx")
            ]
        last = [e for e in entries if e["kind"] in ("query.failed", "result.released")][-1]
        assert last["kind"] == "query.failed" and "bank-b" in last["details"]["reason"]

        short_deadlines.start_node("bank-b")
        short_deadlines.wait_healthy(30, names=["bank-b"])
        time.sleep(1.2)  # the gateway's channel retries a lost node at least once a second
        again = alice.score("loans", model_id, KEYS[:50])
        assert again.outcome.count is not None
