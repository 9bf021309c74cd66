"""Output controls on a quantile, inside the MPC: a withheld quantile answers like no values.

Three real parties run ``quantile_round`` over the seeded books of
:mod:`tests.mpc.risk_data`, on populations (a filter on the entity key) held by one
institution or by two, under minimum counts and minimum numbers of institutions.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from mpc_gateway.computations.quantile_search import local_cumulative_counts, quantile_layout
from tests.mpc.harness import open_blocks, run_calls
from tests.mpc.risk_data import Books, make_books
from tests.mpc.risk_models import NODES

pytestmark = pytest.mark.mpc

PROGRAM = "quantile:quantile_round"
GRID = 16


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    return make_books(tmp_path_factory.mktemp("books"), 240)


def _plain_bracket(values: list[int], grid: list[int], level: Fraction) -> int:
    """How many grid points lie below the quantile: C(g) < q * N."""
    target = level.numerator * len(values)
    return sum(sum(v <= g for v in values) * level.denominator < target for g in grid)


def test_a_quantile_round_over_too_few_institutions_answers_like_no_values(books):
    """min_institutions: values that fewer parties hold are withheld, exactly as if none."""
    held_by = {
        who: [k for k, known in books.known_by.items() if known == who] for who in ((0,), (0, 1))
    }
    cases = [  # (who holds the population, min_count, min_institutions, withheld)
        ((0,), 0, 0, False),
        ((0,), 0, 1, False),
        ((0,), 0, 2, True),  # one institution's values only
        ((0,), 2, 2, True),
        ((0, 1), 0, 2, False),
        ((0, 1), 2, 2, False),
        ((0, 1), 0, 3, True),
        ((0, 1), 0, 10**9, True),  # far above the number of parties
        ((0, 1), 10**6, 2, True),  # enough institutions, too few values: the same answer
    ]
    level = Fraction(1, 2)
    plans = [
        quantile_layout(
            books.schema, len(NODES), "exposure", [level], GRID, min_count=c, min_institutions=i
        )
        for _, c, i, _ in cases
    ]
    grid = plans[0].search().grids()
    where = {
        who: (f"counterparty_lei IN ({', '.join('?' * len(keys))})", keys)
        for who, keys in held_by.items()
    }
    local = {
        who: [
            local_cumulative_counts(books.cursor(p), "exposure", grid, where[who])
            for p in range(len(NODES))
        ]
        for who in held_by
    }
    calls = [
        [(PROGRAM, plan.program_args(*local[who][p])) for plan, (who, _, _, _) in zip(plans, cases)]
        for p in range(len(NODES))
    ]
    outcomes = run_calls(calls, timeout=120)
    brackets = [
        open_blocks([party[i].result for party in outcomes])["bracket"] for i in range(len(cases))
    ]
    for (who, _, _, withheld), bracket in zip(cases, brackets):
        frames = [books.encoded(p) for p in who]
        values = [
            int(v) for f in frames for v in f[f["counterparty_lei"].isin(held_by[who])]["exposure"]
        ]
        expected = GRID if withheld else _plain_bracket(values, grid[0], level)
        assert bracket == [expected], (who, withheld)
    assert all(b != [GRID] for b, (_, _, _, withheld) in zip(brackets, cases) if not withheld)
