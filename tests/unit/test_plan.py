"""Query validation, the canonical plan and its hash, schema files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mpc_gateway.computations.aggregate import (
    ALL_ROWS,
    AggregatePlan,
    AggregateRequest,
    validate_spec,
)
from mpc_gateway.errors import ConfigurationError, InvalidQueryError
from mpc_gateway.query.schema import DatasetSchema, load_schema
from tests.unit import plan_cases
from tests.unit.plan_cases import agg, plan, spec

schema = plan_cases.schema  # the module-scoped fixture, so that pytest finds it here

KNOWN = ("days_past_due", "defaulted", "exposure", "lgd", "rating", "region", "sector")
RATINGS = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC")


def refusal(query: AggregateRequest, schema: DatasetSchema) -> str:
    with pytest.raises(InvalidQueryError) as excinfo:
        validate_spec(query, schema)
    return excinfo.value.public_message


# --- validate_spec -------------------------------------------------------------------------


def test_packaged_schema_declares_the_expected_columns(schema: DatasetSchema) -> None:
    assert schema.name == "loans"
    keys = ("counterparty_lei", "guarantor_pseudonym")
    assert tuple(sorted(schema.columns)) == tuple(sorted((*KNOWN, *keys)))


def test_entity_key_cannot_be_aggregated_filtered_or_grouped(schema: DatasetSchema) -> None:
    for query in (
        spec("count", where="counterparty_lei = 'X'"),
        spec("count", group_by="counterparty_lei"),
        spec("sum:counterparty_lei"),
    ):
        with pytest.raises(InvalidQueryError, match="'counterparty_lei' is an entity key"):
            validate_spec(query, schema)


def test_valid_query_passes(schema: DatasetSchema) -> None:
    query = spec(
        "count",
        "sum:exposure",
        "stddev:lgd",
        "max:days_past_due",
        where="rating IN ('AAA', 'AA') AND exposure > 1000.505 OR region != 'north'",
        group_by="sector",
    )

    validate_spec(query, schema)


@pytest.mark.parametrize(
    ("query", "role"),
    [
        (spec("sum:balance"), "aggregate sum"),
        (spec("count", where="balance > 3"), "filter"),
        (spec("count", where="rating = 'A' AND balance IN (1, 2)"), "filter"),
        (spec("count", group_by="balance"), "group by"),
    ],
)
def test_unknown_column_is_refused_listing_the_known_columns(
    query: AggregateRequest, role: str, schema: DatasetSchema
) -> None:
    message = refusal(query, schema)

    assert message == f"unknown column 'balance' in {role}; dataset 'loans' has: {', '.join(KNOWN)}"


@pytest.mark.parametrize("func", ["sum", "mean", "var", "stddev", "min", "max"])
def test_aggregate_over_a_categorical_column_is_refused(func: str, schema: DatasetSchema) -> None:
    message = refusal(spec(f"{func}:rating"), schema)

    assert message == f"{func}(rating) needs a numeric column; 'rating' is categorical"


def test_count_with_a_column_is_refused(schema: DatasetSchema) -> None:
    assert (
        refusal(spec("count:exposure"), schema)
        == "count takes no column: it counts the rows that match"
    )


@pytest.mark.parametrize("func", ["sum", "mean", "var", "stddev", "min", "max"])
def test_aggregate_without_a_column_is_refused(func: str, schema: DatasetSchema) -> None:
    assert refusal(spec(func), schema) == f"{func} needs a numeric column, e.g. {func}:exposure"


def test_group_by_a_numeric_column_is_refused(schema: DatasetSchema) -> None:
    assert refusal(spec("count", group_by="exposure"), schema) == (
        "group by needs a categorical column with a declared domain; 'exposure' is numeric"
    )


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_categorical_ordered_comparison_is_refused(op: str, schema: DatasetSchema) -> None:
    message = refusal(spec("count", where=f"rating {op} 'BBB'"), schema)

    assert message == f"'rating' is categorical: use =, != or IN, not {op}"


@pytest.mark.parametrize(
    "where",
    [
        "rating = 'D'",
        "rating != 'D'",
        "rating IN ('AAA', 'D')",
        "rating NOT IN ('D')",
        "exposure > 1 AND (region = 'north' OR rating = 'D')",
    ],
)
def test_value_outside_a_categorical_domain_is_refused(where: str, schema: DatasetSchema) -> None:
    assert refusal(spec("count", where=where), schema) == (
        "'D' is not in the declared domain of 'rating'"
    )


def test_categorical_domain_is_case_sensitive(schema: DatasetSchema) -> None:
    assert refusal(spec("count", where="rating = 'aaa'"), schema) == (
        "'aaa' is not in the declared domain of 'rating'"
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("exposure > 'ten'", "'exposure' is numeric; 'ten' is not a number"),
        ("lgd IN (0.5, 'x')", "'lgd' is numeric; 'x' is not a number"),
        ("exposure < 'NaN'", "'exposure' is numeric; 'NaN' is not a finite number"),
        ("exposure < 'Infinity'", "'exposure' is numeric; 'Infinity' is not a finite number"),
    ],
)
def test_non_numeric_literal_for_a_numeric_column_is_refused(
    where: str, message: str, schema: DatasetSchema
) -> None:
    assert refusal(spec("count", where=where), schema) == message


def test_numeric_literal_in_quotes_is_accepted(schema: DatasetSchema) -> None:
    validate_spec(spec("count", where="exposure > '1000.50'"), schema)


def test_duplicate_aggregate_is_refused(schema: DatasetSchema) -> None:
    assert (
        refusal(spec("count", "mean:exposure", "mean:exposure"), schema)
        == "an aggregate is listed twice"
    )


def test_same_function_on_different_columns_is_not_a_duplicate(schema: DatasetSchema) -> None:
    validate_spec(spec("mean:exposure", "mean:lgd"), schema)


def test_query_for_another_dataset_is_refused(schema: DatasetSchema) -> None:
    query = AggregateRequest(dataset="deposits", aggregates=(agg("count"),))

    assert refusal(query, schema) == "query is for 'deposits', schema is 'loans'"


# --- build_plan ----------------------------------------------------------------------------


def test_group_by_takes_the_declared_domain_as_groups(schema: DatasetSchema) -> None:
    built = plan(schema, "count", group_by="rating")

    assert built.groups == tuple((r,) for r in RATINGS)
    assert built.group_by == ("rating",)


def test_ungrouped_plan_has_one_all_rows_group(schema: DatasetSchema) -> None:
    built = plan(schema, "count")

    assert built.groups == ((ALL_ROWS,),) == (("*",),)
    assert built.group_by == ()


def test_plan_carries_schema_hash_analyst_and_purpose(schema: DatasetSchema) -> None:
    built = plan(schema, "count", analyst="ana@bank-a", purpose="stress test")

    assert built.schema_hash == schema.schema_hash
    assert (built.analyst, built.dataset, built.purpose) == ("ana@bank-a", "loans", "stress test")


def test_build_plan_refuses_an_invalid_query(schema: DatasetSchema) -> None:
    with pytest.raises(InvalidQueryError, match="an aggregate is listed twice"):
        plan(schema, "count", "count")


def test_plan_hash_is_sha256_of_the_canonical_plan(schema: DatasetSchema) -> None:
    built = plan(schema, "mean:exposure", where="exposure > 1000.505", group_by="region")

    assert built.plan_hash == hashlib.sha256(built.canonical()).hexdigest()
    assert b"1000.505" in built.canonical()


def test_plan_hash_is_deterministic_across_builds(schema: DatasetSchema) -> None:
    first = plan(schema, "count", "var:lgd", where="rating IN ('A', 'AA')", group_by="sector")
    second = plan(schema, "count", "var:lgd", where="rating IN ('A', 'AA')", group_by="sector")

    assert first is not second
    assert first.canonical() == second.canonical()
    assert first.plan_hash == second.plan_hash


_BASE = {"aggs": ("count", "mean:exposure"), "where": "rating = 'AAA'", "group_by": "region"}


@pytest.mark.parametrize(
    "change",
    [
        {"where": "rating = 'AA'"},
        {"where": "rating != 'AAA'"},
        {"where": "rating IN ('AAA')"},
        {"where": ""},
        {"purpose": "another purpose"},
        {"analyst": "bob"},
        {"group_by": "sector"},
        {"group_by": None},
        {"group_by": "region,sector"},
        {"group_by": ("sector", "region")},
        {"aggs": ("count", "mean:lgd")},
        {"aggs": ("mean:exposure", "count")},
    ],
)
def test_plan_hash_changes_when_any_field_changes(
    change: dict[str, object], schema: DatasetSchema
) -> None:
    def build(**overrides: object) -> AggregatePlan:
        fields: dict[str, object] = {**_BASE, "purpose": "audit", "analyst": "ana", **overrides}
        aggs = fields.pop("aggs")
        analyst = fields.pop("analyst")
        return plan(schema, *aggs, analyst=analyst, **fields)  # type: ignore[arg-type,misc]

    assert build(**change).plan_hash != build().plan_hash


# --- schema files --------------------------------------------------------------------------

_VALID_TOML = """\
name = "t"

