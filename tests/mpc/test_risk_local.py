"""The parts of risk scoring outside the MPC: features, models and bounds, sealing, search.

No parties run here; these sit under tests/mpc with the programs they feed.
"""

from __future__ import annotations

import base64
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mpc_gateway.computations.features import FEATURES, local_entity_features
from mpc_gateway.computations.quantile_search import (
    QuantileSearch,
    Target,
    grid_points,
    rounds_needed,
    search_quantiles,
    search_targets,
)
from mpc_gateway.computations.scoring import (
    MAX_SCORE_BITS,
    ModelFeature,
    ScoringModel,
    check_scorable,
    open_weight_share,
    score_layout,
    seal_model_weights,
)
from mpc_gateway.devnet import reference
from mpc_gateway.errors import IntegrityError, InvalidRequestError
from mpc_gateway.pki import init_consortium
from mpc_gateway.pki.sealing import decrypt_share, split_secret_weights
from mpc_gateway.pseudonym import normalise_national_id
from tests.mpc.risk_data import Books, make_books
from tests.mpc.risk_models import NODES, model, node_pem, seal

pytestmark = pytest.mark.mpc


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    return make_books(tmp_path_factory.mktemp("books"), 64, seed=9)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return init_consortium(tmp_path_factory.mktemp("pki"), nodes=list(NODES))


# --- features ------------------------------------------------------------------------------


def test_local_features_match_a_row_by_row_reference_for_every_registered_feature(books):
    names = list(FEATURES)
    for party in range(3):
        local = local_entity_features(books.cursor(party), books.schema, books.keys, names)
        expected = reference.local_features(books.encoded(party), books.schema, books.keys, names)
        assert local.shape == (len(books.keys), len(names))
        assert local.tolist() == expected.tolist()
        unknown = [i for i, k in enumerate(books.keys) if party not in books.known_by[k]]
        assert not local[unknown].any()


def test_a_repeated_key_gets_its_row_each_time_and_a_filter_applies(books):
    key = next(k for k, parties in books.known_by.items() if 0 in parties)
    cursor = books.cursor(0)
    rows = local_entity_features(cursor, books.schema, [key, "nobody", key], ["loans", "lenders"])
    assert rows[0].tolist() == rows[2].tolist() and rows[1].tolist() == [0, 0]
    none = local_entity_features(
        cursor, books.schema, [key], ["loans"], where=("(exposure < ?)", [-1])
    )
    assert none.tolist() == [[0]]


def test_unknown_features_and_non_key_columns_are_refused(books):
    with pytest.raises(InvalidRequestError, match="unknown risk feature"):
        local_entity_features(books.cursor(0), books.schema, ["x"], ["credit_score"])
    with pytest.raises(InvalidRequestError, match="not an entity key"):
        local_entity_features(books.cursor(0), books.schema, ["x"], ["loans"], key_column="sector")


# --- models and bounds ---------------------------------------------------------------------


def test_model_validation_names_the_problem():
    with pytest.raises(ValidationError, match="unknown risk feature"):
        model("scores", spec=(("credit_score", 1, 1.0),), kind="linear", threshold=None)
    with pytest.raises(ValidationError, match="probability"):
        model("decisions", threshold="1.5")
    with pytest.raises(ValidationError, match="needs a threshold"):
        model("count", threshold=None)
    with pytest.raises(ValidationError, match="must not carry weights"):
        ScoringModel.model_validate(
            {**model("scores", secret=True).model_dump(), "weights": [1] * 5}
        )
    with pytest.raises(ValidationError, match="extra"):
        ScoringModel.model_validate({**model("scores").model_dump(), "weigths": [1] * 5})


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [
        ("linear", "1e3000"),  # sized the MPC at 9,990 bits: the long lane blocked for minutes
        ("linear", "1e30000000"),  # built 10**30000000 while planning: the planner hung
        ("linear", "-1e30"),
        ("linear", "1e-31"),
        ("linear", "0.1234567890123456789012345678901"),
        ("logistic", "1e-999999999999"),  # raised OverflowError in logit (INTERNAL)
        ("logistic", "0.9999999999999999999999999999999"),
    ],
)
def test_a_threshold_too_large_or_too_fine_is_refused_when_the_model_is_made(kind, threshold):
    with pytest.raises(ValidationError, match="below 10\\*\\*30 in size with at most 30"):
        model("decisions", kind=kind, threshold=threshold)


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [("linear", "-999999999999999999999999999999.5"), ("linear", "1e-30"), ("logistic", "1e-30")],
)
def test_thresholds_at_the_bounds_are_accepted_and_scaled_exactly(books, kind, threshold):
    plan = score_layout(model("decisions", kind=kind, threshold=threshold), books.schema, 3)
    if kind == "linear":
        assert plan.threshold == math.ceil(Fraction(threshold) * plan.denominator)
    else:
        logit = math.log(1e-30 / (1 - 1e-30))
        assert (plan.threshold - 1) / plan.denominator < logit <= plan.threshold / plan.denominator
    assert plan.score_bits <= MAX_SCORE_BITS


