"""The exact layout of a joint training job: design columns, the field, a node's statistics.

Design. Column 0 is the intercept (1). A numeric feature enters in its real
units (the encoded value over ``10**scale``); a categorical feature as one 0/1
column per level of its declared domain except the first (the reference level,
so the design has full rank without a penalty on the intercept). Every
non-intercept column is penalised as a standardised feature (see
:mod:`mpc_gateway.mpc.programs.train`), dummies included.

The field. The MPC solves ``A beta = B`` over a prime field and the receiver
recovers each rational coefficient ``a/b`` from its residue by rational
reconstruction, which needs ``p > 2 * bound**2`` with ``bound`` above every
``|a|`` and ``b``. By Cramer's rule ``b`` divides ``det A`` and ``a`` is a
determinant of A with one column replaced by B, so Hadamard's inequality on
columns bounds both by ``prod_k max(|A_k|, |B|)``, with the entries' declared
bounds (schema bounds, ``max_rows_per_node`` per node, ``2**F``; see
:func:`_entry_bounds`). The prime is the smallest above a power of two from a
fixed table, one every 512 bits to 12,288 (searching for a prime of thousands of bits
takes seconds to minutes; each entry is checked by the tests).

A node's rows (:func:`local_rows`) and its fixed-shape statistics of them
(:func:`local_moments` once, :func:`local_step` per Newton step, both from the
:func:`centred` rows) are computed here, in its MPC worker, without MPyC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import gmpy2
import numpy as np

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, NumericColumn
from mpc_gateway.query.sql import QueryCursor, Where, ident

__all__ = [
    "FRAC_BITS",
    "PRIMES",
    "TrainLayout",
    "train_layout",
    "field_modulus",
    "rational",
    "local_rows",
    "centred",
    "local_moments",
    "local_step",
]

VALIDATION_BINS = 100
"""Bins of the predicted probability in a held-out split's per-label histograms."""

FRAC_BITS = 30
"""Fraction bits of every local statistic (floats times 2**30, rounded to integers)."""

MAX_COLUMNS = 64

PRIMES: dict[int, int] = {
    1024: 643,
    1536: 75,
    2048: 981,
    2560: 903,
    3072: 813,
    3584: 21,
    4096: 1761,
    4608: 537,
    5120: 5467,
    5632: 9793,
    6144: 375,
    6656: 315,
    7168: 2305,
    7680: 5293,
    8192: 897,
    8704: 3381,
    9216: 1275,
    9728: 3477,
    10240: 2601,
    10752: 6583,
    11264: 14935,
    11776: 11341,
    12288: 11293,
    16384: 2775,
    24576: 241,
}
"""Field sizes: ``bits -> offset``, the prime ``2**bits + offset`` is the smallest above 2**bits."""


def field_modulus(bound: int) -> int:
    """The smallest prime of the table above ``2 * bound**2``."""
    need = 2 * bound * bound
    for bits in sorted(PRIMES):
        if 1 << bits > need:
            return (1 << bits) + PRIMES[bits]
    raise InvalidQueryError(
        "the training job is too large for the field sizes available "
        f"({need.bit_length()} bits needed): fewer features or narrower column bounds"
    )


