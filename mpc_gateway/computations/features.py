"""Per-entity risk features: the registry, and one node's local contribution.

An entity (a company by its LEI, a person by a keyed pseudonym, see
:mod:`mpc_gateway.pseudonym`) may borrow from several institutions. A
*cross-institution feature* such as ``total_exposure`` is one local value per
node and entity (this node's sum of exposure over the entity's loans) combined
across nodes inside the MPC, by a sum or a secure maximum. The registry below
names each feature, says how it is computed locally, how it combines, and its
declared bound (from the schema), which fixes the secure bit lengths.

:func:`local_entity_features` runs on a node, over its DuckDB table in the
schema's integer encoding (numbers as ``value * 10**scale``, keys as text, as
:class:`~mpc_gateway.node.data.LocalDataset` stores them): for a batch of keys it
returns a fixed-shape integer matrix, one row per key in the batch's order,
zeros for entities this node does not know; :func:`local_presence` says which
of a batch's distinct entities it knows at all. Nothing here imports mpyc.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn, NumericColumn
from mpc_gateway.query.sql import QueryCursor, Where

__all__ = [
    "ALERT_AMOUNT",
    "Combine",
    "FeatureSpec",
    "FEATURES",
    "feature_spec",
    "local_entity_features",
    "local_presence",
    "MAX_BATCH",
]

Combine = Literal["sum", "max"]


def _col(name: str) -> str:
    return 'd."' + name.replace('"', '""') + '"'


def _rows(schema: DatasetSchema) -> int:
    return schema.max_rows_per_node


def _magnitude(column: str) -> Callable[[DatasetSchema], int]:
    return lambda schema: schema.numeric(column).magnitude


def _rating_index(schema: DatasetSchema) -> str:
    """0 for the best rating of the declared domain, len-1 for the worst (works on ENUM or text)."""
    domain = schema.categorical("rating").domain
    cases = " ".join(
        f"WHEN '{v.replace(chr(39), chr(39) * 2)}' THEN {i}" for i, v in enumerate(domain)
    )
    return f"(CASE CAST({_col('rating')} AS VARCHAR) {cases} END)"


def _below_investment_grade(schema: DatasetSchema) -> str:
    """Ratings after BBB in the declared domain (BB, B, CCC)."""
    domain = schema.categorical("rating").domain
    worse = [v for v in domain[domain.index("BBB") + 1 :]] if "BBB" in domain else []
    listed = ", ".join("'" + v.replace("'", "''") + "'" for v in worse) or "NULL"
    return f"CAST({_col('rating')} AS VARCHAR) IN ({listed})"


@dataclass(frozen=True)
class FeatureSpec:
    """One cross-institution feature: its local aggregate, how it combines, its bounds.

    ``local_sql`` is an aggregate expression over one entity's loans at one node
    (``d`` is the node's table), in the integer encoding of ``unit``;
    ``local_bound`` bounds its absolute value at any node that satisfies the
    schema (``max_rows_per_node`` rows, every value within its declared bounds).
    """

    name: str
    combine: Combine
    unit: str
    description: str
    columns: tuple[str, ...]
    local_sql: Callable[[DatasetSchema], str]
    local_bound: Callable[[DatasetSchema], int]
    binary: bool = False  # 0/1 valued when its columns are declared within [0, 1]

    def joint_bound(self, schema: DatasetSchema, parties: int) -> int:
        """Bound on the combined value's magnitude over ``parties`` nodes."""
        local = self.local_bound(schema)
        return local * parties if self.combine == "sum" else local

    def is_binary(self, schema: DatasetSchema) -> bool:
        """Whether every local value is 0 or 1 (a maximum is then an OR, no comparison)."""
        return self.binary and all(
            schema.numeric(c).min >= 0 and schema.numeric(c).max <= 1 for c in self.columns
        )

    def check_schema(self, schema: DatasetSchema) -> None:
        for column in self.columns:
            spec = schema.columns.get(column)
            if not isinstance(spec, NumericColumn | CategoricalColumn):
                raise InvalidRequestError(
                    f"feature {self.name!r} needs column {column!r}, which dataset "
                    f"{schema.name!r} does not declare as numeric or categorical"
                )


def _spec(
    name: str,
    combine: Combine,
    unit: str,
    description: str,
    columns: tuple[str, ...],
    sql: Callable[[DatasetSchema], str],
    bound: Callable[[DatasetSchema], int],
    binary: bool = False,
) -> FeatureSpec:
    return FeatureSpec(name, combine, unit, description, columns, sql, bound, binary)


_EXPOSURE = _magnitude("exposure")

FEATURES: dict[str, FeatureSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "total_exposure",
            "sum",
            "exposure encoding (EUR cents)",
            "exposure to the entity summed over every institution",
            ("exposure",),
            lambda s: f"sum({_col('exposure')})",
            lambda s: _rows(s) * _EXPOSURE(s),
        ),
        _spec(
            "lenders",
            "sum",
            "institutions",
            "number of institutions that know the entity (local presence bits summed)",
            (),
            lambda s: "max(1)",
            lambda s: 1,
        ),
        _spec(
            "loans",
            "sum",
            "loans",
            "number of loans to the entity over every institution",
            (),
            lambda s: "count(*)",
            _rows,
        ),
        _spec(
            "max_days_past_due",
            "max",
            "days",
            "largest days past due over every loan to the entity (secure maximum)",
            ("days_past_due",),
            lambda s: f"max({_col('days_past_due')})",
            _magnitude("days_past_due"),
        ),
        _spec(
            "any_default",
            "max",
            "0/1",
            "1 if any institution has a loan to it in default",
            ("defaulted",),
            lambda s: f"max({_col('defaulted')})",
            _magnitude("defaulted"),
            binary=True,
        ),
        _spec(
            "defaulted_exposure",
            "sum",
            "exposure encoding (EUR cents)",
            "exposure of the entity's defaulted loans, summed",
            ("exposure", "defaulted"),
            lambda s: f"sum({_col('exposure')} * {_col('defaulted')})",
            lambda s: _rows(s) * _EXPOSURE(s) * s.numeric("defaulted").magnitude,
        ),
        _spec(
            "largest_loan",
            "max",
            "exposure encoding (EUR cents)",
            "largest single exposure to the entity anywhere (secure maximum)",
            ("exposure",),
            lambda s: f"max({_col('exposure')})",
            _EXPOSURE,
        ),
        _spec(
            "worst_rating",
            "max",
            "rating index (0 = best of the declared domain)",
            "worst rating any institution gives the entity (secure maximum)",
            ("rating",),
            lambda s: f"max({_rating_index(s)})",
            lambda s: len(s.categorical("rating").domain) - 1,
        ),
        _spec(
            "sub_investment_grade_exposure",
            "sum",
            "exposure encoding (EUR cents)",
            "exposure on loans rated below BBB, summed",
            ("exposure", "rating"),
            lambda s: (
                f"sum(CASE WHEN {_below_investment_grade(s)} THEN {_col('exposure')} ELSE 0 END)"
            ),
            lambda s: _rows(s) * _EXPOSURE(s),
        ),
        _spec(
            "lgd_weighted_exposure",
            "sum",
            "exposure x LGD encoding (EUR 1e-6)",
            "sum of exposure times loss given default (an expected-loss proxy)",
            ("exposure", "lgd"),
            lambda s: f"sum(CAST({_col('exposure')} AS HUGEINT) * {_col('lgd')})",
            lambda s: _rows(s) * _EXPOSURE(s) * s.numeric("lgd").magnitude,
        ),
    )
}


