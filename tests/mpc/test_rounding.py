"""Rounding inside the MPC: the receiver opens the rounded figure only, and it is the same
figure the plaintext rounding gives (halves up for counts, half-even for sums)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from mpc_gateway.computations.aggregate_result import rounded
from mpc_gateway.policy import OutputControls
from tests.mpc.harness import open_blocks, run_parties

pytestmark = pytest.mark.mpc

# joint counts and sums (in cents) with every tie and sign: each party holds a third
COUNTS = [0, 2, 3, 5, 7, 8, 10, 12, 13, 102]
SUMS = [-150, -50, 0, 49, 50, 150, 250, 251, 349, 123_450]


def _party(i: int) -> dict[str, object]:
    share = [
        [c // 3 + (c % 3 if i == 0 else 0), s // 3 + (s % 3 if i == 0 else 0)]
        for c, s in zip(COUNTS, SUMS)
    ]
    return {
        "additive": np.array(share, dtype=object),
        "minima": np.zeros((len(COUNTS), 0), dtype=object),
        "maxima": np.zeros((len(COUNTS), 0), dtype=object),
        "bits": 40,
        "sentinel": 1,
        "rounding": [[0, 5, False], [1, 100, True]],  # counts to 5s, sums to whole euros
    }


def test_the_mpc_rounds_as_the_plaintext_rule_does() -> None:
    opened = open_blocks(
        run_parties(
            "mpc_gateway.mpc.programs.aggregate:joint_aggregates", [_party(i) for i in range(3)]
        )
    )
    controls = OutputControls(round_counts_to=5, sum_decimals=0)
    cells = np.array(opened["additive"]).reshape(len(COUNTS), 2)
    assert [int(c) for c in cells[:, 0]] == [rounded(c, "count", controls) for c in COUNTS]
    expected = [rounded(Decimal(s) / 100, "sum", controls) * 100 for s in SUMS]
    assert [int(s) for s in cells[:, 1]] == expected
    assert list(cells[:, 1]) != SUMS  # the exact sums are not what the receiver opens
