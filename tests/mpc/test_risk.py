"""Joint risk scores and portfolio risk, run by three real parties, against plaintext.

Every scoring and concentration job runs in one MPyC session (one process per
party, loopback, no TLS) over seeded loan books in which entities are known to
none, one, two or all three institutions; each test then checks one job's
released blocks against the plaintext reference over the pooled books.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from mpc_gateway.computations.concentration_layout import (
    concentration_layout,
    local_group_exposures,
)
from mpc_gateway.computations.features import FEATURES, local_entity_features
from mpc_gateway.computations.histogram import histogram_layout, local_histogram
from mpc_gateway.computations.quantile_search import (
    local_cumulative_counts,
    quantile_layout,
    search_quantiles,
)
from mpc_gateway.computations.scoring import (
    ScoreLayout,
    ScoringModel,
    open_weight_share,
    score_layout,
)
from mpc_gateway.devnet import reference
from mpc_gateway.mpc.wire import NODES_ONLY
from mpc_gateway.pki import init_consortium
from mpc_gateway.policy.controls import OutputControls
from tests.mpc.harness import open_blocks, run_calls, run_parties
from tests.mpc.risk_data import Books, make_books
from tests.mpc.risk_models import (
    NODES,
    PD_INTERCEPT,
    PD_MODEL,
    fixed,
    model,
    node_pem,
    seal,
    weights_of,
)

pytestmark = pytest.mark.mpc

PROGRAMS = {
    "entity_scores": "score:entity_scores",
    "concentration": "concentration:concentration",
    "histogram": "histogram:histogram",
    "quantile_round": "quantile:quantile_round",
}
ENTITIES = 240
ALL_FEATURES = tuple((name, 1, 0.001 * (i + 1)) for i, name in enumerate(FEATURES))
EXPOSURE_LIMIT = "400000"  # EUR
HISTOGRAM_EDGES = ["0", "10000", "1000000", "25000000", "50000000"]


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    return make_books(tmp_path_factory.mktemp("books"), ENTITIES)


def _score_job(
    books: Books, scoring: ScoringModel, shares: list[list[int]] | None = None
) -> tuple[ScoreLayout, list[dict[str, Any]]]:
    plan = score_layout(scoring, books.schema, len(NODES))
    args = []
    for party in range(len(NODES)):
        local = local_entity_features(books.cursor(party), books.schema, books.keys, plan.features)
        args.append(plan.program_args(local, shares[party] if shares else None))
    return plan, args


def _secret_shares(
    tmp_path_factory: pytest.TempPathFactory, scoring: ScoringModel
) -> list[list[int]]:
    pki = init_consortium(tmp_path_factory.mktemp("pki"), nodes=list(NODES))
    sealed = seal(pki, scoring)
    return [open_weight_share(scoring, sealed, n, node_pem(pki, n)[1]) for n in NODES]


@pytest.fixture(scope="module")
def jobs(books: Books, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every scoring/concentration/histogram job: its model or plan, and each party's args."""
    secret_decisions = model("decisions", secret=True)
    secret_scores = model("scores", secret=True)
    planned = {
        "linear_scores": _score_job(books, model("scores", kind="linear", threshold=None)),
        "logistic_decisions": _score_job(books, model("decisions")),
        "count": _score_job(books, model("count")),
        "all_features": _score_job(
            books, model("scores", kind="linear", threshold=None, spec=ALL_FEATURES, intercept=-1)
        ),
        "secret_decisions": _score_job(
            books, secret_decisions, _secret_shares(tmp_path_factory, secret_decisions)
        ),
        "secret_scores": _score_job(
            books, secret_scores, _secret_shares(tmp_path_factory, secret_scores)
        ),
    }
    jobs = {name: ("entity_scores", plan, args) for name, (plan, args) in planned.items()}
    per_lei = concentration_layout(
        books.schema, len(NODES), ENTITIES, limit=EXPOSURE_LIMIT, hhi="fraction"
    )
    exposures = [
        local_entity_features(books.cursor(p), books.schema, books.keys, ["total_exposure"])[:, 0]
        for p in range(len(NODES))
    ]
    jobs["concentration"] = ("concentration", per_lei, [per_lei.program_args(e) for e in exposures])
    sectors = [local_group_exposures(books.cursor(p), books.schema) for p in range(len(NODES))]
    by_sector = concentration_layout(
        books.schema, len(NODES), len(sectors[0]), hhi="flag", hhi_limit=3000
    )
    jobs["sector_hhi"] = ("concentration", by_sector, [by_sector.program_args(s) for s in sectors])
    bins = histogram_layout(books.schema, len(NODES), "exposure", HISTOGRAM_EDGES)
    counts = [local_histogram(books.cursor(p), books.schema, bins) for p in range(len(NODES))]
    jobs["histogram"] = ("histogram", bins, [bins.program_args(c) for c in counts])
    joint = sorted(int(sum(c[i] for c in counts)) for i in range(len(counts[0])))
    controlled = histogram_layout(
        books.schema,
        len(NODES),
        "exposure",
        HISTOGRAM_EDGES,
        OutputControls(min_cell_count=joint[1] + 1),
    )  # the two smallest bins fall below
    jobs["histogram_controlled"] = (
        "histogram",
        controlled,
        [controlled.program_args(c) for c in counts],
    )
    beyond = histogram_layout(
        books.schema, len(NODES), "exposure", HISTOGRAM_EDGES, OutputControls(min_cell_count=10**9)
    )  # far above the plan's bound on any count
    jobs["histogram_beyond"] = ("histogram", beyond, [beyond.program_args(c) for c in counts])
    return {"jobs": jobs, "exposures": exposures, "sectors": sectors}


