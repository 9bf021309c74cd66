"""Property: a flag query and its SQL spelling give the same canonical plan and plan hash.

So do ``risk quantiles`` (as the client sends it) and the percentile spellings.

Hypothesis draws aggregates (in any order), group-by columns (a cross tab in any
order) and a filter tree; the filter's text is valid both as ``--where`` and as a
WHERE clause, so both readings must build the very same plan.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

import mpc_gateway
from mpc_gateway.computations import Planning, computation
from mpc_gateway.computations.aggregate import AggregateRequest, build_plan
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.where import parse_where
from mpc_gateway.rpc.convert import request_from_proto
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


PERCENTILES = {
    "discrete": [
        "PERCENTILE_DISC({q}) WITHIN GROUP (ORDER BY {c})",
        "quantile_disc({c}, {q})",
        "QUANTILE({c}, {q})",
    ],
    "linear": ["PERCENTILE_CONT({q}) WITHIN GROUP (ORDER BY {c})", "quantile_cont(`{c}`, {q})"],
}


@settings(max_examples=60, deadline=None)
@given(
    column=st.sampled_from(NUMERIC),
    levels=st.lists(
        st.decimals(min_value="0.001", max_value=1, places=3), min_size=1, max_size=4, unique=True
    ),
    interpolation=st.sampled_from(["discrete", "linear"]),
    spellings=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    where=st.one_of(st.just(""), filters),
)
def test_flag_percentiles_and_their_sql_have_the_same_plan_hash(
    column: str, levels: list[Any], interpolation: str, spellings: list[int], where: str
) -> None:
    """The wire request the client sends for ``risk quantiles`` and any SQL spelling of it."""
    job = computation("quantile").job_message(
        column=column,
        levels=[str(q) for q in levels],
        interpolation="" if interpolation == "discrete" else interpolation,
    )
    flags = request_from_proto(
        gateway_pb2.ComputationRequest(dataset="loans", where=where, quantile=job)
    )
    forms = PERCENTILES[interpolation]
    selected = [forms[s % len(forms)].format(q=q, c=column) for q, s in zip(levels, spellings)]
    if interpolation == "linear" and levels == [Decimal("0.5")] and spellings[0] == 2:
        selected = [f"MEDIAN({column})"]
    statement = f"SELECT {', '.join(selected)} FROM loans" + (f" WHERE {where}" if where else "")
    by_sql = read_statement(statement, {"loans": LOANS}).request
    planning = Planning("ana", 3, cast(Any, None))
    plans = [computation("quantile").build(r, LOANS, planning) for r in (flags, by_sql)]
    assert plans[0].canonical() == plans[1].canonical()
    assert plans[0].plan_hash == plans[1].plan_hash
