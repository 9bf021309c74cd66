"""Joint training's plan, layout, policy rules, wire form and decoding (no MPC here)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import gmpy2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from mpc_gateway.computations import build, computation
from mpc_gateway.computations.train import TrainOutcome, TrainPlan, TrainRequest
from mpc_gateway.computations.train_layout import (
    FRAC_BITS,
    PRIMES,
    _entry_bounds,
    centred,
    field_modulus,
    local_moments,
    local_step,
    rational,
    train_layout,
)
from mpc_gateway.computations.train_validation import validation
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.policy import evaluate
from mpc_gateway.query.schema import DatasetSchema, NumericColumn
from tests.unit.policy_cases import ALICE, NOW, SCHEMA, failed, make_policy

FEATURES = ("exposure", "lgd", "rating", "sector")
TRAINING = {
    "principals": ["analyst/alice"],
    "labels": ["defaulted"],
    "features": list(FEATURES),
    "iterates_to_nodes": True,
    "min_rows": 1000,
}


def _plan(**fields: Any) -> TrainPlan:
    request = TrainRequest(
        dataset="loans",
        label=fields.pop("label", "defaulted"),
        features=fields.pop("features", FEATURES),
        purpose="risk monitoring",
        **fields,
    )
    plan = build(request, SCHEMA, str(ALICE), 3)
    assert isinstance(plan, TrainPlan)
    return plan


def _failed_rules(plan: TrainPlan, **training: Any) -> set[str]:
    policy = make_policy(training={**TRAINING, **training})
    return {rule for rule, _ in failed(evaluate(policy, plan, ALICE, NOW, 0))}


def test_a_plan_within_the_training_section_passes() -> None:
    assert _failed_rules(_plan()) == set()


@pytest.mark.parametrize(
    ("plan", "training", "rule"),
    [
        (dict(label="lgd", family="linear", features=("exposure",)), {}, "training.label"),
        (dict(features=("exposure", "region")), {}, "training.feature"),
        ({}, {"release_coefficients": False}, "training.release"),
        ({}, {"iterates_to_nodes": False}, "training.iterates"),
        ({}, {"families": ["linear"]}, "training.family"),
        ({}, {"principals": ["analyst/bob"]}, "training.principal"),
        (dict(min_rows=999), {}, "training.min_rows"),
        (dict(min_institutions=1), {}, "training.min_institutions"),
    ],
)
def test_each_training_rule_refuses_what_it_guards(
    plan: dict[str, Any], training: dict[str, Any], rule: str
) -> None:
    assert rule in _failed_rules(_plan(**plan), **training)


def test_ridge_discloses_no_iterate_so_needs_no_leave_to() -> None:
    plan = _plan(family="linear")
    assert "training.iterates" not in _failed_rules(plan, iterates_to_nodes=False)
    assert plan.declaration().training is not None
    assert not plan.declaration().training.iterates_to_nodes


def test_without_a_training_section_nothing_trains() -> None:
    decision = evaluate(make_policy(), _plan(), ALICE, NOW, 0)
    assert ("training.allowed", "bank-a's policy allows no training on 'loans'") in failed(decision)


def test_the_disclosure_names_the_iterates_the_nodes_learn() -> None:
    texts = " ".join(d["text"] for d in _plan(iterations=5).disclosure(["bank-a", "bank-b"]))
    assert "the 4 iterates before the released coefficients" in texts
    assert "never an iterate" in texts
    ridge = " ".join(d["text"] for d in _plan(family="linear").disclosure(["bank-a"]))
    assert "iterates" not in ridge and "ridge regression" in ridge


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(label="region"), "is not a numeric column"),
        (dict(label="days_past_due", features=("exposure",)), "a logistic label is 0 or 1"),
        (dict(features=("exposure", "defaulted")), "the label is not a feature"),
        (dict(features=("counterparty_lei",)), "is not a numeric or categorical column"),
    ],
)
def test_a_plan_that_does_not_fit_the_schema_is_refused(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        _plan(**fields)


def test_the_design_has_an_intercept_numerics_and_all_levels_but_the_first() -> None:
    layout = train_layout(SCHEMA, 3, "defaulted", FEATURES, True, Decimal(1), 12, 1000, 2)
    rating = SCHEMA.categorical("rating").domain
    assert layout.columns[:3] == ("intercept", "exposure", "lgd")
    assert layout.columns[3 : 3 + len(rating) - 1] == tuple(f"rating={v}" for v in rating[1:])
    assert len(layout.columns) == 3 + 6 + 9
    assert gmpy2.is_prime(layout.modulus)


def test_every_field_of_the_table_is_prime() -> None:
    # a Fermat test to base 2: a mistyped offset makes a composite that fails it with
    # overwhelming probability (the table was made with full primality tests; GMP's BPSW test
    # of every 24,576-bit entry would cost the suite 14 s)
    for bits, offset in PRIMES.items():
        n = (1 << bits) + offset
        assert gmpy2.powmod(2, n - 1, n) == 1, bits
    assert field_modulus(1 << 100) == (1 << 1024) + PRIMES[1024]


def test_the_system_solved_is_integral_and_within_its_bounds_at_the_worst_data() -> None:
    # every node full, every value at a bound: the integer system the field must hold
    # (entries and Cramer's bound) is the one the summed statistics give, divided by 2**F
    rows, parties, numeric = 5, 3, NumericColumn(scale=2, min=Decimal(-40), max=Decimal(40))
    label = NumericColumn(scale=0, min=Decimal(0), max=Decimal(1))
    schema = DatasetSchema(
        name="worst", max_rows_per_node=rows, columns={"x": numeric, "z": numeric, "y": label}
    )
    layout = train_layout(schema, parties, "y", ("x", "z"), True, Decimal("0.25"), 3, 1, 1)
    rng = np.random.default_rng(3)
    parts = [
        (
            np.column_stack([np.ones(rows), rng.choice([-40.0, 40.0], (rows, 2))]),
            rng.integers(0, 2, rows).astype(float),
        )
        for _ in range(parties)
    ]
    beta = np.array([0.0, 0.01, -0.02])
    moments = sum(local_moments(centred(d), FRAC_BITS) for d, _ in parts)
    steps = [local_step(centred(d), y, beta, FRAC_BITS) for d, y in parts]
    h, r = sum(s[0] for s in steps), sum(s[1] for s in steps)
    n, s1, s2 = moments[0], moments[1:3], moments[3:]
    l_num, l_den = layout.l2
    scale = Fraction(l_den * n * n, 1 << FRAC_BITS)
    a = np.array(
        [
            [
                h[j][k] * scale + (l_num * (n * s2[j - 1] - s1[j - 1] ** 2) if j == k and j else 0)
                for k in range(3)
            ]
            for j in range(3)
        ],
        dtype=object,
    )
    b = np.array([v * scale for v in r], dtype=object)
    assert all(v.denominator == 1 for v in (*a.ravel(), *b))
    bound_a, bound_b = _entry_bounds([1, 40, 40], 2, rows * parties, parties, layout.l2)
    assert (abs(a) <= np.array(bound_a, dtype=object)).all()
    assert (abs(b) <= np.array(bound_b, dtype=object)).all()
    solution = _exact_solve(a, b)
    p = layout.modulus
    for value in solution:  # the residue the MPC releases decodes to exactly this fraction
        assert rational(value.numerator * pow(value.denominator, -1, p) % p, p) == value


def _exact_solve(a: np.ndarray, b: np.ndarray) -> list[Fraction]:
    """``a^-1 b`` in fractions, by Cramer's rule (3 x 3)."""

    def det(m: np.ndarray) -> Fraction:
        return Fraction(
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    whole = det(a)
    out = []
    for k in range(3):
        replaced = a.copy()
        replaced[:, k] = b
        out.append(det(replaced) / whole)
    return out


@given(st.integers(-(10**40), 10**40), st.integers(1, 10**40))
def test_rational_reconstruction_recovers_every_fraction_within_the_bound(a: int, b: int) -> None:
    p = (1 << 1024) + PRIMES[1024]
    value = a * pow(b, -1, p) % p
    assert rational(value, p) == Fraction(a, b)


def test_the_job_message_carries_the_request_unchanged() -> None:
    train = computation("train")
    message = train.job_message(
        label="defaulted", features=FEATURES, family="linear", l2="0.5", min_rows=2000
    )
    common = {"dataset": "loans", "purpose": "p", "filter": None}
    request = train.request_from_proto(message, common)
    assert request == TrainRequest(
        label="defaulted",
        features=FEATURES,
        family="linear",
        l2=Decimal("0.5"),
        min_rows=2000,
        **common,
    )
    assert (
        train.request_from_proto(train.job_message("defaulted", ["lgd"]), common).iterations == 12
    )


def test_decode_gives_the_exact_coefficients_and_whether_they_converged() -> None:
    plan = _plan(features=("exposure", "lgd"))
    train = computation("train")
    p = train.layout(plan, SCHEMA, 3).modulus
    beta = [Fraction(-7, 3), Fraction(1, 10**9), Fraction(5, 2)]
    moved = [beta[0] + Fraction(1, 10**3), beta[1], beta[2]]

    def residues(values: list[Fraction]) -> list[int]:
        return [v.numerator * pow(v.denominator, -1, p) % p for v in values]

    blocks = {"coefficients": residues(beta), "singular": [0], "enough": [1]}
    done = train.decode(plan, {**blocks, "previous": residues(beta)}, SCHEMA, 3)
    assert isinstance(done, TrainOutcome) and done.coefficients == beta and done.converged
    assert not train.decode(plan, {**blocks, "previous": residues(moved)}, SCHEMA, 3).converged
    singular = train.decode(plan, {**blocks, "singular": [1], "previous": [0] * 3}, SCHEMA, 3)
    assert singular.singular and not singular.coefficients


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
)
def test_the_auc_of_a_histogram_is_the_mann_whitney_statistic(
    negatives: list[int], positives: list[int]
) -> None:
    histogram = [0] * 20
    for b in negatives:
        histogram[b] += 1
    for b in positives:
        histogram[10 + b] += 1
    found = validation(histogram)
    u = mannwhitneyu(positives, negatives).statistic
    assert found.auc == pytest.approx(u / (len(positives) * len(negatives)))
    confusion = found.confusion()
    assert confusion["true_positive"] == sum(b >= 5 for b in positives)
    assert confusion["false_positive"] == sum(b >= 5 for b in negatives)
    table = found.calibration(bands=5)  # bands of two bins: [0, 0.2), [0.2, 0.4), ...
    for k, band in enumerate(table):
        rows = [b for b in negatives + positives if b // 2 == k]
        assert (band.low, band.high) == pytest.approx((k / 5, (k + 1) / 5))
        assert band.rows == len(rows) and band.positives == sum(b // 2 == k for b in positives)
        if rows:
            assert band.predicted == pytest.approx(np.mean([(b + 0.5) / 10 for b in rows]))
            assert band.low < band.predicted < band.high
            assert band.observed == band.positives / band.rows
        else:
            assert band.predicted is None and band.observed is None
    with pytest.raises(ValueError, match="do not split into 3 bands"):
        found.calibration(bands=3)


def test_a_held_out_split_needs_a_logistic_model_and_is_disclosed() -> None:
    with pytest.raises(InvalidQueryError, match="needs a logistic model"):
        _plan(family="linear", holdout=Decimal("0.2"))
    plan = _plan(holdout=Decimal("0.2"), seed=3)
    texts = " ".join(d["text"] for d in plan.disclosure(["bank-a"]))
    assert "held-out rows" in texts and "the released coefficients (to score" in texts
    ridge = _plan(family="linear")
    assert not ridge.validated and plan.declaration().training is not None
    assert plan.declaration().training.iterates_to_nodes
