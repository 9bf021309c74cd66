"""The minimum batch counts known entities, and a scoring count under DP: three real parties.

Every job's inputs come from the nodes' own code path (``local_inputs`` of the
computation, over each party's book), so what is tested is what a node sends.
The padding attack: one real key and 99 invented ones pass a string count of
100, but not the MPC's count of entities some institution knows; such a batch
releases zeros and the failed bit, and the receiver refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from mpc_gateway.computations import computation_of, score
from mpc_gateway.computations.base import Blocks, Execution, LocalData, Plan
from mpc_gateway.computations.concentration import ConcentrationPlan
from mpc_gateway.computations.features import local_entity_features
from mpc_gateway.computations.score import ScorePlan, Scores
from mpc_gateway.computations.scoring import ModelCatalog, ModelFeature, ScoringModel
from mpc_gateway.devnet import reference
from mpc_gateway.errors import PolicyDeniedError
from mpc_gateway.policy import OutputControls
from mpc_gateway.privacy import calibrate
from tests.mpc.harness import open_blocks, run_calls
from tests.mpc.risk_data import Books, make_books
from tests.mpc.risk_models import NODES, model

pytestmark = pytest.mark.mpc

ENTITIES = 240
LIMIT = Decimal("400000")  # EUR
INVENTED = [f"5493{8_000_000 + i:012d}FAKE{i % 97:02d}" for i in range(99)]
RHO = Decimal("0.1")
RUNS = 300  # noisy counts drawn for the spread test (~70 ms each)


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    return make_books(tmp_path_factory.mktemp("books"), ENTITIES)


def _known(books: Books) -> list[str]:
    return [k for k in books.keys if books.known_by[k]]


def _controls(min_entities: int, rho: Decimal | None = None) -> OutputControls:
    return OutputControls(min_entities=min_entities, dp_rho=rho)


def _score_plan(books: Books, scoring: ScoringModel, keys: list[str], **controls: Any) -> ScorePlan:
    return ScorePlan(
        analyst="analyst/alice",
        dataset=books.schema.name,
        schema_hash=books.schema.schema_hash,
        model_id=scoring.model_id,
        model=scoring,
        keys=tuple(keys),
        controls=_controls(**controls),
    )


def _concentration_plan(books: Books, keys: list[str], **controls: Any) -> ConcentrationPlan:
    return ConcentrationPlan(
        analyst="analyst/alice",
        dataset=books.schema.name,
        schema_hash=books.schema.schema_hash,
        keys=tuple(keys),
        limit=LIMIT,
        hhi="fraction",
        controls=_controls(**controls),
    )


def _node_call(books: Books, plan: Plan, party: int) -> tuple[str, dict[str, Any]]:
    """What a node sends for ``plan``: its own ``local_inputs``, as the node service calls it."""
    data = LocalData(books.cursor(party), books.schema, ("TRUE", []), len(NODES), NODES[party], b"")
    call = computation_of(plan).local_inputs(plan, {}, data)
    return call.program, call.args


def _node_calls(books: Books, plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    return [_node_call(books, plan, party) for party in range(len(NODES))]


def _run(books: Books, plans: list[Plan]) -> list[Blocks]:
    """Every plan once, in one session; the receiver's view of each job's blocks."""
    return _run_calls([_node_calls(books, plan) for plan in plans])


def _run_calls(per_job: list[list[tuple[str, dict[str, Any]]]]) -> list[Blocks]:
    """Every job's node calls, in one session; the receiver's view of each job's blocks."""
    outcomes = run_calls([[calls[p] for calls in per_job] for p in range(len(NODES))])
    return [open_blocks([party[i].result for party in outcomes]) for i in range(len(per_job))]


def _first_answer(read: Callable[..., Any]) -> Callable[..., Any]:
    """``read`` called once: every later call gets the first call's answer."""
    first: list[Any] = []

    def once(*args: Any, **kwargs: Any) -> Any:
        if not first:
            first.append(read(*args, **kwargs))
        return first[0]

    return once