@pytest.fixture(scope="module")
def released(jobs: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    """Run every job in one session; the receiver's view of each job's blocks."""
    names = list(jobs["jobs"])
    calls = [
        [(PROGRAMS[jobs["jobs"][n][0]], jobs["jobs"][n][2][party]) for n in names]
        for party in range(len(NODES))
    ]
    outcomes = run_calls(calls, timeout=120)
    return {
        name: open_blocks([party[i].result for party in outcomes]) for i, name in enumerate(names)
    }


def _joint(books: Books, features: tuple[str, ...]) -> np.ndarray:
    frames = [books.encoded(p) for p in range(len(NODES))]
    return reference.joint_features(frames, books.schema, books.keys, features)


def _expected_scores(
    books: Books, spec=PD_MODEL, intercept: float = PD_INTERCEPT
) -> list[Fraction]:
    joint = _joint(books, tuple(name for name, _, _ in spec))
    return reference.real_scores(
        model("scores", spec=spec, kind="linear", threshold=None),
        weights_of(spec),
        fixed(intercept),
        joint,
    )


def test_linear_scores_equal_the_plaintext_scores_exactly(books, jobs, released):
    plan = jobs["jobs"]["linear_scores"][1]
    assert [plan.score(v) for v in released["linear_scores"]["scores"]] == _expected_scores(books)


def test_entities_nobody_knows_score_the_intercept_alone(books, jobs, released):
    plan = jobs["jobs"]["linear_scores"][1]
    scores = released["linear_scores"]["scores"]
    unknown = [i for i, k in enumerate(books.keys) if not books.known_by[k]]
    assert unknown and {plan.score(scores[i]) for i in unknown} == {
        Fraction(fixed(PD_INTERCEPT), 1 << 16)
    }


def test_every_registered_feature_combines_across_institutions_like_the_reference(
    books, jobs, released
):
    plan = jobs["jobs"]["all_features"][1]
    expected = _expected_scores(books, ALL_FEATURES, -1)
    assert [plan.score(v) for v in released["all_features"]["scores"]] == expected


def test_logistic_decisions_equal_sigmoid_of_the_score_against_the_threshold(books, released):
    expected = reference.decisions(model("decisions"), _expected_scores(books))
    assert 0 < sum(expected) < len(expected)  # the data exercises both outcomes
    assert released["logistic_decisions"]["decisions"] == expected
    for pattern in ((), (0,), (0, 1), (0, 1, 2)):  # entities at 0..3 institutions all scored
        rows = [i for i, k in enumerate(books.keys) if books.known_by[k] == pattern]
        assert [released["logistic_decisions"]["decisions"][i] for i in rows] == [
            expected[i] for i in rows
        ]


def test_secret_weights_give_the_public_weights_results(released):
    assert released["secret_decisions"]["decisions"] == released["logistic_decisions"]["decisions"]
    assert released["secret_scores"]["scores"] == released["linear_scores"]["scores"]


def test_count_output_is_the_number_of_positive_decisions_and_nothing_else(books, released):
    expected = reference.decisions(model("decisions"), _expected_scores(books))
    assert released["count"] == {"count": [sum(expected)]}


@pytest.mark.parametrize(
    ("job", "blocks"),
    [
        ("linear_scores", {"scores": ENTITIES}),
        ("logistic_decisions", {"decisions": ENTITIES}),
        ("secret_decisions", {"decisions": ENTITIES}),
        ("count", {"count": 1}),
        ("concentration", {"over_limit": ENTITIES, "hhi": 2}),
        ("sector_hhi", {"hhi_over_limit": 1}),
        ("histogram", {"counts": 4}),
        ("histogram_controlled", {"counts": 4, "suppressed": 4}),
        ("histogram_beyond", {"counts": 4, "suppressed": 4}),
    ],
)
def test_a_job_releases_exactly_its_declared_blocks(released, job, blocks):
    assert {name: len(values) for name, values in released[job].items()} == blocks
    if job in ("logistic_decisions", "secret_decisions", "sector_hhi"):
        assert set(released[job][next(iter(blocks))]) <= {0, 1}


def test_concentration_flags_and_hhi_match_the_plaintext(jobs, released):
    limit = 400_000 * 100
    expected = reference.concentration(jobs["exposures"], limit)
    assert 0 < sum(expected["over_limit"]) < ENTITIES
    assert released["concentration"]["over_limit"] == expected["over_limit"]
    assert released["concentration"]["hhi"] == expected["hhi"]


def test_sector_hhi_flag_matches_the_plaintext(jobs, released):
    expected = reference.concentration(jobs["sectors"], None, hhi_limit=3000)
    assert released["sector_hhi"]["hhi_over_limit"] == expected["hhi_over_limit"]


def test_histogram_matches_numpy_over_the_pooled_rows(books, jobs, released):
    edges = jobs["jobs"]["histogram"][1].edges
    pooled = [v for p in range(len(NODES)) for v in books.encoded(p)["exposure"]]
    assert released["histogram"]["counts"] == reference.histogram(pooled, edges)


def test_histogram_bins_below_the_minimum_count_are_zeroed_and_flagged(jobs, released):
    plan = jobs["jobs"]["histogram_controlled"][1]
    joint = released["histogram"]["counts"]
    assert released["histogram_controlled"]["suppressed"] == [
        int(c < plan.min_count) for c in joint
    ]
    assert released["histogram_controlled"]["counts"] == [
        c if c >= plan.min_count else 0 for c in joint
    ]
    assert 0 < sum(released["histogram_controlled"]["suppressed"]) < len(joint)


def test_a_minimum_count_beyond_every_possible_count_suppresses_every_bin(released):
    """The comparison stays in range however large the minimum: nothing leaks as garbage."""
    assert released["histogram_beyond"] == {"counts": [0] * 4, "suppressed": [1] * 4}


def test_a_quantile_round_over_too_few_values_answers_like_no_values(books):
    """min_count above the joint count: every bracket is G, so the search finds nothing."""
    rows = sum(len(books.encoded(p)) for p in range(len(NODES)))
    minimums = [0, rows, rows + 1, 10**9]  # 10**9: far above the plan's bound on N
    plans = [
        quantile_layout(
            books.schema, len(NODES), "days_past_due", [Fraction(1, 2)], grid_size=16, min_count=m
        )
        for m in minimums
    ]
    grids = plans[0].search().grids()
    local = [
        local_cumulative_counts(books.cursor(p), "days_past_due", grids) for p in range(len(NODES))
    ]
    calls = [
        [(PROGRAMS["quantile_round"], plan.program_args(*local[p])) for plan in plans]
        for p in range(len(NODES))
    ]
    outcomes = run_calls(calls, timeout=120)
    first = [open_blocks([party[i].result for party in outcomes]) for i in range(len(plans))]
    assert all(blocks.keys() == {"bracket"} for blocks in first)
    brackets = [blocks["bracket"] for blocks in first]
    assert brackets[0] == brackets[1] != [16]  # at least min_count values: the exact answer
    assert brackets[2] == brackets[3] == [16]
    search = plans[2].search()  # a suppressed round ends the search with no result
    search.advance(brackets[2])
    while not search.done:
        search.advance([16])
    assert search.results() == [None]


def test_batched_quantile_search_finds_the_exact_inverted_cdf_quantiles(books):
    levels = [Fraction(1, 2), Fraction(9, 10), Fraction(1)]
    plan = quantile_layout(books.schema, len(NODES), "days_past_due", levels, grid_size=16)
    search = plan.search()
    assert search.rounds == 3  # 16**3 >= 3651 declared values

    def run_round(grids: list[list[int]]) -> list[int]:
        args = []
        for party in range(len(NODES)):
            counts, totals = local_cumulative_counts(books.cursor(party), "days_past_due", grids)
            args.append(plan.program_args(counts, totals))
        return open_blocks(run_parties(PROGRAMS["quantile_round"], args))["bracket"]

    found = search_quantiles(search, run_round)
    pooled = [v for p in range(len(NODES)) for v in books.encoded(p)["days_past_due"]]
    assert found == [reference.quantile(pooled, q) for q in levels]


def test_interpolated_quantiles_are_exact_from_two_searches_and_a_sealed_weight(books):
    """PERCENTILE_CONT at real parties: neighbours by search, weight from the last round."""
    levels = [Fraction(1, 2), Fraction(1, 10), Fraction(999, 1000), Fraction(1)]
    plan = quantile_layout(
        books.schema, len(NODES), "days_past_due", levels, grid_size=16, interpolation="linear"
    )
    search = plan.search()
    while not search.done:
        last, grids = search.last_round, search.grids()
        args = []
        for party in range(len(NODES)):
            counts, totals = local_cumulative_counts(books.cursor(party), "days_past_due", grids)
            args.append(plan.program_args(counts, totals, grids if last else ()))
        raw = run_parties(PROGRAMS["quantile_round"], args)
        assert all(party["bracket"][0] == NODES_ONLY for party in raw)  # never shares
        assert all(party["value"][0] > 0 for party in raw if last)  # shares for the receiver
        blocks = open_blocks(raw)
        assert ("weight" in blocks) == ("value" in blocks) == last  # sealed in the last round
        search.advance(blocks["bracket"])
    found = search.results()
    assert blocks["found"] == [int(v is not None) for v in found]
    assert blocks["value"] == [0 if v is None else v for v in found]
    pooled = [v for p in range(len(NODES)) for v in books.encoded(p)["days_past_due"]]
    for i, q in enumerate(levels):
        low, high = found[2 * i], found[2 * i + 1]
        assert low is not None
        got = plan.interpolate(q, low, low if high is None else high, blocks["weight"][i])
        assert Fraction(got) == reference.interpolated_quantile(pooled, q)


def test_a_withheld_interpolated_quantile_seals_no_weight(books):
    """Below min_count the brackets are G and the weight is 0: (N - 1) a mod b stays secret."""
    levels = [Fraction(1, 2), Fraction(1, 3)]
    plan = quantile_layout(
        books.schema,
        len(NODES),
        "days_past_due",
        levels,
        grid_size=8,
        min_count=10**6,
        interpolation="linear",
    )
    grids = plan.search().grids()
    args = [
        plan.program_args(*local_cumulative_counts(books.cursor(p), "days_past_due", grids), grids)
        for p in range(len(NODES))
    ]
    blocks = open_blocks(run_parties(PROGRAMS["quantile_round"], args))
    assert blocks["bracket"] == [8] * 4
    assert blocks["weight"] == [0, 0]
    assert blocks["found"] == [0] * 4 and blocks["value"] == [0] * 4
