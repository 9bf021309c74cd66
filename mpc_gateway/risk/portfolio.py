"""Portfolio risk across institutions: concentration (limits, HHI) and histograms.

Plans (public, derived from the schema and the number of parties) fix each MPC
job's shape and secure bit lengths; the node-side functions compute a node's
fixed-shape local inputs with DuckDB over its table in the schema's integer
encoding. The MPC programs are in :mod:`mpc_gateway.mpc.programs.risk`. Nothing
here imports mpyc.

Concentration: for n disjoint units (the counterparties of a batch of distinct
LEIs, or the sectors of the schema's domain) with joint exposures s_i, the
receiver gets the flags ``s_i > limit`` and the HHI as the two integers
``(sum s_i**2, (sum s_i)**2)`` (``hhi="fraction"``), or only the bit
``HHI > hhi_limit`` (``hhi="flag"``, HHI in points 0..10,000). Bounds: with
``T = m * max_rows_per_node * max|exposure|`` (every loan is in at most one
unit, so the joint total is at most T), ``|s_i - limit - 1| <= T + |limit| + 1``
fixes ``exposure_bits`` and ``10000 * T**2 + 1`` fixes ``bits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import duckdb
import numpy as np

from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.query.schema import DatasetSchema, NumericColumn
from mpc_gateway.risk.features import MAX_BATCH

__all__ = [
    "ConcentrationPlan",
    "HistogramPlan",
    "plan_concentration",
    "plan_histogram",
    "local_group_exposures",
    "local_histogram",
    "encode_value",
]

Where = tuple[str, list[Any]] | None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _numeric(schema: DatasetSchema, column: str) -> NumericColumn:
    spec = schema.columns.get(column)
    if not isinstance(spec, NumericColumn):
        raise InvalidRequestError(f"{column!r} is not a numeric column of {schema.name!r}")
    return spec


def encode_value(schema: DatasetSchema, column: str, value: Decimal | str | int) -> int:
    """A public value (a limit, a bin edge) in the column's integer encoding, exactly."""
    spec = _numeric(schema, column)
    scaled = Decimal(str(value)) * spec.factor
    if scaled != scaled.to_integral_value():
        raise InvalidRequestError(f"{value} is finer than {column!r}'s {spec.scale} decimals")
    return int(scaled)


@dataclass(frozen=True)
class ConcentrationPlan:
    """Shape, bounds and disclosure of one concentration job."""

    units: int
    limit: int | None  # encoded; None: no per-unit flags
    hhi: Literal["none", "fraction", "flag"]
    hhi_limit: int  # HHI points, 0..10000
    local_total_bound: int  # bound on one node's sum of |exposure| over all units
    bits: int
    exposure_bits: int

    def program_args(self, exposures: np.ndarray) -> dict[str, Any]:
        if exposures.shape != (self.units,):
            raise InvalidRequestError(f"local exposures must be a vector of {self.units} units")
        if sum(abs(int(v)) for v in exposures) > self.local_total_bound:
            raise InvalidRequestError(
                "local exposures exceed the declared bound (overlapping units?)"
            )
        return {
            "exposures": np.asarray(exposures, dtype=object),
            "bits": self.bits,
            "exposure_bits": self.exposure_bits,
            "limit": self.limit,
            "hhi": self.hhi,
            "hhi_limit": self.hhi_limit,
        }

    @staticmethod
    def hhi_points(numerator: int, denominator: int) -> Fraction | None:
        """HHI in points (0..10000) from the released pair; None for no exposure at all."""
        return Fraction(10000 * numerator, denominator) if denominator else None