[columns.amount]
kind = "numeric"
scale = 2
min = "0"
max = "10"

[columns.colour]
kind = "categorical"
domain = ["red", "green"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.toml"
    path.write_text(text)
    return path


def schema_error(path: Path) -> str:
    with pytest.raises(ConfigurationError) as excinfo:
        load_schema(path)
    return excinfo.value.public_message


def test_valid_schema_file_loads(tmp_path: Path) -> None:
    loaded = load_schema(write(tmp_path, _VALID_TOML))

    assert loaded.numeric("amount").factor == 100
    assert loaded.categorical("colour").domain == ("red", "green")


def test_schema_with_min_above_max_is_refused(tmp_path: Path) -> None:
    message = schema_error(write(tmp_path, _VALID_TOML.replace('max = "10"', 'max = "-1"')))

    assert "amount" in message
    assert "min must not exceed max" in message


def test_schema_with_duplicate_domain_values_is_refused(tmp_path: Path) -> None:
    text = _VALID_TOML.replace('["red", "green"]', '["red", "green", "red"]')

    message = schema_error(write(tmp_path, text))

    assert "colour" in message
    assert "domain values must be unique" in message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (_VALID_TOML.replace('name = "t"', 'name = "t"\nmax_row_per_node = 5'), "max_row_per_node"),
        (_VALID_TOML.replace("scale = 2", "scale = 2\nprecision = 3"), "precision"),
        (
            _VALID_TOML.replace('kind = "categorical"', 'kind = "categorical"\nlabels = []'),
            "labels",
        ),
    ],
)
def test_schema_with_an_unknown_key_is_refused_naming_it(
    text: str, field: str, tmp_path: Path
) -> None:
    message = schema_error(write(tmp_path, text))

    assert field in message
    assert "Extra inputs are not permitted" in message


def test_missing_schema_file_is_a_configuration_error(tmp_path: Path) -> None:
    assert "does not exist" in schema_error(tmp_path / "absent.toml")


def test_malformed_toml_is_a_configuration_error(tmp_path: Path) -> None:
    assert "is invalid" in schema_error(write(tmp_path, "name = \n"))