def _repeated_calls(
    books: Books, plan: Plan, runs: int, monkeypatch: pytest.MonkeyPatch
) -> list[list[tuple[str, dict[str, Any]]]]:
    """``runs`` jobs of ``plan``: each node's real ``local_inputs``, called afresh for each.

    Every call draws its own noise; the node's entity features, the same in every
    run, are read from its rows once (reading them took 40% of a run).
    """
    per_node = []
    for party in range(len(NODES)):
        for name in ("local_entity_features", "local_presence"):
            monkeypatch.setattr(score, name, _first_answer(getattr(score, name)))
        per_node.append([_node_call(books, plan, party) for _ in range(runs)])
        monkeypatch.undo()
    return [[calls[run] for calls in per_node] for run in range(runs)]


def _decoded(books: Books, plan: Plan, blocks: Blocks) -> Any:
    models = ModelCatalog(*([plan.model] if isinstance(plan, ScorePlan) else []))
    computation = computation_of(plan)
    public = computation.run(plan, Execution(books.schema, len(NODES), models, lambda _: blocks))
    sealed = {k: v for k, v in blocks.items() if k not in computation.visible(plan)}
    return computation.decode(plan, {**public, **sealed}, books.schema, len(NODES))


@pytest.fixture(scope="module")
def batches(books: Books) -> dict[str, tuple[Plan, Blocks]]:
    """Padded, borderline and sufficient batches, scored and concentrated, min_entities 100."""
    known = _known(books)
    assert len(known) >= 120
    keys = {
        "padded": [known[0], *INVENTED],  # 100 distinct strings, 1 known entity
        "one_short": [*known[:99], INVENTED[0]],  # 99 known
        "repeated": [known[0]] * 100,  # one entity listed 100 times
        "enough": [*known[:100], *INVENTED[:20]],  # 100 known, 20 invented
    }
    plans: dict[str, Plan] = {}
    for name, batch in keys.items():
        plans[f"decisions/{name}"] = _score_plan(books, model("decisions"), batch, min_entities=100)
        if name != "repeated":  # concentration units are distinct
            plans[f"concentration/{name}"] = _concentration_plan(books, batch, min_entities=100)
    plans["count/padded"] = _score_plan(books, model("count"), keys["padded"], min_entities=100)
    plans["count/enough"] = _score_plan(books, model("count"), keys["enough"], min_entities=100)
    released = _run(books, list(plans.values()))
    return {name: (plan, blocks) for (name, plan), blocks in zip(plans.items(), released)}


@pytest.mark.parametrize(
    "job",
    [
        "decisions/padded",
        "decisions/one_short",
        "decisions/repeated",
        "concentration/padded",
        "concentration/one_short",
        "count/padded",
    ],
)
def test_a_batch_with_too_few_known_entities_releases_only_zeros_and_the_failed_bit(
    books, batches, job
) -> None:
    plan, blocks = batches[job]
    assert blocks.pop("enough_known") == [0]
    assert blocks and all(set(values) == {0} for values in blocks.values())
    with pytest.raises(PolicyDeniedError) as caught:
        _decoded(books, plan, {**blocks, "enough_known": [0]})
    message = caught.value.public_message
    assert "risk.batch: fewer than 100 of the batch's entities are known" in message
    assert not any(key in message for key in plan.keys or ())


def _joint(books: Books, keys: list[str], features: tuple[str, ...]) -> np.ndarray:
    frames = [books.encoded(p) for p in range(len(NODES))]
    return reference.joint_features(frames, books.schema, keys, features)


def _expected_decisions(books: Books, scoring: ScoringModel, keys: list[str]) -> list[int]:
    names = tuple(f.name for f in scoring.features)
    joint = _joint(books, keys, names)
    weights, intercept = list(scoring.weights or ()), int(scoring.intercept or 0)
    return reference.decisions(scoring, reference.real_scores(scoring, weights, intercept, joint))


def test_a_batch_with_enough_known_entities_releases_the_true_values(books, batches) -> None:
    plan, blocks = batches["decisions/enough"]
    assert blocks["enough_known"] == [1]
    expected = _expected_decisions(books, plan.model, list(plan.keys))
    assert 0 < sum(expected) < len(expected)  # the test discriminates
    assert blocks["decisions"] == expected
    assert _decoded(books, plan, blocks).decisions == [bool(d) for d in expected]
    plan, blocks = batches["count/enough"]
    assert blocks == {"count": [sum(expected)], "enough_known": [1]}
    plan, blocks = batches["concentration/enough"]
    exposures = [
        local_entity_features(books.cursor(p), books.schema, list(plan.keys), ["total_exposure"])[
            :, 0
        ]
        for p in range(len(NODES))
    ]
    truth = reference.concentration(exposures, int(LIMIT * 100))
    assert 0 < sum(truth["over_limit"]) < len(plan.keys)
    assert blocks == {"over_limit": truth["over_limit"], "hhi": truth["hhi"], "enough_known": [1]}
    assert _decoded(books, plan, blocks).over_limit == [bool(f) for f in truth["over_limit"]]


