"""The batched secure search behind exact joint quantiles: one fixed-shape MPC job per round.

The quantile at level q of the joint values (every node's rows of a numeric
column) is the smallest value x, at the column's declared precision, with
``C(x) >= q * N`` (C: joint count of values <= x, N: joint count; numpy's
``inverted_cdf``). The search keeps an interval ``(a, b]`` known to hold it,
starting at ``(min - 1, max]`` of the column's declared bounds. Per round:

1. the driver (the gateway) sends G increasing grid points in ``(a, b]``, the
   last one ``b``;
2. each node counts its values ``<= g_j`` for every grid point (one scan,
   :func:`local_cumulative_counts`) and inputs those counts and its total;
3. the MPC (``quantile:quantile_round``) sums them and
   releases only the bracket index k = the number of grid points with
   ``C(g_j) < q * N``, so the quantile lies in ``(g_{k-1}, g_k]``;
4. the driver narrows the interval to that bracket.

After ``ceil(log_G(max - min + 1))`` rounds (a public number, the same whatever
the data) the interval is one encoded unit wide and holds the exact quantile.

Disclosure. The receiver of each round (the gateway, which drives the search)
learns the bracket indices, i.e. the bisection path, which is the quantile
itself to within the final precision, and nothing else: no count is opened.
Because the next round's grid is derived from the previous bracket, every node
learns the path (hence the quantile) as well. With no values at all, every
round answers G and the result is None (the emptiness is disclosed). So it
does, inside the MPC, over fewer than ``min_count`` values or values from fewer
than ``min_institutions`` parties: a suppressed quantile looks exactly like an
empty one, whichever rule withheld it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.query.schema import DatasetSchema, NumericColumn
from mpc_gateway.query.sql import QueryCursor, Where, ident

__all__ = [
    "QuantileLayout",
    "QuantileSearch",
    "quantile_layout",
    "local_cumulative_counts",
    "search_quantiles",
    "grid_points",
    "rounds_needed",
]

MAX_DENOMINATOR = 10**6


def grid_points(low: int, high: int, size: int) -> list[int]:
    """``size`` increasing points in ``(low, high]``, the last ``high``, evenly spread."""
    width = high - low
    if width <= size:
        return [*range(low + 1, high + 1), *([high] * (size - width))]
    return [low + -(-(j + 1) * width // size) for j in range(size)]


def rounds_needed(low: int, high: int, size: int) -> int:
    """How many rounds narrow ``(low - 1, high]`` to one unit (data-independent)."""
    width, rounds = high - low + 1, 0
    while width > 1:
        width = -(-width // size) if width > size else 1
        rounds += 1
    return rounds


@dataclass
class QuantileSearch:
    """The driver's state: one interval ``(a, b]`` per requested quantile."""

    low: int  # encoded lower bound of the column
    high: int  # encoded upper bound
    fractions: tuple[Fraction, ...]
    grid_size: int = 64
    rounds_done: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)
    empty: bool = False
    rounds: int = field(init=False)

    def __post_init__(self) -> None:
        if self.grid_size < 2:
            raise InvalidRequestError("the quantile grid needs at least 2 points")
        if not self.fractions or any(not 0 < q <= 1 for q in self.fractions):
            raise InvalidRequestError("quantile levels must lie in (0, 1]")
        self.intervals = [(self.low - 1, self.high)] * len(self.fractions)
        self.rounds = rounds_needed(self.low, self.high, self.grid_size)

    @property
    def done(self) -> bool:
        return self.rounds_done >= self.rounds

    def grids(self) -> list[list[int]]:
        """This round's grid points, one row per quantile (always G points)."""
        return [grid_points(a, b, self.grid_size) for a, b in self.intervals]

    def advance(self, brackets: Sequence[int]) -> None:
        """Narrow every interval to the bracket the MPC released for it."""
        if self.done or len(brackets) != len(self.intervals):
            raise InvalidRequestError("unexpected quantile round")
        grids = self.grids()
        narrowed = []
        for (a, b), grid, k in zip(self.intervals, grids, brackets):
            if not 0 <= k <= self.grid_size:
                raise InvalidRequestError("bracket index out of range")
            if k == self.grid_size:  # no joint values at all
                self.empty = True
                narrowed.append((a, b))
            else:
                narrowed.append((grid[k - 1] if k else a, grid[k]))
        self.intervals = narrowed
        self.rounds_done += 1

    def results(self) -> list[int | None]:
        """The encoded quantiles (None for none: no values), once :attr:`done`."""
        if not self.done:
            raise InvalidRequestError("the quantile search has rounds left")
        return [None if self.empty else b for _, b in self.intervals]


