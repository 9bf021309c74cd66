"""The baseline of joint training: a logistic regression fitted with MPyC over secret-shared rows.

What a team would write without mpc-gateway, in the style of MPyC's demos: every
party runs this script as its own process, once per fit::

    python benchmarks/naive_train_mpyc.py -M3 -I0 -P localhost:11365 -P localhost:11366 \\
        -P localhost:11367 --data party0.npz --steps 12 --l2 1

Each party loads its rows (``design``, intercept column first, and the 0/1
``label`` of an ``.npz`` file), secret-shares all of them as secure fixed-point
arrays, and the parties run ``--steps`` Newton steps from zero on the secret
rows, minimising the same objective as ``train:fit``: the negative
log-likelihood plus ``(l2/2) * sum_j (sigma_j * beta_j)**2`` over the
non-intercept columns, sigma_j the joint population deviation (computed from
the shared rows). Per step: ``eta = X beta``; a secure logistic function per
row; ``w = p (1 - p)``; the gradient ``X^T (y - p)`` and Hessian ``X^T W X``
as secure matrix products, divided by the public row count n; the step solved
by Gaussian elimination without pivoting (the penalised Hessian is positive
definite) and back substitution, one secure reciprocal per pivot, as secure
fixed point throughout. Party 0 times the two halves of every step apart
(each ends by waiting for its shares): the work over the rows, and the solve.

The logistic function: MPyC has none. ``sigma(eta) = 1 - s + (2s - 1) g(min(|eta|, 8))``
with ``s = [eta >= 0]`` and ``g`` the degree-7 polynomial interpolating
``sigma`` at the Chebyshev points of ``[0, 8]`` (largest error 5.5e-4, at
``|eta| >= 8`` too): per row two secure comparisons and eight fixed-point
multiplications (the products with the comparisons' 0/1 results are exact).

Parties: m processes on one host, plain TCP on loopback (no TLS). Inputs: every
party's rows and labels, one secure array each. Output: the coefficients,
opened to every party; party 0 prints them as one JSON line with its timings.
Leakage: beyond the output, every party's number of rows (the array shapes
must be public to share them). Threshold: t = (m-1)//2, passive.

Fixed point: ``SecFxp(2f, f)``, MPyC's own shape (its secure reciprocal needs
``l <= 2f + 1``), with ``f = ceil(log2(N * B**2)) + 3`` for ``N = --bits-rows``
(default: the joint rows) and ``B = --max-value``, so that no sum over the rows
overflows, and at least ``--frac-bits``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

STARTED = time.perf_counter()

import numpy as np  # noqa: E402

# This script is an MPyC program in its own process: mpyc parsing sys.argv is what we want.
from mpyc.runtime import mpc  # noqa: E402, TID251

CLIP = 8
# g(v) for v = min(|eta|, CLIP) / CLIP in [0, 1], lowest degree first.
POLYNOMIAL = (
    0.50020491,
    1.97197812,
    0.77906344,
    -19.71284787,
    50.82973605,
    -61.51657834,
    37.18722148,
    -9.0393252,
)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="this party's .npz (design, label)")
    parser.add_argument("--steps", type=int, default=12, help="Newton steps")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--max-value", type=float, default=10.0, help="public bound on |x|")
    parser.add_argument("--bits-rows", type=int, default=0, help="size the numbers for N rows")
    parser.add_argument(
        "--frac-bits", type=int, default=16, help="at least this many fractional bits"
    )
    return parser.parse_args()


def frac_bits(rows: int, max_value: float, least: int) -> int:
    """Enough bits for sum(x_i * x_j) over every row, and at least ``least``."""
    return max(least, math.ceil(math.log2(max(rows, 2) * max(max_value, 1.0) ** 2)) + 3)


def _divide(value: Any, n: int, f: int) -> Any:
    """Secure ``value / n`` for a public n: ``(2**e/n) * 2**-e``, the shift in pieces of f bits."""
    e = n.bit_length() - 1
    value = value * (2**e / n)
    while e > 0:
        shift = min(e, f)
        value = value * 2.0**-shift
        e -= shift
    return value


def _sigmoid(eta: Any) -> Any:
    """The secure logistic function of every element of ``eta`` (the module's approximation)."""
    s = eta >= 0
    sign = 2 * s - 1
    magnitude = sign * eta
    clipped = magnitude + (magnitude > CLIP) * (CLIP - magnitude)
    v = clipped * (1 / CLIP)
    g = v * POLYNOMIAL[-1]
    for coefficient in POLYNOMIAL[-2:0:-1]:
        g = (g + coefficient) * v
    return 1 - s + sign * (g + POLYNOMIAL[0])


def _solve(a: Any, b: Any) -> Any:
    """Secure x with ``a x = b``, a positive definite: elimination, then back substitution."""
    m = mpc.np_column_stack((a, b))
    rows, inverses = [], []
    while True:
        inverse = 1 / m[0, 0]
        rows.append(m[0, 1:])
        inverses.append(inverse)
        if m.shape[0] == 1:
            break
        m = m[1:, 1:] - mpc.np_outer(m[1:, 0] * inverse, m[0, 1:])
    # Secure arrays throughout: mpc.np_fromlist over still pending scalars hung here (MPyC 0.11).
    x = rows[-1] * inverses[-1]
    for row, inverse in zip(rows[-2::-1], inverses[-2::-1]):
        x = mpc.np_concatenate(((row[-1:] - row[:-1] @ x) * inverse, x))
    return x


def _shared_rows(
    design: np.ndarray, label: np.ndarray, sizes: list[int], secfxp: Any
) -> tuple[Any, Any]:
    """Every party's rows (``sizes[i]`` at party i), secret-shared and stacked: X and y."""
    xs, ys = [], []
    for i, rows in enumerate(sizes):
        mine = i == mpc.pid
        x = design if mine else np.zeros((rows, design.shape[1]))
        y = label if mine else np.zeros(rows)
        xs.append(mpc.input(secfxp.array(x, integral=False), senders=i))
        ys.append(mpc.input(secfxp.array(y, integral=False), senders=i))
    return mpc.np_vstack(xs), mpc.np_concatenate(ys)


def _penalty(x: Any, n: int, l2: float, f: int) -> Any:
    """``l2 * sigma_j**2 / n`` per column, 0 for the intercept (column 0)."""
    mean = _divide(mpc.np_sum(x, axis=0), n, f)
    variance = _divide(mpc.np_diagonal(x.T @ x), n, f) - mean * mean
    mask = np.array([0] + [1] * (x.shape[1] - 1))
    return _divide(variance * l2, n, f) * mask


async def _fit(
    x: Any, y: Any, args: argparse.Namespace, secfxp: Any
) -> tuple[Any, dict[str, float]]:
    """Newton's method over the shared rows; the secure coefficients and the seconds per phase."""
    n, d = x.shape
    f = secfxp.frac_length
    penalty = _penalty(x, n, args.l2, f)
    diagonal = mpc.np_diagflat(penalty)
    xt = x.T
    beta = secfxp.array(np.zeros(d), integral=False)
    rows_s = solve_s = 0.0
    for _ in range(args.steps):
        started = time.perf_counter()
        p = _sigmoid(x @ beta)
        hessian = _divide((xt * (p * (1 - p))) @ x, n, f) + diagonal
        gradient = _divide(xt @ (y - p), n, f) - penalty * beta
        await mpc.gather(hessian, gradient)
        computed = time.perf_counter()
        beta = beta + _solve(hessian, gradient)
        await mpc.gather(beta)
        rows_s += computed - started
        solve_s += time.perf_counter() - computed
    return beta, {"rows_s": rows_s, "solve_s": solve_s}


async def main() -> None:
    args = _arguments()
    with np.load(args.data) as data:
        design, label = data["design"], data["label"]
    loaded = time.perf_counter()
    await mpc.start()
    connected, cpu = time.perf_counter(), time.process_time()
    sizes = await mpc.transfer(len(label))
    f = frac_bits(args.bits_rows or sum(sizes), args.max_value, args.frac_bits)
    secfxp = mpc.SecFxp(2 * f, f)
    x, y = _shared_rows(design, label, sizes, secfxp)
    await mpc.gather(x, y)
    shared = time.perf_counter()
    beta, phases = await _fit(x, y, args, secfxp)
    coefficients = [float(c) for c in await mpc.output(beta)]
    computed, cpu = time.perf_counter(), time.process_time() - cpu
    await mpc.shutdown()
    if mpc.pid == 0:
        timings = {
            "imports_and_load_s": loaded - STARTED,  # after the interpreter started
            "connect_s": connected - loaded,
            "input_s": shared - connected,
            **phases,
            "mpc_s": computed - connected,
            "mpc_cpu_s": cpu,  # party 0's process alone: less sensitive to the machine's load
            "shutdown_s": time.perf_counter() - computed,
        }
        result = {"coefficients": coefficients, "bit_length": 2 * f, "timings": timings}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    mpc.run(main())
    sys.exit(0)
