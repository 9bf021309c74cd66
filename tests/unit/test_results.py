"""From reconstructed shares to the released statistics, checked against exact references."""

from __future__ import annotations

import math
import random
import statistics
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mpc_gateway
from mpc_gateway.computations.aggregate import (
    Aggregate,
    AggregatePlan,
    AggregateRequest,
    build_plan,
)
from mpc_gateway.computations.aggregate_layout import AggregateLayout, layout_for
from mpc_gateway.computations.aggregate_result import AggregateOutcome, decode_result, is_close
from mpc_gateway.orders import recombine_shares, signed
from mpc_gateway.query.schema import DatasetSchema, load_schema

P = 2**61 - 1
REL = 1e-12
AGGS = ("count", "sum", "mean", "var", "stddev", "min", "max")
LOANS = load_schema(Path(mpc_gateway.__file__).parent / "schemas" / "loans.toml")


@pytest.fixture
def schema() -> DatasetSchema:
    return LOANS


# --- Shamir recombination ------------------------------------------------------------------


def share(secret: int, coefficients: list[int], xs: range = range(1, 4)) -> list[tuple[int, int]]:
    """Evaluate secret + c1 x + c2 x^2 + ... at each x, over GF(P)."""
    poly = [secret, *coefficients]
    return [(x, sum(c * x**k for k, c in enumerate(poly)) % P) for x in xs]


@given(
    secret=st.integers(0, P - 1),
    coefficients=st.lists(st.integers(0, P - 1), min_size=1, max_size=2),
)
def test_recombining_three_shares_recovers_the_secret(secret: int, coefficients: list[int]) -> None:
    assert recombine_shares(share(secret, coefficients), P) == secret


@given(secret=st.integers(0, P - 1), c1=st.integers(0, P - 1), order=st.permutations([0, 1, 2]))
def test_any_two_shares_of_a_degree_one_sharing_suffice_in_any_order(
    secret: int, c1: int, order: list[int]
) -> None:
    points = share(secret, [c1])

    assert recombine_shares([points[i] for i in order[:2]], P) == secret


def test_recombination_uses_every_share() -> None:
    points = share(1234, [5, 6])
    tampered = [points[0], (points[1][0], (points[1][1] + 1) % P), points[2]]

    assert recombine_shares(tampered, P) != 1234