def feature_spec(name: str) -> FeatureSpec:
    """The registered feature ``name``; an InvalidRequestError naming the known ones otherwise."""
    try:
        return FEATURES[name]
    except KeyError:
        known = ", ".join(FEATURES)
        raise InvalidRequestError(f"unknown risk feature {name!r}; known: {known}") from None


def _check_key_column(schema: DatasetSchema, key_column: str) -> None:
    if not isinstance(schema.columns.get(key_column), KeyColumn):
        raise InvalidRequestError(
            f"column {key_column!r} of dataset {schema.name!r} is not an entity key column"
        )


ALERT_AMOUNT = _spec(
    "alert_amount",
    "sum",
    "amount encoding (EUR cents)",
    "amount of the entity's alerts, summed over every institution",
    ("amount",),
    lambda s: f"sum({_col('amount')})",
    lambda s: _rows(s) * _magnitude("amount")(s),
)
"""An alerts dataset's amount per entity: what a watchlist's overlap sums (not a risk feature:
the scoring models' features are over the loan books, :data:`FEATURES`)."""


def local_entity_features(
    cursor: QueryCursor,
    schema: DatasetSchema,
    keys: Sequence[str],
    features: Sequence[str | FeatureSpec],
    *,
    key_column: str = "counterparty_lei",
    where: Where | None = None,
    table: str = "data",
    max_keys: int = MAX_BATCH,
) -> np.ndarray:
    """This node's ``[len(keys), len(features)]`` integer matrix, rows in ``keys`` order.

    ``cursor`` is a DuckDB connection holding ``table`` in the schema's integer
    encoding (a pandas DataFrame in that encoding works once registered:
    ``con.register("data", frame)``). A key this node does not know gives a row
    of zeros; a repeated key gets the same row each time. One join, whatever the
    batch size; the keys never leave this function.
    """
    if len(keys) > max_keys:
        raise InvalidRequestError(f"a batch carries at most {max_keys} entity keys")
    _check_key_column(schema, key_column)
    specs = [f if isinstance(f, FeatureSpec) else feature_spec(f) for f in features]
    for spec in specs:
        spec.check_schema(schema)
    out = np.zeros((len(keys), len(specs)), dtype=object)
    if not keys or not specs:
        return out
    batch_name = f"risk_batch_{uuid.uuid4().hex}"
    batch = pd.DataFrame(
        {"risk_batch_pos": np.arange(len(keys), dtype=np.int64), "risk_batch_key": list(keys)}
    )
    exprs = ", ".join(spec.local_sql(schema) for spec in specs)
    table_sql = '"' + table.replace('"', '""') + '"'
    condition, params = where or ("TRUE", [])
    sql = (
        f"SELECT b.risk_batch_pos, {exprs} FROM {batch_name} b JOIN {table_sql} d "
        f"ON CAST({_col(key_column)} AS VARCHAR) = b.risk_batch_key WHERE {condition} "
        "GROUP BY b.risk_batch_pos"
    )
    cursor.register(batch_name, batch)
    try:
        rows = cursor.execute(sql, params).fetchall()
    finally:
        cursor.unregister(batch_name)
    if rows:
        values = np.array([[int(v or 0) for v in row] for row in rows], dtype=object)
        out[values[:, 0].astype(np.int64)] = values[:, 1:]
    return out


def local_presence(
    cursor: QueryCursor,
    schema: DatasetSchema,
    keys: Sequence[str],
    *,
    key_column: str = "counterparty_lei",
    where: Where | None = None,
    table: str = "data",
    max_keys: int = MAX_BATCH,
) -> np.ndarray:
    """This node's 0/1 vector over the batch's distinct keys (first occurrence order).

    1 where it holds at least one row of the entity that passes ``where`` (the
    ``lenders`` feature): what the minimum batch counts, so a repeated key counts once.
    """
    distinct = list(dict.fromkeys(keys))
    features = local_entity_features(
        cursor,
        schema,
        distinct,
        ["lenders"],
        key_column=key_column,
        where=where,
        table=table,
        max_keys=max_keys,
    )
    return features[:, 0]
