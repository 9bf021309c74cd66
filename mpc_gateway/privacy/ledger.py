"""Privacy budgets: what each analyst, organisation and everyone spent per dataset per period.

A :class:`PrivacyLedger` keeps, per policy owner, dataset, budget holder (an
analyst, an organisation's analysts, or all analysts) and period (a UTC day,
ISO week or month), the zCDP cost of every query charged to it, durably in
SQLite (or in memory). zCDP composes by addition (fully adaptive composition,
as OpenDP's privacy filters compose): a query is charged only if its cost, as
OpenDP's privacy map of the discrete Gaussian mechanism states it, fits into
what the budget has left, and :meth:`PrivacyLedger.charge` charges every budget
a query touches or none of them. A query that releases nothing is refunded.

The gateway keeps one ledger for every policy it enforces; every node keeps its
own for its institution's policy and charges each order it executes, so a
gateway that lies about budgets gains nothing.
"""

from __future__ import annotations

import functools
import math
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import opendp.prelude as dp

from mpc_gateway.errors import BudgetExhaustedError
from mpc_gateway.privacy.accounting import privacy_map

__all__ = ["Period", "Charge", "PrivacyLedger", "period_of"]

dp.enable_features("contrib")

Period = Literal["day", "week", "month"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spend (owner TEXT NOT NULL, dataset TEXT NOT NULL, "
    "holder TEXT NOT NULL, period TEXT NOT NULL, query_id TEXT NOT NULL, rho TEXT NOT NULL, "
    "at_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS spend_budget ON spend (owner, dataset, holder, period)",
    "CREATE INDEX IF NOT EXISTS spend_query ON spend (query_id)",
)
_FLOAT_ROOM = 1e-9
_DOMAIN = dp.atom_domain(T="i64")
_METRIC = dp.absolute_distance(T="i64")


def period_of(period: Period, now: datetime) -> str:
    """The period ``now`` falls in: ``2026-12-01``, ``2026-W49`` or ``2026-12`` (UTC)."""
    day = now.astimezone(UTC).date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


@dataclass(frozen=True)
class Charge:
    """One budget a query spends from: ``budget`` ρ per ``period``, of which it costs ``cost``.

    ``holder`` is whose budget it is (an analyst, an organisation, everyone), as
    the owner's policy names it; ``who`` says it in words.
    """

    owner: str
    dataset: str
    holder: str
    who: str
    period: Period
    budget: Decimal
    cost: Decimal

    def describe(self) -> str:
        budget = f"ρ {self.budget} per {self.period}"
        return f"{self.owner}'s budget for {self.who} on {self.dataset!r} ({budget})"


@functools.lru_cache(maxsize=256)
def _loss(rho: Decimal) -> float:
    """A query's cost as OpenDP states it: the privacy map of the mechanism it pays for.

    OpenDP's discrete Gaussian of scale 1/√(2ρ) at sensitivity 1; its map says ρ,
    rounded up. Built once per cost (a few hundred µs), then looked up.
    """
    gaussian = dp.m.make_gaussian(_DOMAIN, _METRIC, scale=1 / math.sqrt(2 * float(rho)))
    return float(privacy_map(gaussian, 1))


def _admits(left: Decimal, cost: Decimal) -> bool:
    """Whether a budget with ``left`` still admits ``cost``, in OpenDP's floating-point terms.

    What an OpenDP privacy filter of capacity ``left`` checks for one more query
    (its composed loss within the capacity; zCDP composes by addition), without
    building one per query: a filter costs about 1.8 ms to build and query, and a
    long-lived one slows down with every query it has seen. The exact decimal record
    decides first; OpenDP's map rounds up, so the check gets a hair of room at the
    edge rather than refusing a query that fits exactly.
    """
    return _loss(cost) <= float(left) * (1 + _FLOAT_ROOM)


Clock = Callable[[], datetime]


class PrivacyLedger:
    """Privacy budgets by owner, dataset, analyst and period; in memory or SQLite at ``path``."""

    def __init__(self, path: Path | None = None, *, clock: Clock = lambda: datetime.now(UTC)):
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str, str, str], Decimal] = {}  # this process writes alone
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else path, check_same_thread=False, isolation_level=None
        )
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def _key(self, charge: Charge) -> tuple[str, str, str, str]:
        return (
            charge.owner,
            charge.dataset,
            charge.holder,
            period_of(charge.period, self._clock()),
        )

    def period(self, charge: Charge) -> str:
        """The period the charge's budget is in now, e.g. ``2026-12``."""
        return self._key(charge)[3]

    def _spent(self, charge: Charge) -> Decimal:
        """The budget's exact total this period: summed from the record once, then kept."""
        key = self._key(charge)
        total = self._totals.get(key)
        if total is None:
            rows = self._db.execute(
                "SELECT rho FROM spend WHERE owner = ? AND dataset = ? AND holder = ? "
                "AND period = ?",
                key,
            ).fetchall()
            total = self._totals[key] = sum((Decimal(r[0]) for r in rows), Decimal(0))
        return total

    def spent(self, charge: Charge) -> Decimal:
        """What this charge's budget has spent so far this period."""
        with self._lock:
            return self._spent(charge)

    def spent_by_holder(self, charges: Sequence[Charge]) -> dict[str, Decimal]:
        """What each of these budgets spent so far this period, by holder."""
        with self._lock:
            return {c.holder: self._spent(c) for c in charges}

    def remaining(self, charge: Charge) -> Decimal:
        return max(Decimal(0), charge.budget - self.spent(charge))

    def charge(self, query_id: str, charges: Sequence[Charge]) -> None:
        """Charge every budget, or none: BudgetExhaustedError naming the first that cannot pay.

        The record decides with exact decimal sums; then OpenDP's stated loss of the
        query must fit into what the tightest budget has left (one query costs the same
        in every budget, so the tightest admitting it means every one does).
        """
        with self._lock:
            left = {id(c): c.budget - self._spent(c) for c in charges}
            for c in charges:
                if c.cost > left[id(c)]:
                    raise self._exhausted(c, left[id(c)])
            tightest = min(charges, key=lambda c: left[id(c)] - c.cost, default=None)
            if tightest is not None and not _admits(left[id(tightest)], tightest.cost):
                raise self._exhausted(tightest, left[id(tightest)])
            now_ms = int(self._clock().timestamp() * 1000)
            with self._db:  # one transaction: every charge is recorded, or none
                self._db.execute("BEGIN")
                for c in charges:
                    self._db.execute(
                        "INSERT INTO spend VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*self._key(c), query_id, str(c.cost), now_ms),
                    )
            for c in charges:  # committed: the kept totals follow the record
                self._totals[self._key(c)] = self._spent(c) + c.cost

    @staticmethod
    def _exhausted(charge: Charge, left: Decimal) -> BudgetExhaustedError:
        return BudgetExhaustedError(
            f"refused by rule privacy.budget: the query costs ρ {charge.cost}, but "
            f"{charge.describe()} has ρ {max(left, Decimal(0))} left this {charge.period}",
            rule="privacy.budget",
        )

    def refund(self, query_id: str) -> None:
        """Undo every charge of a query that released nothing."""
        with self._lock:
            self._db.execute("DELETE FROM spend WHERE query_id = ?", (query_id,))
            self._totals.clear()  # summed again from the record on next use

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> PrivacyLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
