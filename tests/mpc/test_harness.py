"""The loopback harness itself, on the existing ``joint_aggregates`` program."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.mpc.harness import PartyRunError, open_blocks, run_parties

pytestmark = pytest.mark.mpc

SENTINEL = 10**6


def _party(i: int) -> dict:
    # groups: 0 has rows at every party, 1 only at party 2, 2 is empty everywhere
    counts = [3 + i, 2 if i == 2 else 0, 0]
    sums = [100 * (i + 1), -40 if i == 2 else 0, 0]
    minima = [[-5 * i], [7 if i == 2 else SENTINEL], [SENTINEL]]
    maxima = [[10 * i], [9 if i == 2 else -SENTINEL], [-SENTINEL]]
    return {
        "additive": np.array([[c, s] for c, s in zip(counts, sums)], dtype=object),
        "minima": np.array(minima, dtype=object),
        "maxima": np.array(maxima, dtype=object),
        "bits": 48,
        "sentinel": SENTINEL,
    }


def test_joint_aggregates_sums_extremes_and_an_empty_group():
    results = run_parties(
        "mpc_gateway.mpc.programs.aggregate:joint_aggregates", [_party(i) for i in range(3)]
    )
    opened = open_blocks(results)
    assert opened["additive"] == [12, 600, 2, -40, 0, 0]
    assert opened["minima"] == [-10, 7, SENTINEL]
    assert opened["maxima"] == [20, 9, -SENTINEL]


def test_a_failing_party_is_reported_with_its_error():
    args = [_party(i) for i in range(3)]
    started = time.monotonic()
    with pytest.raises(PartyRunError, match=r"exited with 1:(.|\n)*no_such_program"):
        run_parties("mpc_gateway.mpc.programs.aggregate:no_such_program", args, timeout=30)
    assert time.monotonic() - started < 25  # reported when it fails, not at the deadline