def plan_concentration(
    schema: DatasetSchema,
    parties: int,
    units: int,
    *,
    limit: Decimal | str | None = None,
    hhi: Literal["none", "fraction", "flag"] = "fraction",
    hhi_limit: int | None = None,
    column: str = "exposure",
) -> ConcentrationPlan:
    if not 1 <= units <= MAX_BATCH:
        raise InvalidRequestError(f"a concentration job covers 1..{MAX_BATCH} units")
    if limit is None and hhi == "none":
        raise InvalidRequestError("a concentration job releases flags, an HHI, or both")
    if hhi == "flag" and (hhi_limit is None or not 0 <= hhi_limit <= 10000):
        raise InvalidRequestError("an HHI flag needs a limit in points, 0..10000")
    local = schema.max_rows_per_node * _numeric(schema, column).magnitude
    total = parties * local
    encoded = None if limit is None else encode_value(schema, column, limit)
    exposure_bits = (total + abs(encoded or 0) + 1).bit_length() + 1
    return ConcentrationPlan(
        units=units,
        limit=encoded,
        hhi=hhi,
        hhi_limit=hhi_limit or 0,
        local_total_bound=local,
        bits=max((10000 * total * total + 1).bit_length() + 1, exposure_bits),
        exposure_bits=exposure_bits,
    )


def local_group_exposures(
    cursor: duckdb.DuckDBPyConnection,
    schema: DatasetSchema,
    group_column: str = "sector",
    column: str = "exposure",
    where: Where = None,
    table: str = "data",
) -> np.ndarray:
    """This node's summed ``column`` per value of ``group_column``'s domain (zeros included)."""
    domain = schema.categorical(group_column).domain
    _numeric(schema, column)
    sql, params = where or ("TRUE", [])
    rows = cursor.execute(
        f"SELECT CAST({_ident(group_column)} AS VARCHAR), sum({_ident(column)}) "
        f"FROM {_ident(table)} WHERE {sql} GROUP BY 1",
        params,
    ).fetchall()
    out = np.zeros(len(domain), dtype=object)
    index = {value: i for i, value in enumerate(domain)}
    for group, total in rows:
        out[index[group]] = int(total or 0)
    return out


@dataclass(frozen=True)
class HistogramPlan:
    """Bins ``[e_i, e_{i+1})``, the last one closed (numpy's rule); values outside are not counted."""

    column: str
    edges: tuple[int, ...]  # encoded, strictly increasing
    bits: int
    min_count: int = 0  # bins with fewer joint values are released as 0, flagged suppressed

    def program_args(self, counts: np.ndarray) -> dict[str, Any]:
        if counts.shape != (len(self.edges) - 1,):
            raise InvalidRequestError("local counts must have one entry per bin")
        return {"counts": np.asarray(counts, dtype=object), "bits": self.bits,
                "min_count": self.min_count}  # fmt: skip


def plan_histogram(
    schema: DatasetSchema,
    parties: int,
    column: str,
    edges: Sequence[Decimal | str | int],
    min_count: int = 0,
) -> HistogramPlan:
    encoded = tuple(encode_value(schema, column, e) for e in edges)
    if len(encoded) < 2 or len(encoded) > 1001 or any(a >= b for a, b in zip(encoded, encoded[1:])):
        raise InvalidRequestError("histogram edges: 2..1001 strictly increasing values")
    bits = (parties * schema.max_rows_per_node).bit_length() + 1
    return HistogramPlan(column=column, edges=encoded, bits=bits, min_count=min_count)


def local_histogram(
    cursor: duckdb.DuckDBPyConnection,
    schema: DatasetSchema,
    plan: HistogramPlan,
    where: Where = None,
    table: str = "data",
) -> np.ndarray:
    """This node's count per bin of ``plan`` (one scan)."""
    _numeric(schema, plan.column)
    x = _ident(plan.column)
    last = len(plan.edges) - 2
    exprs = [
        f"count(*) FILTER (WHERE {x} >= ? AND {x} {'<=' if i == last else '<'} ?)"
        for i in range(last + 1)
    ]
    params: list[Any] = [v for i in range(last + 1) for v in (plan.edges[i], plan.edges[i + 1])]
    sql, where_params = where or ("TRUE", [])
    row = cursor.execute(
        f"SELECT {', '.join(exprs)} FROM {_ident(table)} WHERE {sql}", params + where_params
    ).fetchall()[0]  # fetchall: a cursor reused by the node must not keep a pending result
    return np.array([int(v) for v in row], dtype=object)
