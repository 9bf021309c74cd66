"""The training baseline: ``naive_train_mpyc.py`` launched at every party, and extrapolated.

:func:`naive_fit` writes each party's rows to its own ``.npz`` file, runs the
script once at every party (:func:`benchmarks.naive.launch`: one process per
party, plain TCP on loopback) and returns the opened coefficients with party
0's timings. :func:`extrapolate` turns such fits into the time of a fit at a
size the script cannot finish, from two measured parts of each fit: the
solves (one per Newton step, d x d, independent of the rows) and the rest
(input and every step's work per row, proportional to the rows).
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.naive import launch, mpyc_arguments

__all__ = ["NaiveFit", "extrapolate", "naive_fit"]

SCRIPT = Path(__file__).with_name("naive_train_mpyc.py")
# Where a single feature count was measured: the per-row part grows at most as d**2
# (the local products of X^T W X), the solve as d**3 (elimination).
ROW_EXPONENT, SOLVE_EXPONENT = 2.0, 3.0


@dataclass(frozen=True)
class NaiveFit:
    """One run of the script: ``rows`` joint rows of ``columns`` design columns."""

    rows: int
    columns: int  # intercept included
    coefficients: np.ndarray
    bit_length: int
    wall_s: float  # process start to the last exit
    timings: dict[str, float]  # party 0's phases, seconds

    @property
    def solve_s(self) -> float:
        return self.timings["solve_s"]

    @property
    def rows_s(self) -> float:
        """The MPC's time (first input to opened coefficients) less the solves."""
        return self.timings["mpc_s"] - self.solve_s


def naive_fit(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    steps: int,
    l2: float,
    timeout_s: float,
    log: Path,
    bits_rows: int = 0,
    max_value: float = 10.0,
) -> NaiveFit:
    """Fit with the script, party i holding ``parts[i]`` (design with intercept, 0/1 label).

    ``bits_rows`` sizes the fixed-point numbers for that many joint rows (0: the rows
    given); raises :class:`benchmarks.naive.NaiveFailed` on a timeout or a failure.
    """
    with tempfile.TemporaryDirectory(prefix="naive-train-") as tmp:
        files = [Path(tmp, f"party{pid}.npz") for pid in range(len(parts))]
        for path, (design, label) in zip(files, parts):
            np.savez(path, design=design, label=label)

        def command(pid: int, ports: list[int]) -> list[str]:
            options = {"--steps": steps, "--l2": l2, "--bits-rows": bits_rows}
            return [
                sys.executable,
                str(SCRIPT),
                *mpyc_arguments(pid, ports),
                "--data",
                str(files[pid]),
                "--max-value",
                repr(max_value),
                *[a for name, value in options.items() for a in (name, repr(value))],
            ]

        wall_ms, parsed = launch(command, len(parts), timeout_s, log)
    return NaiveFit(
        rows=sum(len(label) for _, label in parts),
        columns=parts[0][0].shape[1],
        coefficients=np.array(parsed["coefficients"], dtype=np.float64),
        bit_length=int(parsed["bit_length"]),
        wall_s=wall_ms / 1000,
        timings={k: float(v) for k, v in parsed["timings"].items()},
    )


def _exponent(values: dict[int, float], default: float) -> float:
    low, high = min(values), max(values)
    if high == low or values[low] <= 0 or values[high] <= 0:
        return default
    return math.log(values[high] / values[low]) / math.log(high / low)


def extrapolate(fits: Sequence[NaiveFit], rows: int, columns: int) -> dict[str, Any]:
    """The seconds of a fit of ``rows`` joint rows x ``columns``: ``solve(d) + rows * row(d)``.

    At a measured d: ``row(d)`` is the least-squares slope through the origin of
    :attr:`NaiveFit.rows_s` against the rows of the fits at d, ``solve(d)`` their median
    solve time. At another d: the nearest measured d's, times ``(d/d0)**k``, k the
    exponent measured between the fewest and the most columns (with one d measured:
    2 per row, 3 for the solve).
    """
    by_columns: dict[int, list[NaiveFit]] = {}
    for fit in fits:
        by_columns.setdefault(fit.columns, []).append(fit)
    row = {
        d: sum(f.rows * f.rows_s for f in group) / sum(f.rows**2 for f in group)
        for d, group in by_columns.items()
    }
    solve = {d: statistics.median(f.solve_s for f in group) for d, group in by_columns.items()}
    row_k, solve_k = _exponent(row, ROW_EXPONENT), _exponent(solve, SOLVE_EXPONENT)
    near = min(by_columns, key=lambda d: (abs(math.log(columns / d)), -d))
    scale = columns / near
    per_row, solve_s = row[near] * scale**row_k, solve[near] * scale**solve_k
    return {
        "seconds": solve_s + rows * per_row,
        "per_row_s": per_row,
        "solve_s": solve_s,
        "from_columns": near,
        "row_exponent": round(row_k, 3),
        "solve_exponent": round(solve_k, 3),
    }
