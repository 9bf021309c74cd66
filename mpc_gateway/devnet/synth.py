"""Seeded synthetic loan books for the example institutions.

Each institution gets its own profile (a corporate bank, a retail/SME bank, a
broker's margin book), so the joint statistics differ visibly from any one
institution's. Counterparties carry LEI-like identifiers drawn from one shared
universe, so some appear at one institution, some at two or three. Every loan
has a personal guarantor, drawn from one shared universe of national ids and
stored only as its pseudonym under the nodes' joint key (:mod:`mpc_gateway.oprf`), so
a person who guarantees loans at several institutions has the same key at each.
The data is written as Parquet (or CSV) in the schema of ``mpc_gateway/schemas/loans.toml``.

Each institution also gets an alert book (``mpc_gateway/schemas/alerts.toml``):
fraud, AML and sanctions alerts over the same universes of counterparties and
persons, drawn so that the counterparties many institutions lend to are the ones
several of them flag, and a small pool of persons is flagged at two or three.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mpc_gateway.oprf import L, pseudonyms_with_key
from mpc_gateway.tables import write_rows

__all__ = [
    "RATINGS",
    "SECTORS",
    "REGIONS",
    "PROFILES",
    "loan_book",
    "alert_book",
    "day_number",
    "write_loan_book",
    "national_id",
    "Pseudonymiser",
    "key_pseudonyms",
]

Pseudonymiser = Callable[[Sequence[str]], list[str]]
"""National ids to their pseudonyms, in order."""

RATINGS = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC")
SECTORS = (
    "agriculture",
    "construction",
    "energy",
    "financials",
    "healthcare",
    "manufacturing",
    "real_estate",
    "retail",
    "technology",
    "transport",
)
REGIONS = ("north", "south", "east", "west", "central")
_DEFAULT_RATE = np.array([0.0002, 0.0005, 0.001, 0.003, 0.012, 0.04, 0.15])


@dataclass(frozen=True)
class Profile:
    log_mean: float  # of exposure
    sector_weights: tuple[float, ...]
    rating_weights: tuple[float, ...]


PROFILES: dict[str, Profile] = {
    "bank-a": Profile(12.3, (1, 2, 4, 2, 1, 4, 2, 1, 2, 3), (2, 4, 6, 8, 4, 2, 1)),
    "bank-b": Profile(11.9, (2, 4, 1, 1, 2, 2, 5, 5, 1, 2), (1, 2, 4, 7, 6, 4, 2)),
    "broker-c": Profile(12.0, (1, 1, 2, 6, 2, 1, 1, 1, 5, 1), (1, 3, 5, 6, 5, 3, 2)),
}


def _weights(values: tuple[float, ...]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    normalised: np.ndarray = array / array.sum()
    return normalised


def national_id(person: int) -> str:
    """The synthetic national id of person number ``person`` (as a person would write it)."""
    return f"NID-{person:09d}"


_PARALLEL_FROM = 20_000  # ids: below, one process is quicker than starting more
_CHUNK = 10_000


def key_pseudonyms(key: int) -> Pseudonymiser:
    """The pseudonyms the joint ``key`` gives (:func:`mpc_gateway.oprf.joint_key`), remembered.

    An id costs one exponentiation, about 0.2 ms here; many ids are spread over every
    core, and books drawn from one universe of persons share the work.
    """
    known: dict[str, str] = {}

    def pseudonymise(national_ids: Sequence[str]) -> list[str]:
        new = [n for n in dict.fromkeys(national_ids) if n not in known]
        if len(new) < _PARALLEL_FROM:
            known.update(zip(new, pseudonyms_with_key(new, key), strict=True))
        else:
            chunks = [new[i : i + _CHUNK] for i in range(0, len(new), _CHUNK)]
            spawn = multiprocessing.get_context("spawn")  # no fork of a process with threads
            with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=spawn) as pool:
                for chunk, done in zip(
                    chunks, pool.map(pseudonyms_with_key, chunks, [key] * len(chunks)), strict=True
                ):
                    known.update(zip(chunk, done, strict=True))
        return [known[n] for n in national_ids]

    return pseudonymise


def _synthetic(seed: int) -> Pseudonymiser:
    """A key derived from the seed, for reproducible synthetic data only.

    A real consortium's key is made by its nodes' ceremony (``mpcgw oprf``): no one holds it.
    """
    if seed not in _SYNTHETIC:
        digest = hashlib.sha512(f"mpc-gateway synthetic pseudonym key {seed}".encode()).digest()
        _SYNTHETIC[seed] = key_pseudonyms(int.from_bytes(digest) % L or 1)
    return _SYNTHETIC[seed]


_SYNTHETIC: dict[int, Pseudonymiser] = {}


def _pseudonyms_of(persons: np.ndarray, pseudonymise: Pseudonymiser) -> list[str]:
    """Each person number's pseudonym, in order."""
    unique, inverse = np.unique(persons, return_inverse=True)
    named = pseudonymise([national_id(int(p)) for p in unique])
    return [named[i] for i in inverse]


