"""The shape and bounds of a concentration job, and a node's exposures per unit.

Bounds: with ``T = m * max_rows_per_node * max|exposure|`` (every loan is in at
most one unit, so the joint total is at most T), ``|s_i - limit - 1| <= T +
|limit| + 1`` fixes ``exposure_bits`` and ``10000 * T**2 + 1`` fixes ``bits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from mpc_gateway.computations.shared import encode_value, numeric_column
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.query.sql import QueryCursor, Where, ident

__all__ = ["Hhi", "ConcentrationLayout", "concentration_layout", "local_group_exposures"]

Hhi = Literal["none", "fraction", "flag"]


@dataclass(frozen=True)
class ConcentrationLayout:
    """Shape, bounds and bit lengths of one concentration job."""

    units: int
    limit: int | None  # encoded; None: no per-unit flags
    hhi: Hhi
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


def concentration_layout(
    schema: DatasetSchema,
    parties: int,
    units: int,
    *,
    limit: Decimal | str | None = None,
    hhi: Hhi = "fraction",
    hhi_limit: int | None = None,
    column: str = "exposure",
) -> ConcentrationLayout:
    if not 1 <= units <= MAX_BATCH:
        raise InvalidRequestError(f"a concentration job covers 1..{MAX_BATCH} units")
    if limit is None and hhi == "none":
        raise InvalidRequestError("a concentration job releases flags, an HHI, or both")
    if hhi == "flag" and (hhi_limit is None or not 0 <= hhi_limit <= 10000):
        raise InvalidRequestError("an HHI flag needs a limit in points, 0..10000")
    local = schema.max_rows_per_node * numeric_column(schema, column).magnitude
    total = parties * local
    encoded = None if limit is None else encode_value(schema, column, limit)
    exposure_bits = (total + abs(encoded or 0) + 1).bit_length() + 1
    return ConcentrationLayout(
        units=units,
        limit=encoded,
        hhi=hhi,
        hhi_limit=hhi_limit or 0,
        local_total_bound=local,
        bits=max((10000 * total * total + 1).bit_length() + 1, exposure_bits),
        exposure_bits=exposure_bits,
    )


def local_group_exposures(
    cursor: QueryCursor,
    schema: DatasetSchema,
    group_column: str = "sector",
    column: str = "exposure",
    where: Where | None = None,
    table: str = "data",
) -> np.ndarray:
    """This node's summed ``column`` per value of ``group_column``'s domain (zeros included)."""
    domain = schema.categorical(group_column).domain
    numeric_column(schema, column)
    sql, params = where or ("TRUE", [])
    rows = cursor.execute(
        f"SELECT CAST({ident(group_column)} AS VARCHAR), sum({ident(column)}) "
        f"FROM {ident(table)} WHERE {sql} GROUP BY 1",
        params,
    ).fetchall()
    out = np.zeros(len(domain), dtype=object)
    index = {value: i for i, value in enumerate(domain)}
    for group, total in rows:
        out[index[group]] = int(total or 0)
    return out