def test_a_model_needing_scores_wider_than_the_bound_is_refused_before_any_mpc(books):
    # coprime scales near 10**18: their lcm (the common scale L) has ~600 bits
    scales = [10**18 - d for d in (11, 17, 59, 93, 97, 123, 131, 179, 201, 203)]
    features = tuple(ModelFeature(name=n, scale=s) for n, s in zip(FEATURES, scales))
    wide = ScoringModel(
        owner="risk-office@bank-a",
        name="wide",
        kind="linear",
        features=features,
        frac_bits=64,
        weight_bits=128,
        weights_secret=True,
        threshold="1e29",
    )
    with pytest.raises(InvalidRequestError, match=f"bit scores .* at most {MAX_SCORE_BITS}"):
        score_layout(wide, books.schema, 3)
    narrow = wide.model_copy(update={"features": features[:2], "weight_bits": 32})
    assert score_layout(narrow, books.schema, 3).score_bits <= MAX_SCORE_BITS
    # registration: a model must fit one dataset at least
    with pytest.raises(InvalidRequestError, match="'wide' cannot score over any dataset: model"):
        check_scorable(wide, [books.schema], 3)
    with pytest.raises(InvalidRequestError, match="cannot score over any dataset: none"):
        check_scorable(narrow, [], 3)
    check_scorable(narrow, [books.schema], 3)


def test_model_id_is_deterministic_and_covers_every_field():
    assert model("decisions").model_id == model("decisions").model_id
    assert model("decisions").model_id != model("count").model_id
    assert model("decisions").model_id != model("decisions", threshold="0.31").model_id


def test_declared_bounds_cover_the_worst_case_score(books):
    scoring = model("decisions")
    plan = score_layout(scoring, books.schema, 3)
    worst = [FEATURES[name].joint_bound(books.schema, 3) for name in plan.features]
    weights = plan.public_weights  # already times L / scale_j
    assert weights is not None
    extreme = sum(abs(w) * x for w, x in zip(weights, worst)) + abs(weights[-1])
    assert extreme + abs(plan.threshold) < 1 << (plan.score_bits - 1)
    assert extreme + abs(plan.threshold) >= 1 << (plan.score_bits - 3)  # and not much more
    # sums need no comparison, days past due up to 3650, any_default is an OR, ratings 0..6
    assert plan.max_bits == (0, 0, (2 * 3650).bit_length() + 1, 1, (2 * 6).bit_length() + 1)


def test_logistic_threshold_is_the_ceiling_of_logit_p_on_the_integer_scale(books):
    plan = score_layout(model("decisions", threshold="0.3"), books.schema, 3)
    logit = float(np.log(0.3 / 0.7))
    assert (plan.threshold - 1) / plan.denominator < logit <= plan.threshold / plan.denominator


# --- secret weights ------------------------------------------------------------------------


def test_split_shares_are_bounded_and_add_up_to_the_weights():
    values = [5, -(2**20) + 1, 0]
    shares = split_secret_weights(values, 3, 20)
    assert [sum(col) for col in zip(*shares)] == values
    assert all(abs(v) <= 2 ** (20 + 40) for share in shares[:-1] for v in share)
    with pytest.raises(InvalidRequestError):
        split_secret_weights([2**20], 3, 20)


def test_plaintext_weights_appear_nowhere_the_gateway_or_another_node_can_read(pki):
    scoring = model("decisions", secret=True)
    # seven digits each, so that no ciphertext, base64 or hash text contains one by chance
    secrets_ = [1234567, -2345678, 3456789, 4567891, -5678912, -6789123]
    certs = {node: node_pem(pki, node)[0] for node in NODES}
    sealed = seal_model_weights(scoring, secrets_[:-1], secrets_[-1], certs)
    stored = scoring.model_dump_json() + sealed.model_dump_json()  # what the gateway keeps
    for value in secrets_:
        assert str(abs(value)) not in stored
    shares = []
    for node in NODES:
        share = open_weight_share(scoring, sealed, node, node_pem(pki, node)[1])
        assert not set(share) & set(secrets_)  # a node's own share is not the weights
        shares.append(share)
        received = json.dumps(
            {"model": scoring.model_dump(mode="json"), "share": sealed.shares[node]}
        )
        for value in secrets_:
            assert str(abs(value)) not in received
    assert [sum(col) for col in zip(*shares)] == secrets_