def test_concentration_over_categorical_units_has_no_batch_check(books) -> None:
    sectors = ConcentrationPlan(
        analyst="analyst/alice",
        dataset=books.schema.name,
        schema_hash=books.schema.schema_hash,
        group_by="sector",
        hhi="flag",
        hhi_limit=3000,
        controls=_controls(min_entities=10**5),
    )
    (blocks,) = _run(books, [sectors])
    assert set(blocks) == {"hhi_over_limit"}


def _discrete_gaussian_moments(scale: float) -> tuple[float, float]:
    """Exact E[X^2] and E[X^4] of the discrete Gaussian of scale σ (its pmf, summed)."""
    support = np.arange(-int(60 * scale) - 1, int(60 * scale) + 2, dtype=float)
    weights = np.exp(-(support**2) / (2 * scale**2))
    weights /= weights.sum()
    return float(weights @ support**2), float(weights @ support**4)


def test_a_noisy_count_carries_the_sum_of_every_nodes_full_scale_noise(
    books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its spread is that of m discrete Gaussians of scale σ, not one (nor m shares of one).

    RUNS noisy counts of one batch, each node drawing its noise in its own
    ``local_inputs``; v = released - exact. Three bounds, each failing by chance
    with probability below 2e-7 (so below 1e-6 together), valid for any sample
    size: a discrete Gaussian of scale σ is σ²-subgaussian (Canonne, Kamath,
    Steinke 2020), so with P = mσ² the mean obeys Hoeffding and Σv²/P the χ²
    upper tail (Laurent-Massart: Σv²/P <= n + 2√(nx) + 2x); Σv² is a sum of
    nonnegative terms, so its lower tail obeys Maurer's bound with the exact
    E[v⁴]. With one node's noise, or σ/√m at each, Σv² falls ~3x short; with the
    same sample at every node it is ~3x too large.
    """
    scoring = ScoringModel(
        owner="analyst/alice",
        name="cheap-count",
        kind="linear",
        features=(ModelFeature(name="lenders"),),  # a 4-bit comparison per entity: cheap
        frac_bits=0,
        weight_bits=8,
        weights=(1,),
        intercept=0,
        threshold=Decimal(2),  # known to at least two institutions
        output="count",
    )
    keys = _known(books)[:48]
    exact_plan = _score_plan(books, scoring, keys, min_entities=1)
    noisy_plan = _score_plan(books, scoring, keys, min_entities=1, rho=RHO)
    released = _run_calls(
        [_node_calls(books, exact_plan), *_repeated_calls(books, noisy_plan, RUNS, monkeypatch)]
    )
    exact = released[0]["count"][0]
    assert 0 < exact < len(keys)
    assert all(blocks["enough_known"] == [1] for blocks in released)
    v = np.array([blocks["count"][0] - exact for blocks in released[1:]], dtype=float)

    scale = calibrate(RHO, {"count": 1, "known": 1})["count"].scale
    assert [r.scale for r in Scores().noise(noisy_plan, books.schema, len(NODES))] == [scale] * 2
    m, n, x = len(NODES), RUNS, math.log(1 / 2e-7)
    second, fourth = _discrete_gaussian_moments(scale)
    variance = m * second  # of the sum of m independent samples
    fourth_sum = m * fourth + 3 * m * (m - 1) * second**2  # E[(X_1 + ... + X_m)^4]
    proxy = m * scale**2
    assert abs(v.sum()) <= math.sqrt(2 * n * proxy * math.log(2 / 2e-7))
    squares = float(v @ v)
    assert squares / proxy <= n + 2 * math.sqrt(n * x) + 2 * x
    assert squares >= n * variance - math.sqrt(2 * n * fourth_sum * x)
