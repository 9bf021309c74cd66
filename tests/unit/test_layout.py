"""The secure-input layout: the columns each aggregate needs, and bits and a sentinel that fit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc_gateway.computations.aggregate import AggregateRequest, build_plan
from mpc_gateway.computations.aggregate_layout import layout_for
from mpc_gateway.query.schema import EXACT_SUM_LIMIT, DatasetSchema
from tests.unit import plan_cases
from tests.unit.plan_cases import agg, plan

schema = plan_cases.schema  # the module-scoped fixture, so that pytest finds it here


# --- layout_for ----------------------------------------------------------------------------


def test_count_is_shared_and_additive_columns_are_not_duplicated(schema: DatasetSchema) -> None:
    built = plan(schema, "count", "sum:exposure", "mean:exposure", "var:lgd", "stddev:exposure")

    layout = layout_for(built, schema, parties=3)

    assert len(layout.additive) == len(set(layout.additive))
    assert set(layout.additive) == {
        ("count", None),
        ("sum", "exposure"),
        ("sumsq", "exposure"),
        ("sum", "lgd"),
        ("sumsq", "lgd"),
    }
    assert (layout.minima, layout.maxima) == ((), ())


@pytest.mark.parametrize(
    ("aggs", "expected"),
    [
        (("count",), {("count", None)}),
        (("sum:exposure",), {("sum", "exposure")}),
        (("mean:exposure",), {("count", None), ("sum", "exposure")}),
        (("var:exposure",), {("count", None), ("sum", "exposure"), ("sumsq", "exposure")}),
        (("stddev:lgd",), {("count", None), ("sum", "lgd"), ("sumsq", "lgd")}),
        (("mean:exposure", "mean:lgd"), {("count", None), ("sum", "exposure"), ("sum", "lgd")}),
    ],
)
def test_additive_columns_are_what_each_aggregate_needs(
    aggs: tuple[str, ...], expected: set[tuple[str, str | None]], schema: DatasetSchema
) -> None:
    layout = layout_for(plan(schema, *aggs), schema, parties=3)

    assert set(layout.additive) == expected
    assert len(layout.additive) == len(expected)


def test_min_and_max_go_to_minima_and_maxima_only(schema: DatasetSchema) -> None:
    built = plan(schema, "min:exposure", "max:days_past_due", "min:lgd", "max:exposure")

    layout = layout_for(built, schema, parties=3)

    assert layout.additive == ()
    assert layout.minima == ("exposure", "lgd")
    assert layout.maxima == ("days_past_due", "exposure")


def test_additive_index_finds_each_stat(schema: DatasetSchema) -> None:
    layout = layout_for(plan(schema, "var:exposure", "mean:lgd"), schema, parties=3)

    for i, key in enumerate(layout.additive):
        assert layout.additive_index(*key) == i


@pytest.mark.parametrize("parties", [3, 5, 7])
def test_bits_hold_the_largest_possible_sum_of_squares(parties: int, schema: DatasetSchema) -> None:
    layout = layout_for(plan(schema, "var:exposure"), schema, parties=parties)
    # exposure: max 100,000,000 at scale 2 -> magnitude 10**10
    bound = schema.max_rows_per_node * parties * (10**10) ** 2

    assert 2 ** (layout.bits - 2) > bound


def test_bits_hold_the_row_count_when_only_counting(schema: DatasetSchema) -> None:
    layout = layout_for(plan(schema, "count"), schema, parties=3)

    assert 2 ** (layout.bits - 2) > schema.max_rows_per_node * 3


def test_sentinel_exceeds_every_encodable_value_and_fits_the_bits(schema: DatasetSchema) -> None:
    layout = layout_for(plan(schema, "min:exposure", "max:lgd"), schema, parties=3)

    assert layout.sentinel > 100_000_000 * 100  # largest exposure encoding
    assert layout.bits > (2 * layout.sentinel).bit_length()


def _one_column_schema(scale: int, low: int, high: int, max_rows: int) -> DatasetSchema:
    return DatasetSchema.model_validate(
        {
            "name": "t",
            "max_rows_per_node": max_rows,
            "columns": {"x": {"kind": "numeric", "scale": scale, "min": low, "max": high}},
        }
    )


@given(
    scale=st.integers(0, 6),
    low=st.integers(-(10**9), 10**9),
    width=st.integers(0, 10**9),
    max_rows=st.integers(1, 10**12),
    parties=st.integers(3, 9),
)
def test_layout_bounds_hold_for_any_declared_range(
    scale: int, low: int, width: int, max_rows: int, parties: int
) -> None:
    largest = max(abs(low), abs(low + width)) * 10**scale
    max_rows = min(max_rows, EXACT_SUM_LIMIT // max(1, largest**2))  # what a schema may declare
    schema = _one_column_schema(scale, low, low + width, max_rows)
    built = build_plan(
        AggregateRequest(
            dataset="t", aggregates=tuple(agg(a) for a in ("var:x", "min:x", "max:x"))
        ),
        schema,
        "ana",
    )

    layout = layout_for(built, schema, parties=parties)

    encodable = (Decimal(low) * 10**scale, Decimal(low + width) * 10**scale)
    magnitude = max(abs(v) for v in encodable)
    assert 2 ** (layout.bits - 2) > max_rows * parties * magnitude**2
    assert all(-layout.sentinel < v < layout.sentinel for v in encodable)
    assert layout.bits > (2 * layout.sentinel).bit_length()