def test_a_sealed_share_opens_only_for_its_node_and_its_model(pki):
    scoring = model("decisions", secret=True)
    sealed = seal(pki, scoring)
    key_a = node_pem(pki, "bank-a")[1]
    with pytest.raises(IntegrityError):  # bank-b's share with bank-a's key
        decrypt_share(key_a, "bank-b", scoring.model_id, sealed.for_node("bank-b"))
    with pytest.raises(IntegrityError):  # bank-b's share relabelled as bank-a's
        decrypt_share(key_a, "bank-a", scoring.model_id, sealed.for_node("bank-b"))
    with pytest.raises(IntegrityError):  # bound to the model id
        decrypt_share(key_a, "bank-a", "0" * 64, sealed.for_node("bank-a"))
    tampered = bytearray(sealed.for_node("bank-a"))
    tampered[-1] ^= 1
    with pytest.raises(IntegrityError):
        decrypt_share(key_a, "bank-a", scoring.model_id, bytes(tampered))
    other = model("count", secret=True)
    with pytest.raises(InvalidRequestError, match="another model"):
        open_weight_share(other, sealed, "bank-a", key_a)
    assert base64.b64decode(sealed.shares["bank-a"])[0] == 1


# --- quantile search -----------------------------------------------------------------------


def _plain_round(values: list[int], targets: tuple[Target, ...]):
    """The round's brackets, computed in the clear the way the MPC program does."""

    def run(grids: list[list[int]]) -> list[int]:
        n = len(values)
        out = []
        for grid, t in zip(grids, targets):
            q = t.level
            target = 1 if n == 0 else q.numerator * n + t.offset
            out.append(sum(1 for g in grid if sum(v <= g for v in values) * q.denominator < target))
        return out

    return run


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-50, 1000), max_size=40),
    level=st.fractions(min_value=Fraction(1, 100), max_value=1, max_denominator=100),
    grid=st.integers(2, 70),
)
def test_search_finds_the_inverted_cdf_quantile_in_a_fixed_number_of_rounds(values, level, grid):
    targets = search_targets([level], "discrete")
    search = QuantileSearch(-50, 1000, targets, grid)
    assert search.rounds == rounds_needed(-50, 1000, grid)
    result = search_quantiles(search, _plain_round(values, targets))
    assert search.rounds_done == search.rounds
    assert result == [reference.quantile(values, level)]


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.integers(-50, 1000), max_size=40),
    level=st.decimals(min_value="0.001", max_value=1, places=3),
    grid=st.integers(2, 70),
)
def test_two_searches_and_the_weight_give_the_interpolated_quantile_exactly(values, level, grid):
    """PERCENTILE_CONT: both neighbours searched, ``(N - 1) a mod b`` as the weight."""
    q = Fraction(str(level))
    targets = search_targets([q], "linear")
    search = QuantileSearch(-50, 1000, targets, grid)
    low, high = search_quantiles(search, _plain_round(values, targets))
    expected = reference.interpolated_quantile(values, q)
    if expected is None:
        assert low is None and high is None
        return
    assert low is not None
    weight = (len(values) - 1) * q.numerator % q.denominator
    assert high is not None or weight == 0  # no value beyond: the weight is 0
    found = low + Fraction(weight, q.denominator) * ((low if high is None else high) - low)
    assert found == expected
    assert float(expected) == pytest.approx(np.quantile(values, float(q), method="linear"))


def test_a_one_value_column_still_takes_one_round():
    assert rounds_needed(7, 7, 16) == 1
    search = QuantileSearch(7, 7, search_targets([Fraction(1, 2)], "discrete"), 16)
    assert search_quantiles(search, _plain_round([7, 7], search.targets)) == [7]
    empty = QuantileSearch(7, 7, search_targets([Fraction(1, 2)], "discrete"), 16)
    assert search_quantiles(empty, _plain_round([], empty.targets)) == [None]


def test_grid_points_end_at_the_upper_end_and_increase():
    assert grid_points(0, 10, 4) == [3, 5, 8, 10]
    assert grid_points(0, 3, 5) == [1, 2, 3, 3, 3]


# --- pseudonyms ----------------------------------------------------------------------------


def test_a_national_id_is_one_person_however_it_is_written():
    assert normalise_national_id("850101-1234") == normalise_national_id(" 850101 1234 ")
    assert normalise_national_id("ab.12/3") == "AB123"
    with pytest.raises(InvalidRequestError, match="empty"):
        normalise_national_id(" -/ ")