def rational(value: int, modulus: int) -> Fraction:
    """The fraction a/b with |a|, b <= sqrt(p/2) that ``value`` encodes modulo ``modulus``."""
    p = gmpy2.mpz(modulus)  # GMP: Python's division is quadratic at thousands of bits
    bound = gmpy2.isqrt(p // 2)
    r0, r1, t0, t1 = p, gmpy2.mpz(value) % p, gmpy2.mpz(0), gmpy2.mpz(1)
    while r1 > bound:
        q = r0 // r1
        r0, r1, t0, t1 = r1, r0 - q * r1, t1, t0 - q * t1
    if t1 == 0 or abs(t1) > bound:
        raise ArithmeticError("no fraction within the bounds has this residue")
    return Fraction(int(r1), int(t1))


@dataclass(frozen=True)
class TrainLayout:
    """Everything nodes and the receiver need to run and read one training job."""

    columns: tuple[str, ...]  # "intercept", numeric names, "column=level" dummies
    expressions: tuple[str, ...]  # SQL of each design column over ``data`` (after intercept)
    parameters: tuple[str, ...]  # the levels the dummies compare with, in order
    label_sql: str
    logistic: bool
    iterations: int
    l2: tuple[int, int]
    modulus: int
    count_bits: int
    min_rows: int
    min_institutions: int

    def program_args(
        self,
        design: np.ndarray,
        label: np.ndarray,
        holdout: tuple[np.ndarray, np.ndarray] | None = None,
        round_to: int = 1,
    ) -> dict[str, Any]:
        """This node's arguments of ``train:fit``; ``holdout``: its held-out rows, if any."""
        if design.ndim != 2 or design.shape[1] != len(self.columns):
            raise InvalidQueryError("the local design does not have the job's columns")
        validation: dict[str, Any] = {}
        if holdout is not None:
            validation = {"holdout": holdout, "bins": VALIDATION_BINS, "round_to": round_to}
        return {
            **validation,
            "design": design,
            "label": label,
            "logistic": self.logistic,
            "iterations": self.iterations,
            "modulus": self.modulus,
            "l2": self.l2,
            "frac_bits": FRAC_BITS,
            "count_bits": self.count_bits,
            "min_rows": self.min_rows,
            "min_institutions": self.min_institutions,
        }

    def coefficients(self, values: list[int]) -> list[Fraction]:
        """The exact coefficients a released block encodes."""
        return [rational(v, self.modulus) for v in values]


def _feature(schema: DatasetSchema, name: str) -> tuple[list[str], list[str], list[str], list[int]]:
    """``(columns, sql, parameters, bounds)`` of one feature."""
    spec = schema.columns.get(name)
    if isinstance(spec, NumericColumn):
        bound = math.ceil(max(abs(spec.min), abs(spec.max)))
        return [name], [f"CAST({ident(name)} AS DOUBLE) / {spec.factor}"], [], [max(bound, 1)]
    if isinstance(spec, CategoricalColumn):
        if len(spec.domain) < 2:
            raise InvalidQueryError(f"feature {name!r} has a single level: it predicts nothing")
        levels = list(spec.domain[1:])  # the first level is the reference
        # CASE, not a cast of the comparison: PostgreSQL casts no boolean to a float
        sql = [f"CASE WHEN {ident(name)} = ? THEN 1.0 ELSE 0.0 END" for _ in levels]
        return [f"{name}={level}" for level in levels], sql, levels, [1] * len(levels)
    raise InvalidQueryError(f"{name!r} is not a numeric or categorical column of {schema.name!r}")


def _label(schema: DatasetSchema, label: str, logistic: bool) -> tuple[str, int]:
    spec = schema.columns.get(label)
    if not isinstance(spec, NumericColumn):
        raise InvalidQueryError(f"the label {label!r} is not a numeric column of {schema.name!r}")
    if logistic and (spec.scale != 0 or spec.min != 0 or spec.max != 1):
        raise InvalidQueryError(f"a logistic label is 0 or 1: {label!r} is declared otherwise")
    bound = math.ceil(max(abs(spec.min), abs(spec.max)))
    return f"CAST({ident(label)} AS DOUBLE) / {spec.factor}", max(bound, 2)


def _entry_bounds(
    bounds: list[int], label_bound: int, rows: int, parties: int, l2: tuple[int, int]
) -> tuple[list[list[int]], list[int]]:
    """Bounds of ``|A_jk|`` and ``|B_j|`` of the program's system, as integers.

    The summed statistics (``n``, ``S1``, ``S2``, ``H``, ``r``) are integers scaled
    by ``2**F``; the integer system the program solves (in the form of
    :mod:`mpc_gateway.mpc.programs.train`) is
    ``(l_den n**2 H / 2**F + l_num diag(n S2 - S1**2)) beta = l_den n**2 r / 2**F``,
    integral as ``n = rows * 2**F`` exactly. Each node's rounding (of its centred
    statistics and their integer shift back) is below ``(M_j + 1) * (M_k + 1)`` per
    entry, so ``parties`` times that bounds it.
    """
    one = 1 << FRAC_BITS

    def gram(mj: int, mk: int) -> int:
        return one * rows * mj * mk + parties * (mj + 1) * (mk + 1)

    n = one * rows  # exact: every node's count is its rows times 2**F
    variance = [n * gram(m, m) + gram(m, 1) ** 2 for m in bounds]
    scale = l2[1] * n * rows  # l_den n**2 / 2**F
    a = [
        [
            scale * gram(mj, mk) + (l2[0] * variance[j] if j == k else 0)
            for k, mk in enumerate(bounds)
        ]
        for j, mj in enumerate(bounds)
    ]
    b = [scale * gram(m, label_bound) for m in bounds]
    return a, b


def _hadamard(a: list[list[int]], b: list[int]) -> int:
    norm_b = math.isqrt(sum(v * v for v in b)) + 1
    bound = 1
    for k in range(len(b)):
        bound *= max(math.isqrt(sum(row[k] ** 2 for row in a)) + 1, norm_b)
    return bound


def train_layout(
    schema: DatasetSchema,
    parties: int,
    label: str,
    features: tuple[str, ...],
    logistic: bool,
    l2: Decimal,
    iterations: int,
    min_rows: int,
    min_institutions: int,
) -> TrainLayout:
    """The layout of training ``label`` on ``features`` over ``schema`` with ``parties`` nodes."""
    if label in features or len(set(features)) != len(features):
        raise InvalidQueryError("each feature once, and the label is not a feature")
    columns, bounds = ["intercept"], [1]
    sql: list[str] = []
    params: list[str] = []
    for name in features:
        c, s, p, b = _feature(schema, name)
        columns, sql, params, bounds = columns + c, sql + s, params + p, bounds + b
    if len(columns) > MAX_COLUMNS:
        raise InvalidQueryError(f"at most {MAX_COLUMNS} design columns (dummies included)")
    label_sql, label_bound = _label(schema, label, logistic)
    penalty = Fraction(l2)
    pair = (penalty.numerator, penalty.denominator)
    rows = parties * schema.max_rows_per_node
    a, b = _entry_bounds(bounds, label_bound, rows, parties, pair)
    return TrainLayout(
        columns=tuple(columns),
        expressions=tuple(sql),
        parameters=tuple(params),
        label_sql=label_sql,
        logistic=logistic,
        iterations=iterations if logistic else 1,
        l2=pair,
        modulus=field_modulus(_hadamard(a, b)),
        count_bits=max(rows, min_rows, parties).bit_length() + 2,
        min_rows=min_rows,
        min_institutions=min_institutions,
    )


def local_rows(
    cursor: QueryCursor, layout: TrainLayout, where: Where
) -> tuple[np.ndarray, np.ndarray]:
    """This node's ``(design, label)`` rows, in floats (they stay in its MPC worker).

    Column by column where the result offers it (DuckDB's ``fetchnumpy``: 4x faster
    than tuples at a million rows), else row by row.
    """
    condition, params = where
    expressions = [*layout.expressions, layout.label_sql]
    selected = ", ".join(f"{sql} AS c{j}" for j, sql in enumerate(expressions))  # unique names
    result = cursor.execute(
        f"SELECT {selected} FROM {ident('data')} WHERE {condition}",
        [*layout.parameters, *params],
    )
    columns = getattr(result, "fetchnumpy", None)
    if columns is not None:
        fetched = columns()
        values = [np.asarray(fetched[f"c{j}"], dtype=np.float64) for j in range(len(expressions))]
    else:
        rows = np.array(result.fetchall(), dtype=np.float64).reshape(-1, len(layout.columns))
        values = list(rows.T)
    design = np.empty((len(values[0]), len(layout.columns)))
    design[:, 0] = 1.0  # the intercept
    for j, column in enumerate(values[:-1], start=1):
        design[:, j] = column
    return design, np.ascontiguousarray(values[-1])


def _scaled(values: np.ndarray, frac_bits: int) -> np.ndarray:
    """Float statistics times 2**F, rounded to exact integers (object array)."""
    out: np.ndarray = np.array(
        [int(v) for v in np.rint(np.ldexp(values, frac_bits)).ravel()], dtype=object
    ).reshape(values.shape)
    return out


def centred(design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(design - c, c)``: c the local means rounded to integers (0 for the intercept).

    Statistics of the centred rows in floats keep the digits a column's spread
    needs (an exposure of 10,000,000 plus cents loses them uncentred); the shift
    back by the integer c is then exact integer arithmetic on the scaled values.
    Computed once per fit: every step's statistics start from it.
    """
    centre = np.rint(design.mean(axis=0)) if design.shape[0] else np.zeros(design.shape[1])
    centre[0] = 0.0
    return design - centre, np.array([int(v) for v in centre], dtype=object)


def local_moments(rows: tuple[np.ndarray, np.ndarray], frac_bits: int) -> np.ndarray:
    """``(n, sum x_j, sum x_j**2)`` of this node's :func:`centred` rows (non-intercept), scaled."""
    shifted, centre = rows
    rest, c = shifted[:, 1:], centre[1:]
    n = shifted.shape[0] << frac_bits
    s1 = _scaled(rest.sum(axis=0), frac_bits)
    s2 = _scaled((rest * rest).sum(axis=0), frac_bits) + 2 * c * s1 + n * c * c
    return np.concatenate(([n], s1 + n * c, s2))


def local_step(
    rows: tuple[np.ndarray, np.ndarray], label: np.ndarray, beta: np.ndarray | None, frac_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """This node's ``(H, r)`` at ``beta`` (None: least squares) from its :func:`centred` rows.

    ``H = X^T W X`` as ``Z^T Z`` with ``Z = sqrt(W) X`` (BLAS then computes one
    triangle: 4x faster at a million rows), scaled to integers.
    """
    shifted, c = rows
    if beta is None:
        weight, working = np.ones(shifted.shape[0]), label
    else:
        eta = shifted @ beta + float(np.dot(c.astype(float), beta))
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # the logistic function, without overflow
        weight = p * (1.0 - p)
        working = weight * eta + label - p
    u = _scaled(shifted.T @ weight, frac_bits)
    z = shifted * np.sqrt(weight)[:, None]
    h = _scaled(z.T @ z, frac_bits)
    h = h + np.outer(c, u) + np.outer(u, c) + _scaled(weight.sum(), frac_bits) * np.outer(c, c)
    r = _scaled(shifted.T @ working, frac_bits) + c * _scaled(working.sum(), frac_bits)
    return h, r
