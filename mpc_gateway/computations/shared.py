"""What the risk computations share: entity key batches, released blocks, their disclosure.

Risk computations (scores, concentration, quantiles, histograms) release only
the blocks their plan declares; the helpers here read those blocks strictly
(a block of the wrong size or a "bit" that is not 0 or 1 is an IntegrityError)
and round released counts like aggregate counts. A batch of entity keys is
recorded in the audit log by its size and SHA-256, never as the keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from google.protobuf.message import Message
from pydantic import Field

from mpc_gateway.canonical import canonical_bytes
from mpc_gateway.computations.aggregate_result import rounded
from mpc_gateway.computations.base import Blocks
from mpc_gateway.computations.disclosure import gateway_relays, nodes_learn
from mpc_gateway.errors import IntegrityError, InvalidQueryError, InvalidRequestError
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.policy.models import MAX_BATCH, MAX_WATCHLIST
from mpc_gateway.query.schema import (
    EXACT_SUM_LIMIT,
    DatasetSchema,
    KeyColumn,
    NumericColumn,
    scaled_exactly,
)

__all__ = [
    "Keys",
    "DEFAULT_KEY_COLUMN",
    "Watchlist",
    "key_batch_hash",
    "without_keys",
    "check_key_column",
    "numeric_column",
    "encode_value",
    "block",
    "bits",
    "released_count",
    "risk_disclosure",
    "fields_set",
]

DEFAULT_KEY_COLUMN = "counterparty_lei"

Keys = Annotated[
    tuple[Annotated[str, Field(min_length=1, max_length=128)], ...],
    Field(min_length=1, max_length=MAX_BATCH),
]
"""A batch of entity keys (LEIs, person pseudonyms): its shape is public and fixed."""

Watchlist = Annotated[
    tuple[Annotated[str, Field(min_length=1, max_length=128)], ...],
    Field(min_length=1, max_length=MAX_WATCHLIST),
]
"""The keys of an entity check: up to :data:`MAX_WATCHLIST` when only their overlap is released."""


def fields_set(message: Message) -> dict[str, Any]:
    """The fields a job message's sender set (repeated ones as tuples): defaults stay defaults."""
    return {f.name: tuple(v) if f.is_repeated else v for f, v in message.ListFields()}


def key_batch_hash(keys: Sequence[str]) -> str:
    """SHA-256 of a key batch (canonical JSON list): the audit log's record of the batch."""
    return hashlib.sha256(canonical_bytes(list(keys))).hexdigest()


def without_keys(view: dict[str, Any]) -> dict[str, Any]:
    """An audit view with its key batch (if any) replaced by the batch's size and SHA-256."""
    keys = view.get("keys")
    if keys is not None:
        view["keys"] = {"count": len(keys), "sha256": key_batch_hash(keys)}
    return view


def check_key_column(schema: DatasetSchema, name: str) -> None:
    if not isinstance(schema.columns.get(name), KeyColumn):
        raise InvalidQueryError(f"{name!r} is not an entity key column of {schema.name!r}")


def numeric_column(schema: DatasetSchema, column: str) -> NumericColumn:
    spec = schema.columns.get(column)
    if not isinstance(spec, NumericColumn):
        raise InvalidRequestError(f"{column!r} is not a numeric column of {schema.name!r}")
    return spec


def encode_value(schema: DatasetSchema, column: str, value: Decimal | str | int) -> int:
    """A public value (a limit, a bin edge) in the column's integer encoding, exactly."""
    spec = numeric_column(schema, column)
    try:
        exact = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequestError(f"{column!r}: {str(value)[:40]!r} is not a number") from None
    if not exact.is_finite() or exact.copy_abs() > Decimal(EXACT_SUM_LIMIT).scaleb(-spec.scale):
        # no sum of the column reaches it (nor does DuckDB's HUGEINT or the MPC's bit length)
        raise InvalidRequestError(
            f"{str(value)[:40]} is beyond any value or sum of {column!r} (at most 2**127 - 1 "
            f"in units of 10**-{spec.scale})"
        )
    scaled = scaled_exactly(exact, spec.scale)
    if scaled != scaled.to_integral_value():
        raise InvalidRequestError(
            f"{str(value)[:40]} is finer than {column!r}'s {spec.scale} decimals"
        )
    return int(scaled)


def block(blocks: Blocks, name: str, size: int) -> list[int]:
    """Released block ``name``, which must hold exactly ``size`` values."""
    values = blocks.get(name)
    if values is None or len(values) != size:
        raise IntegrityError(f"the nodes released no {name!r} block of {size} values")
    return values


def bits(values: Sequence[int], name: str) -> list[bool]:
    if any(v not in (0, 1) for v in values):
        raise IntegrityError(f"the released {name} are not bits")
    return [bool(v) for v in values]


def released_count(value: int, controls: OutputControls) -> int:
    """A released count after the controls' rounding (as for aggregate counts).

    A noisy count (under DP) may come out negative: it is released as 0.
    """
    return int(rounded(max(value, 0), "count", controls))  # type: ignore[arg-type]


def risk_disclosure(
    analyst: str,
    what: str,
    institutions: list[str],
    nodes_see: str = "the request, including any entity keys, not the result",
    gateway_sees: str = "",
) -> list[dict[str, str]]:
    """Who learns what for a risk computation releasing ``what`` to ``analyst``."""
    return [
        {"to": analyst, "text": f"{analyst} receives {what}"},
        gateway_relays(analyst, gateway_sees),
        nodes_learn(institutions, nodes_see),
    ]