def _lei(counterparty: np.ndarray) -> list[str]:
    return [f"5493{c:012d}MPCG{c % 97:02d}" for c in counterparty]


def day_number(day: date) -> int:
    """``day`` as the alerts' ``raised_day``: days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def alert_book(
    institution: str,
    rows: int,
    seed: int = 7,
    *,
    today: date | None = None,
    pseudonyms: Pseudonymiser | None = None,
) -> pd.DataFrame:
    """A reproducible alert book for ``institution``: ``rows`` alerts of the last two years.

    Counterparties come from the loan books' universe with the same skew, so the
    large borrowers are flagged at several institutions; persons from a pool of
    ``rows`` // 4 + 50 national ids shared by every institution.
    """
    salt = sum(institution.encode()) + 1
    rng = np.random.default_rng([seed, salt])
    counterparty = rng.zipf(1.3, size=rows) % 50_000
    person = rng.integers(0, rows // 4 + 50, size=rows)
    keys = _pseudonyms_of(person, pseudonyms or _synthetic(seed))
    end = day_number(today or datetime.now(UTC).date())
    return pd.DataFrame(
        {
            "counterparty_lei": _lei(counterparty),
            "person_pseudonym": keys,
            "kind": rng.choice(
                np.asarray(["fraud", "aml", "sanctions"]), size=rows, p=[0.5, 0.4, 0.1]
            ),
            "raised_day": (end - rng.integers(0, 730, size=rows)).astype(np.int64),
            "amount": np.round(np.minimum(rng.lognormal(9.0, 1.5, rows), 999_999_999), 2),
        }
    )


def loan_book(
    institution: str,
    rows: int,
    seed: int = 7,
    *,
    ill_conditioned: bool = False,
    pseudonyms: Pseudonymiser | None = None,
) -> pd.DataFrame:
    """A reproducible loan book for ``institution`` (any name; unknown ones get bank-b's profile).

    ``ill_conditioned`` makes exposures 10,000,000 plus a multiple of 0.1, the
    case where naive floating-point variance formulas lose every digit.
    Guarantors are pseudonymised by ``pseudonyms`` (default: under a key derived
    from ``seed``, for synthetic data only).
    """
    profile = PROFILES.get(institution, PROFILES["bank-b"])
    salt = sum(institution.encode())
    rng = np.random.default_rng([seed, salt])
    rating = rng.choice(len(RATINGS), size=rows, p=_weights(profile.rating_weights))
    exposure: np.ndarray
    if ill_conditioned:
        exposure = 10_000_000 + rng.integers(0, 1000, size=rows) / 10
    else:
        exposure = np.round(np.minimum(rng.lognormal(profile.log_mean, 1.2, rows), 99_999_999), 2)
    defaulted = (rng.random(rows) < _DEFAULT_RATE[rating]).astype(np.int64)
    overdue = rng.random(rows) < 0.05 + 0.5 * defaulted
    days_past_due = np.where(overdue, rng.integers(1, 720, size=rows), 0)
    counterparty = rng.zipf(1.3, size=rows) % 50_000
    # persons: a universe about three times one book, so most guarantee one loan at one
    # institution and some guarantee loans at two or three
    guarantor = rng.integers(0, 3 * rows + 1000, size=rows)
    keys = _pseudonyms_of(guarantor, pseudonyms or _synthetic(seed))
    return pd.DataFrame(
        {
            "counterparty_lei": _lei(counterparty),
            "guarantor_pseudonym": keys,
            "exposure": exposure,
            "rating": np.asarray(RATINGS)[rating],
            "sector": rng.choice(
                np.asarray(SECTORS), size=rows, p=_weights(profile.sector_weights)
            ),
            "region": rng.choice(np.asarray(REGIONS), size=rows),
            "days_past_due": days_past_due.astype(np.int64),
            "defaulted": defaulted,
            "lgd": np.round(rng.beta(2.0, 3.0, rows), 4),
        }
    )


def write_loan_book(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as Parquet or CSV, by the path's suffix."""
    write_rows(frame, path)
    return path
