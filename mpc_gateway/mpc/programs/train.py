"""Joint model training: ridge (closed form) and logistic regression (Newton/IRLS), exactly.

Parties: all m nodes, each an MPyC party. Inputs: each node's own design matrix
(an intercept column, numeric features in real units, one-hot columns) and
label, which never leave its worker: only fixed-shape local statistics enter
the MPC, so its cost does not grow with rows. They are, scaled by ``2**F`` and
rounded to integers: the moments ``(n, sum x_j, sum x_j**2)`` once, and per
Newton step ``H = X^T W X`` and ``r = X^T (W eta + y - p)`` at the current
iterate (ridge: one step with ``W = 1``, ``r = X^T y``), plus the row count as a
secure integer for the minimums.

The penalty is ``(l2/2) * sum_j (sigma_j * beta_j)**2`` over the non-intercept
columns, sigma_j the joint (population) deviation: the L2 penalty on the
coefficients of standardised features. With ``V_j = n S2_j - S1_j**2`` (so
``sigma_j**2 = V_j / n**2``) every step solves the system
``(l_den n**2 H + 2**F l_num diag(V)) beta = l_den n**2 r`` exactly over the prime
field, in the form ``(H + diag(q)) beta = r`` with ``q = 2**F l_num V / (l_den n**2)``
(one secure reciprocal before the first step, so no step multiplies two secret
matrices): a random secret matrix R and pad s mask it, ``M = RA`` and
``c = RB + Ms`` are opened (uniformly random: they reveal nothing but that A is
invertible), ``M^-1 c`` is solved in the clear, and ``beta = M^-1 c - s`` stays
secret (for an iterate the parties learn anyway, s = 0). The field is large
enough that the rational solution is recovered from its residue by rational
reconstruction (its bound is that of the integer system, see
:mod:`~mpc_gateway.computations.train_layout`).

Output. Before anything else, one bit: whether the joint rows reach
``min_rows`` and come from at least ``min_institutions`` nodes (opened to the
parties, and the block ``enough`` for the driver). Logistic: the iterates
``beta_1 .. beta_{T-1}`` are opened to the parties (every node needs them for its
local statistics; the driver never sees them); ``beta_T`` (``coefficients``)
and the last opened iterate (``previous``, for the receiver's convergence check)
are handed to the receiver as re-randomised shares, with ``singular``
(1 if a system had no solution). With a held-out split (``bins``), the final
coefficients are opened to the parties as well and the joint histogram of the
held-out rows per (label, predicted-probability bin) goes to the receiver.
Leakage to the parties: the minimums bit, the T - 1 iterates (logistic), the
final coefficients (with a held-out split), whether a system was singular.
Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from typing import Any

import gmpy2
import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.computations.train_layout import centred, local_moments, local_step, rational
from mpc_gateway.computations.train_validation import local_histogram
from mpc_gateway.mpc.programs.common import at_least, input_all, rounded, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["fit"]


def _enough(rows: int, count_bits: int, min_rows: int, min_institutions: int) -> Any:
    """Secure bit: the joint rows reach ``min_rows`` from at least ``min_institutions`` nodes."""
    secint = mpc.SecInt(count_bits)
    parts = input_all(secint, np.array([rows], dtype=object))
    present = total([at_least(part, 1, count_bits) for part in parts])
    rows_ok = at_least(total(parts), min_rows, count_bits)
    return rows_ok * at_least(present, min_institutions, count_bits)


async def _solve(field_type: Any, a: Any, b: Any, secret: bool) -> Any | None:
    """``A^-1 b`` over the field (None if A is singular), opened to the parties unless ``secret``.

    With R a random secret matrix and s a random secret vector (0 when the solution
    is opened anyway), ``M = RA`` and ``c = R b + M s`` are opened: M is uniformly
    random, and ``M^-1 c = x + s`` is x under a one-time pad, so they reveal nothing
    but that A is invertible (and x, when it is opened). One clear solve of
    ``(M | c)`` then replaces any secure division.
    """
    d = b.shape[0]
    mask = mpc.np_reshape(mpc._np_randoms(field_type, d * d), (d, d))
    masked = await mpc.output(_product(mask, a))
    pad = mpc._np_randoms(field_type, d) if secret else None
    rhs = mask @ b if pad is None else mask @ b + masked @ pad
    opened = await mpc.output(rhs)
    modulus = field_type.field.modulus
    solved = _gauss(masked.value.tolist(), opened.value.tolist(), modulus)
    if solved is None:
        return None
    padded = field_type.field.array(np.array(solved, dtype=object))
    return padded if pad is None else field_type.array(padded) - pad


def _mpz(values: np.ndarray) -> np.ndarray:
    converted: np.ndarray = np.vectorize(gmpy2.mpz, otypes=[object])(values)
    return converted


@mpc.coroutine  # type: ignore[untyped-decorator]  # typed by its first await, not annotations
async def _product(x: Any, y: Any):  # type: ignore[no-untyped-def]
    """The secure matrix product ``x @ y`` (as ``mpc.np_matmul``), its local step in GMP.

    Over a field of thousands of bits, Python's integer products made the d**3 local
    multiplications of ``mask @ A`` the cost of a Newton step; GMP's are ~10x faster.
    """
    field = x.sectype.field
    await mpc.returnType((type(x), (x.shape[0], y.shape[1])))
    a, b = await mpc.gather(x, y)
    local = (_mpz(a.value) @ _mpz(b.value)) % gmpy2.mpz(field.modulus)
    return mpc._reshare(field.array(np.vectorize(int, otypes=[object])(local)))


def _gauss(a: list[list[int]], b: list[int], modulus: int) -> list[int] | None:
    """``a^-1 b`` modulo a prime in GMP integers; None if singular.

    Forward elimination on the columns right of each pivot only, then back
    substitution: about d**3/3 products of field elements (Gauss-Jordan takes d**3).
    """
    p = gmpy2.mpz(modulus)
    rows = [[gmpy2.mpz(v) for v in row] + [gmpy2.mpz(bv)] for row, bv in zip(a, b)]
    d = len(rows)
    for k in range(d):
        pivot = next((i for i in range(k, d) if rows[i][k] % p), None)
        if pivot is None:
            return None
        rows[k], rows[pivot] = rows[pivot], rows[k]
        inverse = gmpy2.invert(rows[k][k], p)
        rows[k][k:] = [v * inverse % p for v in rows[k][k:]]
        for i in range(k + 1, d):
            factor = rows[i][k]
            if factor:
                rows[i][k:] = [(v - factor * w) % p for v, w in zip(rows[i][k:], rows[k][k:])]
    solution = [gmpy2.mpz(0)] * d
    for k in reversed(range(d)):
        known = sum((rows[k][j] * solution[j] for j in range(k + 1, d)), gmpy2.mpz(0))
        solution[k] = (rows[k][d] - known) % p
    return [int(v) for v in solution]


def _penalty(field_type: Any, moments: Any, d: int, l2: tuple[int, int], frac_bits: int) -> Any:
    """The diagonal ``(0, q_1 .. q_{d-1})`` to add to the summed Hessian, as a (d, d) matrix.

    ``q_j = 2**F l_num V_j / (l_den n**2)`` from the summed moments ``(n, S1, S2)``
    (all scaled by 2**F, so ``V_j = n S2_j - S1_j**2`` carries 2**(2F) and ``n**2``
    as well): one secure reciprocal and d products, once per fit.
    """
    n, s1, s2 = moments[0], moments[1:d], moments[d:]
    ratio = (n * s2 - s1 * s1) * (l2[0] << frac_bits) * mpc.reciprocal(n * n * l2[1])
    diagonal = mpc.np_concatenate((field_type.array(np.zeros(1, dtype=object)), ratio))
    eye = field_type.field.array(np.eye(d, dtype=object))  # public: a cheap product
    return eye * diagonal


async def fit(
    design: np.ndarray,
    label: np.ndarray,
    logistic: bool,
    iterations: int,
    modulus: int,
    l2: tuple[int, int],
    frac_bits: int,
    count_bits: int,
    min_rows: int,
    min_institutions: int,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    bins: int = 0,
    round_to: int = 1,
) -> dict[str, ReceiverShares]:
    """Train on every party's rows; see the module docstring for the shape of everything.

    With ``bins``, the coefficients are opened to the parties too, and each inputs
    its ``holdout`` rows' :func:`local_histogram`: the joint one is the block
    ``histogram`` (counts rounded to ``round_to``).
    """
    d = design.shape[1]
    enough = _enough(design.shape[0], count_bits, min_rows, min_institutions)
    ok = bool((await mpc.output(enough))[0])
    secfld = mpc.SecFld(modulus)
    zeros = secfld.array(np.zeros(d, dtype=object))
    secure: dict[str, Any] = {"enough": enough, "coefficients": zeros, "previous": zeros}
    singular, beta = 0, None
    if ok:
        singular, secure["coefficients"], secure["previous"], beta = await _iterate(
            secfld, design, label, logistic, iterations, l2, frac_bits, bins > 0
        )
    secure["singular"] = secfld.array(np.array([singular], dtype=object))
    if bins:
        counts = np.zeros(2 * bins, dtype=object)
        if beta is not None and holdout is not None:
            counts = local_histogram(holdout[0], holdout[1], beta, bins)
        joint = total(input_all(mpc.SecInt(count_bits), counts))
        secure["histogram"] = rounded(joint, round_to, False)
    return await shares_for_receiver(secure)


async def _iterate(
    secfld: Any,
    design: np.ndarray,
    label: np.ndarray,
    logistic: bool,
    iterations: int,
    l2: tuple[int, int],
    frac_bits: int,
    open_last: bool,
) -> tuple[int, Any, Any, np.ndarray | None]:
    """``(singular, beta_T, beta_{T-1}, beta_T opened)``; the iterates before go to the parties.

    ``beta_T`` is opened to the parties too only with ``open_last`` (else None).
    """
    d = design.shape[1]
    rows = centred(design)
    moments = total(input_all(secfld, local_moments(rows, frac_bits)))
    penalty = _penalty(secfld, moments, d, l2, frac_bits)
    beta: np.ndarray | None = np.zeros(d) if logistic else None
    opened = np.zeros(d, dtype=object)
    previous = secfld.array(opened)
    for step in range(iterations):
        h_local, r_local = local_step(rows, label, beta, frac_bits)
        h = total(input_all(secfld, h_local))
        r = total(input_all(secfld, r_local))
        last = step == iterations - 1
        secret = last and not open_last
        solution = await _solve(secfld, h + penalty, r, secret)
        if solution is None:
            return 1, previous * 0, previous * 0, None
        if secret:
            return 0, solution, previous, None
        opened = solution.value  # the iterate: opened to every party, to no one else
        beta = np.array([float(rational(int(v), secfld.field.modulus)) for v in opened])
        if last:
            return 0, secfld.array(np.array(opened, dtype=object)), previous, beta
        previous = secfld.array(np.array(opened, dtype=object))
    raise AssertionError("unreachable: at least one step runs")
