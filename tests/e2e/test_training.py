"""Joint training through a real gateway and three nodes, against statsmodels on pooled rows.

The consortium is the devnet's (bank-a, bank-b, broker-c, 3,000 seeded loans each,
their example policies); every run goes the way of any query: policies, audit,
the witnessed, sealed release. A node killed mid-training fails the run cleanly
and the next one works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.train import TrainOutcome
from mpc_gateway.computations.train_layout import VALIDATION_BINS, local_rows, train_layout
from mpc_gateway.computations.train_validation import local_histogram, split_rows
from mpc_gateway.devnet.localnet import LocalConsortium, schema_path
from mpc_gateway.errors import GatewayError, PolicyDeniedError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import load_schema
from mpc_gateway.tables import read_rows, records
from tests.e2e.conftest import client_for, running_consortium
from tests.train_oracle import pooled_fit, relative_error

pytestmark = pytest.mark.e2e

NODES = ("bank-a", "bank-b", "broker-c")
FEATURES = ("exposure", "lgd", "days_past_due", "rating", "sector")
PURPOSE = "risk monitoring"


@pytest.fixture(scope="module")
def trainers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    root = tmp_path_factory.mktemp("training")
    with running_consortium(root, query_timeout_s=120.0, policies="examples") as running:
        yield running


@pytest.fixture()
def alice(trainers: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(trainers, timeout_s=180.0) as client:
        yield client


def _pooled(consortium: LocalConsortium, family: str, label: str, features: tuple[str, ...]):
    schema = load_schema(schema_path("loans"))
    layout = train_layout(schema, 3, label, features, family == "logistic", Decimal(1), 12, 1, 1)
    parts = [
        local_rows(
            LocalDataset(schema, consortium.files.data_file(n)).cursor(), layout, ("TRUE", [])
        )
        for n in NODES
    ]
    design = np.vstack([d for d, _ in parts])
    return design, np.concatenate([y for _, y in parts])


def _train(client: GatewayClient, family: str = "logistic") -> TrainOutcome:
    released = client.train("loans", "defaulted", FEATURES, kind=family, l2="1", purpose=PURPOSE)
    assert isinstance(released.outcome, TrainOutcome)
    return released.outcome


def test_logistic_pd_model_matches_statsmodels_on_the_pooled_books(trainers, alice) -> None:
    outcome = _train(alice)
    assert outcome.converged and outcome.columns[0] == "intercept"
    design, label = _pooled(trainers, "logistic", "defaulted", FEATURES)
    expected = pooled_fit(design, label, "logistic", Decimal(1))
    assert relative_error(np.array(outcome.values()), expected) < 1e-6
    # scoring a batch with the released model: bank-a's loans as a user's file gives them
    rows = read_rows(trainers.files.data_file("bank-a")).head(300)
    found = outcome.predict(records(rows))
    plain = 1 / (1 + np.exp(-(design[:300] @ expected)))  # its first rows: bank-a's, in order
    assert np.abs(np.array(found) - plain).max() < 1e-9


def test_explain_states_what_the_nodes_and_the_gateway_learn(alice) -> None:
    report = alice.explain(
        "train", "loans", purpose=PURPOSE, label="defaulted", features=list(FEATURES)
    )
    assert report["allowed"], report
    texts = " ".join(d["text"] for d in report["disclosure"])
    assert "11 iterates before the released coefficients" in texts
    assert "never an iterate" in texts


def test_a_label_the_policies_do_not_allow_is_refused(alice) -> None:
    with pytest.raises(PolicyDeniedError, match="training.label"):
        alice.train("loans", "lgd", ("exposure", "rating"), kind="linear", purpose=PURPOSE)


def test_a_node_killed_mid_training_fails_cleanly_and_the_next_run_works(trainers, alice) -> None:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = _train(alice)
        except GatewayError as err:
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(2.0)  # the training's MPC step is under way
    trainers.kill("bank-b")
    thread.join(timeout=150)
    assert not thread.is_alive(), "the training must end, not hang"
    assert isinstance(outcome.get("error"), GatewayError), outcome
    trainers.start_node("bank-b")
    trainers.wait_healthy(30, names=["bank-b"])
    time.sleep(1.2)  # the gateway's channel retries a lost node at least once a second
    assert _train(alice, "linear").columns[0] == "intercept"


def test_the_joint_auc_comes_from_the_held_out_rows_of_every_node(trainers, alice) -> None:
    released = alice.train(
        "loans", "defaulted", FEATURES[:4], l2="1", holdout="0.25", seed=9, purpose=PURPOSE
    )
    outcome = released.outcome
    assert isinstance(outcome, TrainOutcome) and outcome.validation is not None
    schema = load_schema(schema_path("loans"))
    layout = train_layout(schema, 3, "defaulted", FEATURES[:4], True, Decimal(1), 12, 1, 1)
    expected = 0
    for name in NODES:
        source = LocalDataset(schema, trainers.files.data_file(name))
        design, label = local_rows(source.cursor(), layout, ("TRUE", []))
        held = split_rows(len(label), Decimal("0.25"), 9)
        beta = np.array(outcome.values())
        expected = expected + local_histogram(design[held], label[held], beta, VALIDATION_BINS)
    step = released.controls.round_counts_to  # bank-b's policy rounds counts to 5
    rounded = [(int(v) + step // 2) // step * step for v in expected]
    found = outcome.validation
    assert found.negatives + found.positives == rounded
    assert found.auc is not None and 0.5 < found.auc <= 1.0
