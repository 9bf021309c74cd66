"""The exact layout of a joint training job: design columns, the field, the node's rows.

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
fixed table (searching for a prime of thousands of bits takes seconds; each
entry is checked by the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

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
]

VALIDATION_BINS = 100
"""Bins of the predicted probability in a held-out split's per-label histograms."""

FRAC_BITS = 30
"""Fraction bits of every local statistic (floats times 2**30, rounded to integers)."""

MAX_COLUMNS = 64

PRIMES: dict[int, int] = {
    1024: 643,
    2048: 981,
    3072: 813,
    4096: 1761,
    6144: 375,
    8192: 897,
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
    bound = math.isqrt(modulus // 2)
    r0, r1, t0, t1 = modulus, value % modulus, 0, 1
    while r1 > bound:
        q = r0 // r1
        r0, r1, t0, t1 = r1, r0 - q * r1, t1, t0 - q * t1
    if t1 == 0 or abs(t1) > bound:
        raise ArithmeticError("no fraction within the bounds has this residue")
    return Fraction(r1, t1)


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
    """Bounds of ``|A_jk|`` and ``|B_j|`` of the program's system.

    Each node's rounding (of its centred statistics and their integer shift back)
    is below ``(M_j + 1) * (M_k + 1)`` per entry, so ``parties`` times that bounds it.
    """
    one = 1 << FRAC_BITS

    def gram(mj: int, mk: int) -> int:
        return one * rows * mj * mk + parties * (mj + 1) * (mk + 1)

    n = gram(1, 1)
    variance = [n * gram(m, m) + gram(m, 1) ** 2 for m in bounds]
    scale = l2[1] * n * n
    a = [
        [
            scale * gram(mj, mk) + (one * l2[0] * variance[j] if j == k else 0)
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
    """This node's ``(design, label)`` rows, in floats (they stay in its MPC worker)."""
    condition, params = where
    selected = ", ".join([*layout.expressions, layout.label_sql])
    rows = cursor.execute(
        f"SELECT {selected} FROM {ident('data')} WHERE {condition}",
        [*layout.parameters, *params],
    ).fetchall()
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(layout.columns))
    design = np.column_stack([np.ones(len(rows)), values[:, :-1]])
    return design, np.ascontiguousarray(values[:, -1])
