"""A cross tab (GROUP BY two columns) through the real MPC, against the pooled plaintext.

Three parties pre-aggregate their own loan books over the product domain of
sector x rating, the aggregate program adds them up and applies the output
controls per cell inside the MPC, and the receiver decodes the released integers.
DuckDB over the pooled rows (with each row's institution) is the reference: a cell
is released exactly when it has at least ``min_cell_count`` rows from at least
``min_institutions`` institutions, with the pooled count and mean; every other
cell is withheld without values.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest

import mpc_gateway
from mpc_gateway.computations.aggregate import AggregateRequest, build_plan
from mpc_gateway.computations.aggregate_layout import layout_for, local_aggregates
from mpc_gateway.computations.aggregate_result import decode_result, is_close
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.query.schema import load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.query.where import parse_where
from tests.mpc.harness import open_blocks, run_parties

pytestmark = pytest.mark.mpc

LOANS = load_schema(Path(mpc_gateway.__file__).parent / "schemas" / "loans.toml")
BANKS = ("bank-a", "bank-b", "broker-c")
CONTROLS = OutputControls(min_cell_count=4, min_institutions=2)
WHERE = "exposure > 1000 OR rating IN ('BB', 'B')"


def test_cross_tab_cells_match_the_pooled_plaintext_with_controls_per_cell(
    tmp_path: Path,
) -> None:
    request = AggregateRequest.of(
        "loans", ["count", "mean:exposure"], filter=parse_where(WHERE), group_by="sector,rating"
    )
    plan = build_plan(request, LOANS, "ana", CONTROLS)
    layout = layout_for(plan, LOANS, parties=3)
    paths = [write_loan_book(tmp_path / f"{b}.parquet", loan_book(b, 150, seed=9)) for b in BANKS]
    calls = []
    for path in paths:
        local = local_aggregates(
            LocalDataset(LOANS, path).cursor(), plan, layout, where_sql(LOANS, plan.filter)
        )
        calls.append(
            {
                **local,
                "bits": layout.bits,
                "sentinel": layout.sentinel,
                "controls": layout.mpc_controls(),
            }
        )

    opened = open_blocks(run_parties("mpc_gateway.mpc.programs.aggregate:joint_aggregates", calls))
    outcome = decode_result(plan, layout, LOANS, opened)

    con = duckdb.connect()
    union = " UNION ALL ".join(
        f"SELECT '{b}' AS bank, * FROM read_parquet('{p}')" for b, p in zip(BANKS, paths)
    )
    rows = con.execute(
        f"SELECT sector, rating, count(*), avg(CAST(exposure AS DECIMAL(18, 2))), "
        f"count(DISTINCT bank) FROM ({union}) WHERE {WHERE} GROUP BY sector, rating"
    ).fetchall()
    pooled = {(s, r): (n, mean, banks) for s, r, n, mean, banks in rows}
    assert (
        len(outcome.rows)
        == 70
        == math.prod(len(LOANS.categorical(c).domain) for c in ("sector", "rating"))
    )
    released = withheld = 0
    for record, (group, values) in zip(outcome.records(), outcome.rows):
        n, mean, banks = pooled.get((record["sector"], record["rating"]), (0, None, 0))
        if n >= CONTROLS.min_cell_count and banks >= CONTROLS.min_institutions:
            released += 1
            assert record["count"] == n
            assert is_close(record["mean(exposure)"], float(mean))
        else:
            withheld += 1
            assert group in outcome.suppressed and values == (None, None)
    assert released and withheld  # the data exercises both sides of the controls
