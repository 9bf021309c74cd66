"""Property: a flag query and its SQL spelling give the same canonical plan and plan hash.

Hypothesis draws aggregates (in any order), group-by columns (a cross tab in any
order) and a filter tree; the filter's text is valid both as ``--where`` and as a
WHERE clause, so both readings must build the very same plan.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import mpc_gateway
from mpc_gateway.computations.aggregate import AggregateRequest, build_plan
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.where import parse_where
from mpc_gateway.sql import read_statement

LOANS = load_schema(Path(mpc_gateway.__file__).parent / "schemas" / "loans.toml")

AGGREGATES = [
    ("count", "COUNT(*)"),
    ("count", "count(lgd)"),
    ("sum:exposure", "SUM(exposure)"),
    ("mean:lgd", "AVG(lgd)"),
    ("mean:exposure", "avg(exposure)"),
    ("var:exposure", "VAR_SAMP(exposure)"),
    ("var:lgd", "VARIANCE(lgd)"),
    ("stddev:days_past_due", "STDDEV_SAMP(days_past_due)"),
    ("stddev:exposure", "STDDEV(exposure)"),
    ("min:exposure", "MIN(exposure)"),
    ("max:lgd", "MAX(lgd)"),
]
NUMERIC = ["exposure", "lgd", "days_past_due", "defaulted"]
CATEGORICAL = ["sector", "rating", "region"]


def numbers(column: str) -> st.SearchStrategy[str]:
    """Literals within the column's declared bounds (others are refused, by either spelling)."""
    spec = LOANS.numeric(column)
    return st.decimals(min_value=spec.min, max_value=spec.max, places=3, allow_nan=False).map(str)


@st.composite
def leaves(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        column = draw(st.sampled_from(NUMERIC))
        op = draw(st.sampled_from(["=", "!=", "<>", "<", "<=", ">", ">="]))
        return f"{column} {op} {draw(numbers(column))}"
    column = draw(st.sampled_from(CATEGORICAL))
    domain = LOANS.categorical(column).domain
    values = draw(st.lists(st.sampled_from(domain), min_size=1, max_size=3, unique=True))
    if len(values) == 1 and draw(st.booleans()):
        return f"{column} {draw(st.sampled_from(['=', '!=']))} '{values[0]}'"
    negate = "NOT " if draw(st.booleans()) else ""
    return f"{column} {negate}IN ({', '.join(repr(v) for v in values)})"


def _join(parts: list[str], op: str, wrap: bool) -> str:
    text = f" {op} ".join(parts)
    return f"({text})" if wrap else text


filters = st.recursive(
    leaves(),
    lambda inner: st.builds(
        _join,
        st.lists(inner, min_size=2, max_size=3),
        st.sampled_from(["AND", "OR"]),
        st.booleans(),
    ),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None)
@given(
    aggregates=st.lists(
        st.sampled_from(AGGREGATES), min_size=1, max_size=5, unique_by=lambda a: a[0]
    ),
    group_by=st.lists(st.sampled_from(CATEGORICAL), max_size=3, unique=True),
    where=st.one_of(st.just(""), filters),
)
def test_flag_query_and_its_sql_have_the_same_plan_hash(
    aggregates: list[tuple[str, str]], group_by: list[str], where: str
) -> None:
    flags = AggregateRequest.of(
        "loans", [a for a, _ in aggregates], filter=parse_where(where), group_by=group_by
    )
    selected = ", ".join([*group_by, *(sql for _, sql in aggregates)])
    statement = f"SELECT {selected} FROM loans"
    statement += f" WHERE {where}" if where else ""
    statement += f" GROUP BY {', '.join(group_by)}" if group_by else ""
    request = read_statement(statement, {"loans": LOANS}).request
    assert isinstance(request, AggregateRequest)
    by_flags, by_sql = build_plan(flags, LOANS, "ana"), build_plan(request, LOANS, "ana")
    assert by_sql.canonical() == by_flags.canonical()
    assert by_sql.plan_hash == by_flags.plan_hash
