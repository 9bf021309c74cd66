"""The analyst's filter text -> filter tree parser."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.filters import BoolExpr, Comparison, InList
from mpc_gateway.query.where import parse_where


def cmp(column: str, op: str, value: str) -> Comparison:
    return Comparison(column=column, op=op, value=value)  # type: ignore[arg-type]


def error_of(text: str) -> str:
    with pytest.raises(InvalidQueryError) as excinfo:
        parse_where(text)
    return excinfo.value.public_message


@pytest.mark.parametrize("text", ["", "   ", "\t\n "])
def test_empty_or_blank_filter_is_none(text: str) -> None:
    assert parse_where(text) is None


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_each_comparison_operator_is_kept(op: str) -> None:
    assert parse_where(f"exposure {op} 10") == cmp("exposure", op, "10")


def test_angle_brackets_mean_not_equal() -> None:
    assert parse_where("rating <> 'AAA'") == cmp("rating", "!=", "AAA")


def test_and_binds_tighter_than_or() -> None:
    tree = parse_where("a = 1 OR b = 2 AND c = 3")

    assert tree == BoolExpr(
        kind="or",
        items=(
            cmp("a", "=", "1"),
            BoolExpr(kind="and", items=(cmp("b", "=", "2"), cmp("c", "=", "3"))),
        ),
    )


def test_and_before_or_groups_the_and_first() -> None:
    tree = parse_where("a = 1 AND b = 2 OR c = 3")

    assert tree == BoolExpr(
        kind="or",
        items=(
            BoolExpr(kind="and", items=(cmp("a", "=", "1"), cmp("b", "=", "2"))),
            cmp("c", "=", "3"),
        ),
    )


def test_parentheses_override_precedence() -> None:
    tree = parse_where("a = 1 AND (b = 2 OR c = 3)")

    assert tree == BoolExpr(
        kind="and",
        items=(
            cmp("a", "=", "1"),
            BoolExpr(kind="or", items=(cmp("b", "=", "2"), cmp("c", "=", "3"))),
        ),
    )


def test_chained_ors_form_one_flat_node() -> None:
    tree = parse_where("a = 1 OR b = 2 OR c = 3")

    assert tree == BoolExpr(
        kind="or", items=(cmp("a", "=", "1"), cmp("b", "=", "2"), cmp("c", "=", "3"))
    )


def test_redundant_parentheses_around_one_comparison_vanish() -> None:
    assert parse_where("((a = 1))") == cmp("a", "=", "1")


def test_in_list_keeps_its_literals_in_order() -> None:
    assert parse_where("rating IN ('AAA', 'AA', 'A')") == InList(
        column="rating", values=("AAA", "AA", "A")
    )


def test_not_in_is_a_negated_in_list() -> None:
    assert parse_where("region NOT IN ('north')") == InList(
        column="region", values=("north",), negate=True
    )


def test_in_list_takes_numbers() -> None:
    assert parse_where("days_past_due IN (0, 30,-1)") == InList(
        column="days_past_due", values=("0", "30", "-1")
    )


def test_keywords_are_case_insensitive() -> None:
    lower = parse_where("a = 1 and b not in ('x') or c in (2)")
    upper = parse_where("a = 1 AND b NOT IN ('x') OR c IN (2)")
    mixed = parse_where("a = 1 And b Not In ('x') oR c iN (2)")

    assert lower == upper == mixed
    assert upper == BoolExpr(
        kind="or",
        items=(
            BoolExpr(
                kind="and",
                items=(cmp("a", "=", "1"), InList(column="b", values=("x",), negate=True)),
            ),
            InList(column="c", values=("2",)),
        ),
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'O''Brien'", "O'Brien"),
        ("''", ""),
        ("''''", "'"),
        ("'a AND b OR c'", "a AND b OR c"),
        ("'(x, y)'", "(x, y)"),
        ("'  spaced  '", "  spaced  "),
    ],
)
def test_quoted_text_is_unquoted_with_doubled_quote_escape(literal: str, value: str) -> None:
    assert parse_where(f"name = {literal}") == cmp("name", "=", value)


@pytest.mark.parametrize(
    "number", ["0", "42", "-7", "+7", "1000.505", "-0.25", ".5", "5.", "1e3", "-1.5E-3", "2e+10"]
)
def test_numbers_are_kept_as_written(number: str) -> None:
    assert parse_where(f"exposure >= {number}") == cmp("exposure", ">=", number)


def test_operators_and_negative_numbers_need_no_spaces() -> None:
    assert parse_where("x>=-2 AND y<>3") == BoolExpr(
        kind="and", items=(cmp("x", ">=", "-2"), cmp("y", "!=", "3"))
    )


@given(st.text(max_size=200))  # literals are bounded (docs/limits.md)
def test_any_text_survives_quoting(value: str) -> None:
    quoted = "'" + value.replace("'", "''") + "'"

    assert parse_where(f"name = {quoted}") == cmp("name", "=", value)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_finite_decimal_is_read_as_one_number(number: Decimal) -> None:
    assert parse_where(f"exposure < {number}") == cmp("exposure", "<", str(number))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = 1 b", "filter: unexpected 'b' at position 6"),
        ("a = 1 )", "filter: unexpected ')' at position 6"),
        ("a = 1 'x'", "filter: unexpected \"'x'\" at position 6"),
    ],
)
def test_trailing_garbage_is_named_with_its_position(text: str, message: str) -> None:
    assert error_of(text) == message


def test_missing_operator_is_reported_at_the_value() -> None:
    assert error_of("exposure 5") == "filter: expected op, found '5' at position 9"


def test_missing_value_is_reported() -> None:
    assert error_of("exposure >") == "filter: expected a number or 'text', found the end"


def test_missing_value_in_list_is_reported() -> None:
    assert (
        error_of("rating IN ()") == "filter: expected a number or 'text', found ')' at position 11"
    )


def test_column_as_value_is_refused() -> None:
    assert (
        error_of("exposure > lgd")
        == "filter: expected a number or 'text', found 'lgd' at position 11"
    )


@pytest.mark.parametrize("text", ["(a = 1", "(a = 1 OR (b = 2)", "rating IN ('A', 'B'"])
def test_unclosed_paren_is_reported(text: str) -> None:
    assert error_of(text) == "filter: expected ), found the end"


def test_not_without_in_is_refused() -> None:
    assert error_of("rating NOT = 'A'") == "filter: NOT may only appear as NOT IN"


@pytest.mark.parametrize(
    ("text", "keyword"), [("AND = 1", "AND"), ("a = 1 OR in = 2", "in"), ("not = 3", "not")]
)
def test_keyword_is_refused_as_a_column(text: str, keyword: str) -> None:
    assert error_of(text) == f"filter: expected a column name, found {keyword!r}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = 1;", "filter: unexpected character at position 5: ';'"),
        ("a == 1", "filter: expected a number or 'text', found '=' at position 3"),
        ('a="x"', "filter: unexpected character at position 2: '\"x\"'"),
        ("a='x", 'filter: unexpected character at position 2: "\'x"'),
        ("é = 1", "filter: unexpected character at position 0: 'é = 1'"),
    ],
)
def test_unexpected_character_is_reported(text: str, message: str) -> None:
    assert error_of(text) == message


def test_unexpected_character_position_points_at_the_character_not_the_space_before() -> None:
    assert "at position 6" in error_of("a = 1 ; b")


def test_deeply_nested_parentheses_are_refused_or_parsed_not_crashed() -> None:
    text = "(" * 5000 + "a = 1" + ")" * 5000
    try:
        tree = parse_where(text)
    except InvalidQueryError:
        return
    assert tree == cmp("a", "=", "1")
