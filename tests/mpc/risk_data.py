"""Small seeded loan books for the risk tests: entities known to 0, 1, 2 or 3 institutions.

Entity i of the batch is known to the institutions of pattern ``i % 8``
(none, each one alone, each pair, all three), with 1-3 loans at each; every book
also holds loans to entities outside the batch. Books are written as Parquet and
loaded by the node's own :class:`LocalDataset` (integer encoding, ENUM columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.devnet.synth import write_loan_book
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import DatasetSchema, load_schema

PATTERNS = ((), (0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2))
RATINGS = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC")
SECTORS = ("energy", "retail", "transport")


def lei(i: int) -> str:
    return f"5493{i:012d}TEST{i % 97:02d}"


@dataclass(frozen=True)
class Books:
    schema: DatasetSchema
    datasets: list[LocalDataset]
    keys: list[str]  # the batch, shuffled
    known_by: dict[str, tuple[int, ...]]

    def cursor(self, party: int):  # the node's DuckDB table (LocalDataset keeps it private)
        return self.datasets[party].cursor()

    def encoded(self, party: int) -> pd.DataFrame:
        return self.cursor(party).execute("SELECT * FROM data").df()


def _loans(rng: np.random.Generator, key: str, count: int) -> list[dict]:
    return [
        {
            "counterparty_lei": key,
            "guarantor_pseudonym": f"person-of-{key}",
            "exposure": int(rng.integers(0, 5_000_000_000)) / 100,
            "rating": str(rng.choice(RATINGS)),
            "sector": str(rng.choice(SECTORS)),
            "region": "north",
            "days_past_due": int(rng.choice([0, 0, 0, int(rng.integers(1, 400))])),
            "defaulted": int(rng.random() < 0.15),
            "lgd": int(rng.integers(0, 10_001)) / 10_000,
        }
        for _ in range(count)
    ]


def make_books(root: Path, entities: int, seed: int = 5, parties: int = 3) -> Books:
    rng = np.random.default_rng(seed)
    schema = load_schema(schema_path())
    keys = [lei(i) for i in range(entities)]
    known_by = {k: tuple(p for p in PATTERNS[i % 8] if p < parties) for i, k in enumerate(keys)}
    rows: list[list[dict]] = [[] for _ in range(parties)]
    for key, parties_knowing in known_by.items():
        for party in parties_knowing:
            rows[party] += _loans(rng, key, int(rng.integers(1, 4)))
    for party in range(parties):  # loans to entities outside the batch
        for j in range(20):
            rows[party] += _loans(rng, lei(10_000_000 + 100 * party + j), 1)
    datasets = []
    for party, party_rows in enumerate(rows):
        path = root / f"book{party}.parquet"
        write_loan_book(path, pd.DataFrame(party_rows))
        datasets.append(LocalDataset(schema, path))
    batch = list(keys)
    rng.shuffle(batch)
    return Books(schema, datasets, batch, known_by)
