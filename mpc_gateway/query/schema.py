"""Dataset schemas: the shape every node's data must have.

Data is horizontally partitioned: every node holds rows of the same schema. The
schema declares what the MPC step needs to be fixed-shape and exact: the decimal
scale and bounds of each numeric column (they fix the integer encoding and the
secure bit lengths) and the full domain of each categorical column (it fixes
the group-by shape). A schema is public; it never contains data.

A schema is refused when a node could not compute with it exactly: bounds finer
than their column's scale, or bounds and ``max_rows_per_node`` whose sum of
squares (what a variance needs) could exceed :data:`EXACT_SUM_LIMIT`, the
largest integer a node's DuckDB sums exactly (HUGEINT). docs/schema.md
describes the format.
"""

from __future__ import annotations

import tomllib
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from functools import cached_property
from math import isqrt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mpc_gateway.canonical import canonical_hash
from mpc_gateway.errors import ConfigurationError

__all__ = [
    "EXACT_SUM_LIMIT",
    "NumericColumn",
    "CategoricalColumn",
    "KeyColumn",
    "Column",
    "ColumnName",
    "DatasetName",
    "DatasetSchema",
    "load_schema",
    "scaled_exactly",
]

_NAME = r"^[a-z_][a-z0-9_]{0,62}$"

ColumnName = Annotated[str, Field(pattern=_NAME)]
"""A column's name: lower-case letters, digits and underscores, at most 63 characters."""

DatasetName = Annotated[str, Field(pattern=_NAME)]
"""A dataset's name, of the same form."""

EXACT_SUM_LIMIT = 2**127 - 1
"""The largest sum a node computes exactly: DuckDB's HUGEINT, a signed 128-bit integer.

Every row of a column adds at most ``magnitude**2`` to its sum of squares, so a
schema needs ``max_rows_per_node * magnitude**2 <= EXACT_SUM_LIMIT`` for every
numeric column (every other local sum is smaller)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumericColumn(_Frozen):
    """A number kept exactly to ``scale`` decimal places, within [min, max].

    A node refuses data with a value outside the bounds, unless ``clip``: then
    such values are clamped to the nearest bound as the node loads them (the
    bounds are each record's contribution bound, which differential privacy's
    noise is calibrated to; every query then sees the clamped values).
    """

    kind: Literal["numeric"] = "numeric"
    scale: int = Field(ge=0, le=6)
    min: Decimal
    max: Decimal
    clip: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _bounds(self) -> NumericColumn:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        for bound in (self.min, self.max):
            if (scaled := scaled_exactly(bound, self.scale)) != scaled.to_integral_value():
                raise ValueError(f"bound {bound} has more than scale = {self.scale} decimals")
        return self

    @property
    def factor(self) -> int:
        """Multiplier from a value to its integer encoding."""
        return int(10**self.scale)

    @property
    def encoded_min(self) -> int:
        """``min`` in the integer encoding (exact: bounds have at most ``scale`` decimals)."""
        return int(scaled_exactly(self.min, self.scale))

    @property
    def encoded_max(self) -> int:
        """``max`` in the integer encoding."""
        return int(scaled_exactly(self.max, self.scale))

    @property
    def magnitude(self) -> int:
        """Largest absolute value of the integer encoding."""
        return max(abs(self.encoded_min), abs(self.encoded_max))


def scaled_exactly(value: Decimal, scale: int) -> Decimal:
    """``value * 10**scale`` exactly (the default context would round past 28 digits)."""
    digits = max(28, len(value.as_tuple().digits))  # nor round 1e-2000000 to zero (Emin)
    return value.scaleb(scale, Context(prec=digits, Emin=MIN_EMIN, Emax=MAX_EMAX))


class CategoricalColumn(_Frozen):
    """A text value from a declared, ordered domain."""

    kind: Literal["categorical"] = "categorical"
    domain: tuple[str, ...] = Field(min_length=1, max_length=1000)
    description: str = ""

    @model_validator(mode="after")
    def _unique(self) -> CategoricalColumn:
        if len(set(self.domain)) != len(self.domain):
            raise ValueError("domain values must be unique")
        return self


class KeyColumn(_Frozen):
    """An entity identifier shared across institutions (an LEI, or a keyed pseudonym).

    Keys only match entities for entity-level computations (risk scores); they
    can never be aggregated, filtered on or grouped by, and are never released.
    """

    kind: Literal["key"] = "key"
    description: str = ""


Column = Annotated[NumericColumn | CategoricalColumn | KeyColumn, Field(discriminator="kind")]


class DatasetSchema(_Frozen):
    """The public description of one joint dataset."""

    name: DatasetName
    description: str = ""
    max_rows_per_node: int = Field(default=10_000_000, ge=1, le=10**12)
    max_group_cells: int = Field(default=10_000, ge=1, le=1_000_000)
    """The most cells a grouped query may compute: the product of its group-by domains."""
    columns: dict[ColumnName, Column] = Field(min_length=1)

    @model_validator(mode="after")
    def _sums_stay_exact(self) -> DatasetSchema:
        most = isqrt(EXACT_SUM_LIMIT // self.max_rows_per_node)
        for name, column in self.columns.items():
            if isinstance(column, NumericColumn) and column.magnitude > most:
                largest = Decimal(most).scaleb(-column.scale)
                raise ValueError(
                    f"column {name!r}: with max_rows_per_node = {self.max_rows_per_node:_} "
                    f"a sum of squares could exceed 2**127 - 1 (the largest sum a node "
                    f"computes exactly); at scale {column.scale} the bounds must lie within "
                    f"+-{largest:f}, or lower max_rows_per_node or the scale"
                )
        return self

    @cached_property
    def schema_hash(self) -> str:
        """Content hash nodes and gateway compare before computing together."""
        return canonical_hash(self.model_dump(mode="json"))

    def numeric(self, name: str) -> NumericColumn:
        column = self.columns[name]
        assert isinstance(column, NumericColumn)
        return column

    def categorical(self, name: str) -> CategoricalColumn:
        column = self.columns[name]
        assert isinstance(column, CategoricalColumn)
        return column


def load_schema(path: Path) -> DatasetSchema:
    """Read a schema TOML file; any mistake is a ConfigurationError naming the field."""
    try:
        data = tomllib.loads(path.read_text())
        return DatasetSchema.model_validate(data)
    except FileNotFoundError as err:
        raise ConfigurationError(f"schema file {path} does not exist") from err
    except (tomllib.TOMLDecodeError, ValidationError) as err:
        raise ConfigurationError(f"schema file {path} is invalid: {err}") from err
