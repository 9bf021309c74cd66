"""The minimum batch counts entities the institutions know, end to end, and every node holds it.

The consortium runs the open policies with ``min_batch = 20`` (bank-b: 30), so
every plan carries ``min_entities = 30``, the strictest. A batch of one real
LEI padded with invented strings passes the gateway's count of distinct
strings (rule ``risk.batch``) but not the nodes' count, inside the MPC, of the
entities some institution knows: the analyst gets the refusal and nothing else.
An order signed with the gateway's key that lowers ``min_entities`` below
bank-b's policy is refused by bank-b itself.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal

import grpc
import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.concentration import ConcentrationPlan
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel
from mpc_gateway.devnet.localnet import LocalConsortium, prepare, schema_path
from mpc_gateway.devnet.risk_demo import batch
from mpc_gateway.errors import PolicyDeniedError
from mpc_gateway.policy import OutputControls
from mpc_gateway.query.schema import load_schema
from tests.e2e.conftest import ROWS, client_for, gateway_stub
from tests.forged import forge

pytestmark = pytest.mark.e2e

MIN_BATCH = {"consortium": 20, "bank-a": 20, "bank-b": 30, "broker-c": 20}
STRICTEST = max(MIN_BATCH.values())
INVENTED = [f"5493{7_000_000 + i:012d}PADS{i % 97:02d}" for i in range(STRICTEST)]
REFUSED = f"risk.batch: fewer than {STRICTEST} of the batch's entities are known"


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    files = prepare(tmp_path_factory.mktemp("batch"), rows=ROWS, seed=11, query_timeout_s=8.0)
    for owner, size in MIN_BATCH.items():
        path = files.policy(owner)
        text = path.read_text()
        assert "min_batch = 1\n" in text
        path.write_text(text.replace("min_batch = 1\n", f"min_batch = {size}\n"))
    running = LocalConsortium(files).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def alice(consortium: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(consortium) as client:
        yield client


@pytest.fixture(scope="module")
def known(consortium: LocalConsortium) -> list[str]:
    """Counterparties known to one, two or three institutions."""
    return batch(consortium.files)[: STRICTEST + 10]


@pytest.fixture(scope="module")
def count_model(alice: GatewayClient) -> str:
    model = ScoringModel(
        owner="analyst/alice",
        name="lenders-count",
        kind="linear",
        features=(ModelFeature(name="lenders"),),
        frac_bits=0,
        weight_bits=4,
        weights=(1,),
        intercept=0,
        threshold=Decimal(2),
        output="count",
    )
    return alice.register_model(model)


def _last_outcome(consortium: LocalConsortium) -> dict:
    with sqlite3.connect(consortium.files.root / "audit.sqlite") as log:
        entries = [json.loads(r[0]) for r in log.execute("SELECT data FROM entries ORDER BY idx")]
    return [e for e in entries if e["kind"] in ("query.failed", "result.released")][-1]


def test_a_real_key_padded_with_invented_ones_is_refused_by_the_mpcs_count(
    alice: GatewayClient, consortium: LocalConsortium, known: list[str], count_model: str
) -> None:
    padded = [known[0], *INVENTED[: STRICTEST - 1]]  # passes the string count exactly
    for run in (
        lambda: alice.score("loans", count_model, padded),
        lambda: alice.concentration("loans", keys=padded, limit="1000000", hhi="fraction"),
    ):
        with pytest.raises(PolicyDeniedError, match=REFUSED) as caught:
            run()
        assert not any(key in caught.value.public_message for key in padded)
        failed = _last_outcome(consortium)
        assert failed["kind"] == "query.failed" and REFUSED in failed["details"]["reason"]


def test_a_batch_with_enough_known_entities_runs(
    alice: GatewayClient, known: list[str], count_model: str
) -> None:
    keys = [*known[:STRICTEST], *INVENTED[:5]]
    counted = alice.score("loans", count_model, keys)
    assert counted.outcome.count is not None and 0 <= counted.outcome.count <= STRICTEST
    assert counted.controls.min_entities == STRICTEST  # the strictest policy's, in the plan
    flags = alice.concentration("loans", keys=keys, limit="1000000", hhi="none")
    assert len(flags.outcome.over_limit) == len(keys)
    explained = alice.explain("score", "loans", model_id=count_model, keys=keys)
    assert f"at least {STRICTEST} of them are known to the institutions" in str(explained)


def test_a_node_refuses_an_order_lowering_the_minimum_below_its_own_policy(
    consortium: LocalConsortium, known: list[str]
) -> None:
    schema = load_schema(schema_path())
    plan = ConcentrationPlan(
        analyst="analyst/alice",
        dataset="loans",
        schema_hash=schema.schema_hash,
        keys=tuple(known[:STRICTEST]),
        limit=Decimal("1000000"),
        hhi="none",
        purpose="testing",
        controls=OutputControls(min_entities=MIN_BATCH["consortium"]),  # bank-b requires 30
    )
    order = forge(consortium.files, plan, query_id="lowered-minimum").message()
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(consortium, "bank-b").Execute(order, timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = caught.value.details() or ""
    assert "output.controls" in details and "min_entities" in details and "bank-b" in details
