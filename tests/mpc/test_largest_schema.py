"""The largest bounds a schema may declare are summed exactly, from the file through the MPC.

A schema is refused when a node's sum of squares could exceed DuckDB's 128-bit
integers (:data:`~mpc_gateway.query.schema.EXACT_SUM_LIMIT`); at the limit
itself, three nodes load one extreme value each from CSV, pre-aggregate it in
DuckDB and the MPC opens the exact joint count, sum, sum of squares and extremes.
"""

from __future__ import annotations

from math import isqrt
from pathlib import Path

import pytest

from mpc_gateway.computations.aggregate import AggregateRequest, build_plan, parse_aggregate
from mpc_gateway.computations.aggregate_layout import layout_for, local_aggregates
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import EXACT_SUM_LIMIT, DatasetSchema
from tests.mpc.harness import open_blocks, run_parties

pytestmark = pytest.mark.mpc

MOST = isqrt(EXACT_SUM_LIMIT)  # one row per node: MOST**2 is the largest square DuckDB sums


def test_the_largest_allowed_bounds_are_summed_exactly_across_three_nodes(tmp_path: Path) -> None:
    schema = DatasetSchema.model_validate(
        {
            "name": "t",
            "max_rows_per_node": 1,
            "columns": {"x": {"kind": "numeric", "scale": 0, "min": -MOST, "max": MOST}},
        }
    )
    values = [MOST, -MOST, MOST - 1]
    aggs = ("count", "sum:x", "var:x", "min:x", "max:x")
    plan = build_plan(
        AggregateRequest(dataset="t", aggregates=tuple(parse_aggregate(a) for a in aggs)),
        schema,
        "ana",
    )
    layout = layout_for(plan, schema, parties=3)
    calls = []
    for i, value in enumerate(values):
        path = tmp_path / f"node{i}.csv"
        path.write_text(f"x\n{value}\n")
        local = local_aggregates(LocalDataset(schema, path).cursor(), plan, layout)
        calls.append({**local, "bits": layout.bits, "sentinel": layout.sentinel})

    opened = open_blocks(run_parties("mpc_gateway.mpc.programs.aggregate:joint_aggregates", calls))

    assert opened["additive"] == [3, sum(values), sum(v * v for v in values)]
    assert (opened["minima"], opened["maxima"]) == ([-MOST], [MOST])