@given(st.integers(-(P // 2), P // 2), st.lists(st.integers(0, P - 1), min_size=1, max_size=2))
def test_signed_recovers_a_negative_secret_from_its_shares(
    secret: int, coefficients: list[int]
) -> None:
    assert signed(recombine_shares(share(secret % P, coefficients), P), P) == secret


@pytest.mark.parametrize(
    ("element", "expected"),
    [(0, 0), (1, 1), (P - 1, -1), (P - 5, -5), (P // 2, P // 2), (P // 2 + 1, -(P // 2))],
)
def test_signed_maps_the_upper_half_of_the_field_to_negatives(element: int, expected: int) -> None:
    assert signed(element, P) == expected


# --- decode_result -------------------------------------------------------------------------


def ill_conditioned(n: int = 1000) -> list[Decimal]:
    """Large values that differ little: 10,000,000 + k * 0.1."""
    return [Decimal(10_000_000) + Decimal(k % 10) / 10 for k in range(n)]


def region_rows() -> dict[str, list[Decimal]]:
    rnd = random.Random(11)
    return {
        "north": ill_conditioned(),
        "south": [Decimal("1234.56")],
        "east": [],
        "west": [Decimal("0.01"), Decimal("99999999.99")],
        "central": [Decimal(rnd.randrange(0, 10**10)) / 100 for _ in range(200)],
    }


def joint_blocks(
    built: AggregatePlan, layout: AggregateLayout, rows: dict[str, list[Decimal]], factor: int
) -> dict[str, list[int]]:
    """The joint integers the receiver reconstructs, computed here from plaintext rows."""
    blocks: dict[str, list[int]] = {"additive": [], "minima": [], "maxima": []}
    for (group,) in built.groups:
        encoded = [int(v * factor) for v in rows[group]]
        assert all(Decimal(e) == v * factor for e, v in zip(encoded, rows[group]))
        stats = {"count": len(encoded), "sum": sum(encoded), "sumsq": sum(e * e for e in encoded)}
        blocks["additive"] += [stats[stat] for stat, _ in layout.additive]
        blocks["minima"] += [min(encoded, default=layout.sentinel) for _ in layout.minima]
        blocks["maxima"] += [max(encoded, default=-layout.sentinel) for _ in layout.maxima]
    return blocks


def exposure_plan(schema: DatasetSchema, *funcs: str, group_by: str | None) -> AggregatePlan:
    aggregates = tuple(
        Aggregate(func=f, column=None if f == "count" else "exposure")  # type: ignore[arg-type]
        for f in funcs
    )
    query = AggregateRequest(dataset="loans", aggregates=aggregates, group_by=group_by)
    return build_plan(query, schema, "ana")


def decoded(schema: DatasetSchema, rows: dict[str, list[Decimal]]) -> dict[str, dict[str, object]]:
    built = exposure_plan(schema, *AGGS, group_by="region" if len(rows) > 1 else None)
    layout = layout_for(built, schema, parties=3)
    table = decode_result(built, layout, schema, joint_blocks(built, layout, rows, 100))
    return {group: dict(zip(AGGS, values)) for group, values in table.rows}


def rel_err(got: object, want: float) -> float:
    assert isinstance(got, float)
    return abs(got - want) / abs(want)


def test_result_has_one_row_per_group_in_domain_order(schema: DatasetSchema) -> None:
    result = decoded(schema, region_rows())

    assert list(result) == ["north", "south", "east", "west", "central"]


@pytest.mark.parametrize("group", ["north", "south", "west", "central"])
def test_count_and_sum_are_exact(group: str, schema: DatasetSchema) -> None:
    values = region_rows()[group]

    cells = decoded(schema, region_rows())[group]

    assert cells["count"] == len(values)
    assert isinstance(cells["sum"], Decimal)
    assert cells["sum"] == sum(values, Decimal(0))


@pytest.mark.parametrize("group", ["north", "west", "central"])
def test_mean_variance_and_stddev_match_exact_statistics(group: str, schema: DatasetSchema) -> None:
    exact = [Fraction(v) for v in region_rows()[group]]

    cells = decoded(schema, region_rows())[group]

    assert rel_err(cells["mean"], float(statistics.mean(exact))) < REL
    assert rel_err(cells["var"], float(statistics.variance(exact))) < REL
    assert rel_err(cells["stddev"], statistics.stdev(exact)) < REL


def test_min_and_max_are_exact_decimals(schema: DatasetSchema) -> None:
    cells = decoded(schema, region_rows())

    assert (cells["west"]["min"], cells["west"]["max"]) == (
        Decimal("0.01"),
        Decimal("99999999.99"),
    )
    assert cells["north"]["min"] == Decimal("10000000")
    assert cells["north"]["max"] == Decimal("10000000.9")


def test_ill_conditioned_variance_is_exact_where_the_naive_formula_fails(
    schema: DatasetSchema,
) -> None:
    values = ill_conditioned()
    n = len(values)
    floats = [float(v) for v in values]
    naive = (sum(x * x for x in floats) / n - (sum(floats) / n) ** 2) * n / (n - 1)
    exact = float(statistics.variance([Fraction(v) for v in values]))

    cells = decoded(schema, {"*": values})["*"]

    assert abs(naive - exact) / exact > 1e-3  # the data really defeats E[x^2] - E[x]^2
    assert rel_err(cells["var"], exact) < REL
    assert rel_err(cells["stddev"], math.sqrt(exact)) < REL


def test_empty_group_has_zero_count_and_no_mean_variance_or_extremes(
    schema: DatasetSchema,
) -> None:
    cells = decoded(schema, region_rows())["east"]

    assert cells == {
        "count": 0,
        "sum": Decimal(0),
        "mean": None,
        "var": None,
        "stddev": None,
        "min": None,
        "max": None,
    }


def test_single_row_group_has_a_mean_but_no_variance(schema: DatasetSchema) -> None:
    cells = decoded(schema, region_rows())["south"]

    assert cells["mean"] == 1234.56
    assert cells["var"] is None
    assert cells["stddev"] is None
    assert cells["min"] == cells["max"] == Decimal("1234.56")


def test_sentinel_valued_extremes_decode_to_none(schema: DatasetSchema) -> None:
    built = exposure_plan(schema, "min", "max", group_by=None)
    layout = layout_for(built, schema, parties=3)
    blocks = {"minima": [layout.sentinel], "maxima": [-layout.sentinel]}

    table = decode_result(built, layout, schema, blocks)

    assert table.rows == (("*", (None, None)),)


def test_sum_alone_decodes_without_a_count(schema: DatasetSchema) -> None:
    built = exposure_plan(schema, "sum", group_by=None)
    layout = layout_for(built, schema, parties=3)

    table = decode_result(built, layout, schema, {"additive": [123456789]})

    assert table.rows == (("*", (Decimal("1234567.89"),)),)


@given(st.lists(st.integers(0, 10**10), min_size=2, max_size=50))
def test_decoded_moments_match_exact_statistics_for_any_cents(cents: list[int]) -> None:
    values = [Decimal(c) / 100 for c in cents]
    exact = [Fraction(c, 100) for c in cents]

    cells = decoded(LOANS, {"*": values})["*"]

    assert cells["sum"] == sum(values, Decimal(0))
    assert math.isclose(cells["mean"], float(statistics.mean(exact)), rel_tol=REL)  # type: ignore[arg-type]
    variance = float(statistics.variance(exact))
    assert math.isclose(cells["var"], variance, rel_tol=REL, abs_tol=1e-300)  # type: ignore[arg-type]


def test_result_records_are_keyed_by_group_column_and_labels(schema: DatasetSchema) -> None:
    built = exposure_plan(schema, "count", "sum", group_by=None)
    layout = layout_for(built, schema, parties=3)
    table = decode_result(built, layout, schema, joint_blocks(built, layout, {"*": []}, 100))

    assert isinstance(table, AggregateOutcome)
    assert table.records() == [{"group": "*", "count": 0, "sum(exposure)": Decimal(0)}]


# --- is_close ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, True),
        (None, 0, False),
        (0, None, False),
        (Decimal("1.10"), Decimal("1.1"), True),
        (Decimal("1.1"), Decimal("1.10000000001"), False),
        (3, Decimal("3.00"), True),
        (3, 4, False),
        (1.0, 1.0 + 1e-12, True),
        (1.0, 1.001, False),
        (1e6, 1e6 * (1 + 1e-10), True),
        (0.0, 1e-13, True),
        (0.0, 1e-9, False),
        (Decimal("1234.56"), 1234.56, True),
    ],
)
def test_is_close_is_exact_for_decimals_and_relative_for_floats(
    a: object, b: object, expected: bool
) -> None:
    assert is_close(a, b) is expected  # type: ignore[arg-type]


def test_is_close_honours_a_looser_tolerance() -> None:
    assert not is_close(1.0, 1.001)
    assert is_close(1.0, 1.001, rel=1e-2)


# --- output controls ----------------------------------------------------------------------


def _suppressed(schema: DatasetSchema, report_rules: bool, block: str, bits: list[int]) -> Any:
    from mpc_gateway.policy import OutputControls

    controls = OutputControls(
        min_cell_count=10, min_institutions=2, dominance_percent=80, report_rules=report_rules
    )
    spec = AggregateRequest(
        dataset="loans",
        aggregates=(Aggregate(func="count"), Aggregate(func="sum", column="exposure")),
        group_by="region",
    )
    built = build_plan(spec, schema, "analyst/alice", controls)
    layout = layout_for(built, schema, 3)
    additive = [v for g in range(len(built.groups)) for v in (20 + g, 100 * (g + 1))]
    return decode_result(built, layout, schema, {"additive": additive, block: bits})


def test_a_suppressed_cell_says_only_that_it_was_withheld(schema: DatasetSchema) -> None:
    # north passes; south and east are withheld; the rest pass
    table = _suppressed(schema, False, "withheld", [0, 1, 1, 0, 0])
    assert table.suppressed == {"south": ("withheld",), "east": ("withheld",)}
    rows = dict(table.rows)
    assert rows["south"] == (None, None) and rows["east"] == (None, None)
    assert rows["north"] == (20, Decimal("1"))


def test_where_every_policy_opts_in_the_first_failed_rule_is_named(schema: DatasetSchema) -> None:
    # south fails the count first (as an empty cell would); east has enough records but
    # records of one institution only
    bits = [0, 0, 0, 1, 0, 0, 0, 1, 0] + [0, 0, 0] * 2
    table = _suppressed(schema, True, "failed", bits)
    assert table.suppressed == {"south": ("min_cell_count",), "east": ("min_institutions",)}
    assert dict(table.rows)["east"] == (None, None)


def test_released_counts_are_rounded_to_the_declared_multiple(schema: DatasetSchema) -> None:
    from mpc_gateway.policy import OutputControls

    spec = AggregateRequest(dataset="loans", aggregates=(Aggregate(func="count"),))
    built = build_plan(spec, schema, "analyst/alice", OutputControls(round_counts_to=5))
    layout = layout_for(built, schema, 3)
    assert [
        decode_result(built, layout, schema, {"additive": [n]}).rows[0][1][0] for n in (12, 13, 15)
    ] == [
        10,
        15,
        15,
    ]


def test_controls_put_a_count_in_the_layout_and_name_the_sums_for_dominance(
    schema: DatasetSchema,
) -> None:
    from mpc_gateway.policy import OutputControls

    spec = AggregateRequest(dataset="loans", aggregates=(Aggregate(func="sum", column="exposure"),))
    built = build_plan(
        spec, schema, "analyst/alice", OutputControls(min_cell_count=5, dominance_percent=70)
    )
    layout = layout_for(built, schema, 3)
    assert layout.additive[0] == ("count", None)
    controls = layout.mpc_controls()
    assert controls is not None
    assert controls["dominance_columns"] == [layout.additive_index("sum", "exposure")]
    assert build_plan(spec, schema, "analyst/alice").controls.evaluated_in_mpc is False
