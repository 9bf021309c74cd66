"""Long risk jobs in the long lane's MPC order: a dying node ends the job at once.

The consortium here gives aggregate queries a short deadline (2 s) and risk jobs
the default (600 s); a scoring job of a few thousand entities takes longer than
2 s. Aggregates no longer queue behind it: they run in the short lane
(tests/e2e/test_lanes.py shows them completing while it runs).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.devnet.risk_demo import long_job_keys, long_job_model
from mpc_gateway.errors import GatewayError
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

KEYS = long_job_keys(8000)


def test_a_node_dying_mid_risk_job_fails_it_at_once_and_releases_nothing(
    short_deadlines: LocalConsortium,
) -> None:
    with client_for(short_deadlines) as alice:
        model_id = alice.register_model(long_job_model("analyst/alice"))
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
