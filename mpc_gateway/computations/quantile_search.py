"""The batched secure search behind exact joint quantiles: one fixed-shape MPC job per round.

The quantile at level q of the joint values (every node's rows of a numeric
column) is the smallest value x, at the column's declared precision, with
``C(x) >= q * N`` (C: joint count of values <= x, N: joint count; numpy's
``inverted_cdf``). The search keeps an interval ``(a, b]`` known to hold it,
starting at ``(min - 1, max]`` of the column's declared bounds. Per round:

1. every node derives the round's G increasing grid points in ``(a, b]``, the
   last one ``b``, from the brackets of the rounds before (the path, which it
   kept: the driver only says which round it is);
2. each node counts its values ``<= g_j`` for every grid point (one scan,
   :func:`local_cumulative_counts`) and inputs those counts and its total;
3. the MPC (``quantile:quantile_round``) sums them and opens, to the nodes
   only, the bracket index k = the number of grid points with
   ``C(g_j) < q * N``, so the quantile lies in ``(g_{k-1}, g_k]``;
4. every node narrows the interval to that bracket; in the last round the MPC
   seals the value found to the receiver instead.

After ``ceil(log_G(max - min + 1))`` rounds (at least one; a public number, the
same whatever the data) the interval is one encoded unit wide and holds the exact
quantile.

Interpolated quantiles (``PERCENTILE_CONT``, numpy's ``linear``) are
``x_lo + w * (x_hi - x_lo)`` with ``h = (N - 1) q``, ``x_lo``, ``x_hi`` the sorted
joint values at 0-based positions ``floor(h)`` and ``floor(h) + 1``, and
``w = h - floor(h)``. Each is a search of its own (a :class:`Target`): with
``q = a / b``, the value at position ``floor(h)`` is the smallest x with
``C(x) * b >= a * N - a + 1`` and the next one the smallest with
``C(x) * b >= a * N - a + b + 1`` (a search that finds no such x, as for N = 1
or q = 1, means there is no next value, and then ``w = 0``). The weight's
numerator ``(N - 1) a mod b`` is computed in the last round's MPC and sealed to
the receiver, who interpolates exactly.

Disclosure. Every node learns the bracket indices, i.e. the bisection path,
which is the quantile itself to within the final precision (it derives the next
round's grid from them), and nothing else: no count is opened. The driver (the
gateway) learns only that each round ran; the receiver gets the values found,
sealed. With no values at all, every round answers G and the result is None (the
emptiness is disclosed to the nodes and the receiver). So it does, inside the MPC,
over fewer than ``min_count`` values or values from fewer than
``min_institutions`` parties: a suppressed quantile looks exactly like an empty
one, whichever rule withheld it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from mpc_gateway.errors import IntegrityError, InvalidRequestError
from mpc_gateway.query.schema import DatasetSchema, NumericColumn
from mpc_gateway.query.sql import QueryCursor, Where, ident

__all__ = [
    "Interpolation",
    "Target",
    "search_targets",
    "QuantileLayout",
    "QuantileSearch",
    "quantile_layout",
    "local_cumulative_counts",
    "search_quantiles",
    "grid_points",
    "rounds_needed",
]

MAX_DENOMINATOR = 10**6

Interpolation = Literal["discrete", "linear"]
"""``discrete``: a value of the column (PERCENTILE_DISC); ``linear``: PERCENTILE_CONT."""


@dataclass(frozen=True)
class Target:
    """One search: the smallest x with ``C(x) * den >= num * N + offset`` (q = num / den)."""

    level: Fraction
    offset: int = 0


def search_targets(levels: Sequence[Fraction], interpolation: Interpolation) -> tuple[Target, ...]:
    """The searches behind ``levels``: one each, or two (both neighbours) when interpolated."""
    if interpolation == "discrete":
        return tuple(Target(q) for q in levels)
    return tuple(
        Target(q, offset)
        for q in levels
        for offset in (1 - q.numerator, q.denominator - q.numerator + 1)
    )


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
    return max(rounds, 1)  # one round even for a one-value column: it finds out emptiness


@dataclass
class QuantileSearch:
    """The driver's state: one interval ``(a, b]`` per search (:class:`Target`).

    A search whose bracket is G has no value: no joint values at all (or the
    quantile is withheld), or for an interpolation's upper neighbour, none beyond.
    """

    low: int  # encoded lower bound of the column
    high: int  # encoded upper bound
    targets: tuple[Target, ...]
    grid_size: int = 64
    rounds_done: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)
    beyond: list[bool] = field(default_factory=list)
    rounds: int = field(init=False)

    def __post_init__(self) -> None:
        if self.grid_size < 2:
            raise InvalidRequestError("the quantile grid needs at least 2 points")
        if not self.targets or any(not 0 < t.level <= 1 for t in self.targets):
            raise InvalidRequestError("quantile levels must lie in (0, 1]")
        self.intervals = [(self.low - 1, self.high)] * len(self.targets)
        self.beyond = [False] * len(self.targets)
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
        for i, ((a, b), grid, k) in enumerate(zip(self.intervals, grids, brackets)):
            if not 0 <= k <= self.grid_size:
                raise InvalidRequestError("bracket index out of range")
            if k == self.grid_size:  # no value reaches the target
                self.beyond[i] = True
                narrowed.append((a, b))
            else:
                narrowed.append((grid[k - 1] if k else a, grid[k]))
        self.intervals = narrowed
        self.rounds_done += 1

    @property
    def last_round(self) -> bool:
        return self.rounds_done == self.rounds - 1

    def results(self) -> list[int | None]:
        """The encoded value of every search (None where none), once :attr:`done`."""
        if not self.done:
            raise InvalidRequestError("the quantile search has rounds left")
        return [None if out else b for (_, b), out in zip(self.intervals, self.beyond)]


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
    interpolation: Interpolation = "discrete"

    @property
    def targets(self) -> tuple[Target, ...]:
        return search_targets(self.fractions, self.interpolation)

    def search(self) -> QuantileSearch:
        return QuantileSearch(self.low, self.high, self.targets, self.grid_size)

    @property
    def value_bits(self) -> int:
        """Bits of a signed value in ``[low - 1, high]`` (what the last round seals)."""
        return max(abs(self.low - 1), abs(self.high)).bit_length() + 1

    def program_args(
        self, counts: np.ndarray, totals: np.ndarray, grids: Sequence[Sequence[int]] = ()
    ) -> dict[str, Any]:
        """The round's arguments; the last round's ``grids`` make it seal what was found."""
        searches = len(self.targets)
        if counts.shape != (searches, self.grid_size) or totals.shape != (searches,):
            raise InvalidRequestError("local counts do not have the round's shape")
        weighted = bool(grids) and self.interpolation == "linear"
        return {
            "counts": np.asarray(counts, dtype=object),
            "totals": np.asarray(totals, dtype=object),
            "targets": [(t.level.numerator, t.level.denominator, t.offset) for t in self.targets],
            "weights": [(q.numerator, q.denominator) for q in self.fractions] if weighted else [],
            "grids": [[int(g) for g in row] for row in grids],
            "value_bits": self.value_bits,
            "bits": self.bits,
            "min_count": self.min_count,
            "min_institutions": self.min_institutions,
        }

    def decode(self, value: int | None) -> Decimal | None:
        return None if value is None else Decimal(value) / self.factor

    def interpolate(self, level: Fraction, low: int, high: int, weight: int) -> Decimal:
        """``low + weight / den * (high - low)``, decoded (exact: levels are decimals)."""
        if not 0 <= weight < level.denominator:
            raise IntegrityError("an interpolation weight out of range")
        numerator = low * level.denominator + weight * (high - low)
        return Decimal(numerator) / (level.denominator * self.factor)


def quantile_layout(
    schema: DatasetSchema,
    parties: int,
    column: str,
    levels: Sequence[Fraction | Decimal | str],
    grid_size: int = 64,
    min_count: int = 0,
    min_institutions: int = 0,
    interpolation: Interpolation = "discrete",
) -> QuantileLayout:
    """Bits: ``|C * den - num * N - offset'| <= m * max_rows * den + den + 1``.

    (``offset'`` is the target's offset, or 1 with no values: see the program.)
    """
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
    bound = parties * schema.max_rows_per_node * den + den + 1
    low, high = int(spec.min * spec.factor), int(spec.max * spec.factor)
    bits = bound.bit_length() + 1
    return QuantileLayout(
        column,
        low,
        high,
        spec.factor,
        fractions,
        grid_size,
        bits,
        min_count,
        min_institutions,
        interpolation,
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