@dataclass(frozen=True)
class QuantileLayout:
    """Shape and bit length of every round's job."""

    column: str
    low: int
    high: int
    factor: int
    fractions: tuple[Fraction, ...]
    grid_size: int
    bits: int
    min_count: int = 0  # fewer joint values: the quantile is suppressed (as for no values)
    min_institutions: int = 0  # fewer parties with a value: suppressed likewise

    def search(self) -> QuantileSearch:
        return QuantileSearch(self.low, self.high, self.fractions, self.grid_size)

    def program_args(self, counts: np.ndarray, totals: np.ndarray) -> dict[str, Any]:
        if counts.shape != (len(self.fractions), self.grid_size) or totals.shape != (
            len(self.fractions),
        ):
            raise InvalidRequestError("local counts do not have the round's shape")
        return {
            "counts": np.asarray(counts, dtype=object),
            "totals": np.asarray(totals, dtype=object),
            "fractions": [(q.numerator, q.denominator) for q in self.fractions],
            "bits": self.bits,
            "min_count": self.min_count,
            "min_institutions": self.min_institutions,
        }

    def decode(self, value: int | None) -> Decimal | None:
        return None if value is None else Decimal(value) / self.factor


def quantile_layout(
    schema: DatasetSchema,
    parties: int,
    column: str,
    levels: Sequence[Fraction | Decimal | str],
    grid_size: int = 64,
    min_count: int = 0,
    min_institutions: int = 0,
) -> QuantileLayout:
    """Bits: ``|C * den - num * N - [N = 0]| <= m * max_rows * den + 1``."""
    spec = schema.columns.get(column)
    if not isinstance(spec, NumericColumn):
        raise InvalidRequestError(f"{column!r} is not a numeric column of {schema.name!r}")
    fractions = tuple(Fraction(str(q)) for q in levels)
    if any(not 0 < q <= 1 for q in fractions):
        raise InvalidRequestError("quantile levels must lie in (0, 1]")
    if any(q.denominator > MAX_DENOMINATOR for q in fractions):
        raise InvalidRequestError(f"quantile levels need denominators <= {MAX_DENOMINATOR}")
    if not 2 <= grid_size <= 4096 or not 1 <= len(fractions) <= 64:
        raise InvalidRequestError("2..4096 grid points and 1..64 quantiles per search")
    den = max(q.denominator for q in fractions) if fractions else 1
    bound = parties * schema.max_rows_per_node * den + 1
    low, high = int(spec.min * spec.factor), int(spec.max * spec.factor)
    bits = bound.bit_length() + 1
    return QuantileLayout(
        column, low, high, spec.factor, fractions, grid_size, bits, min_count, min_institutions
    )


def local_cumulative_counts(
    cursor: QueryCursor,
    column: str,
    grids: Sequence[Sequence[int]],
    where: Where | None = None,
    table: str = "data",
) -> tuple[np.ndarray, np.ndarray]:
    """This node's ``(counts [Q, G], totals [Q])``: values ``<= g`` per grid point, all values."""
    x = ident(column)
    flat = [int(g) for grid in grids for g in grid]
    exprs = ["count(*)"] + [f"count(*) FILTER (WHERE {x} <= ?)" for _ in flat]
    sql, params = where or ("TRUE", [])
    row = cursor.execute(
        f"SELECT {', '.join(exprs)} FROM {ident(table)} WHERE {sql}", flat + params
    ).fetchall()[0]  # fetchall: a cursor reused by the node must not keep a pending result
    counts = np.array([int(v) for v in row[1:]], dtype=object).reshape(len(grids), -1)
    return counts, np.full(len(grids), int(row[0]), dtype=object)


def search_quantiles(
    search: QuantileSearch, run_round: Callable[[list[list[int]]], Sequence[int]]
) -> list[int | None]:
    """Drive every round: ``run_round(grids) -> brackets`` runs one MPC job (one per quantile)."""
    while not search.done:
        search.advance(list(run_round(search.grids())))
    return search.results()
