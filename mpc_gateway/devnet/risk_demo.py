"""The demo's risk queries: each run through the gateway, each checked in the clear.

A model owner (analyst/alice) registers a logistic probability-of-default model
with secret weights, sealed to the nodes' keys on her machine; a batch of
counterparties is scored, and only one decision bit per entity is released.
Then a concentration index over sectors and a tail percentile of exposure.
For the demo only, every result is compared with the same computation over the
pooled rows of all institutions (:mod:`mpc_gateway.risk.reference`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.aggregate_result import rounded
from mpc_gateway.computations.concentration import ConcentrationOutcome, hhi_text
from mpc_gateway.computations.quantile import QuantileOutcome
from mpc_gateway.computations.score import ScoreOutcome
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel, seal_for_consortium
from mpc_gateway.devnet import reference
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.devnet.synth import national_id
from mpc_gateway.query.schema import DatasetSchema, NumericColumn, load_schema

__all__ = [
    "RiskCheck",
    "RISK_CHECKS",
    "run_risk_checks",
    "demo_model",
    "scores_model",
    "long_job_model",
    "long_job_keys",
    "batch",
    "plain_dict",
    "pooled_frame",
    "institution_frames",
]

FRAC_BITS = 16
# (feature, public scale, real weight): exposure in EUR millions, the worst rating as an index
DEMO_WEIGHTS = (
    ("total_exposure", 100_000_000, 0.05),
    ("lenders", 1, 0.35),
    ("any_default", 1, 2.2),
    ("worst_rating", 1, 0.45),
    ("largest_loan", 100_000_000, 0.5),
)
DEMO_INTERCEPT = -3.4
BATCH = 400  # counterparties scored (bank-a and bank-b require at least 100)


def _fixed(value: float) -> int:
    return round(value * (1 << FRAC_BITS))


def demo_model(owner: str) -> ScoringModel:
    """The demo's PD model: weights secret, only decision bits released (p >= 0.25)."""
    return ScoringModel(
        owner=owner,
        name="pd-demo",
        kind="logistic",
        features=tuple(ModelFeature(name=n, scale=s) for n, s, _ in DEMO_WEIGHTS),
        frac_bits=FRAC_BITS,
        weight_bits=24,
        weights_secret=True,
        threshold=Decimal("0.25"),
        output="decisions",
    )


def scores_model(owner: str) -> ScoringModel:
    """The same model with public weights releasing raw scores (which bank-a's policy refuses)."""
    return ScoringModel(
        **{
            **demo_model(owner).model_dump(),
            "name": "pd-demo-scores",
            "weights_secret": False,
            "weights": tuple(_fixed(w) for _, _, w in DEMO_WEIGHTS),
            "intercept": _fixed(DEMO_INTERCEPT),
            "output": "scores",
        },
    )


def long_job_model(owner: str) -> ScoringModel:
    """A model whose batches take seconds: three secure maxima per entity, a count released.

    What the lanes' tests and benchmark run as the long job beside short queries
    (a batch of 8,000 entities takes ~15 s on a quiet 2-core machine).
    """
    return ScoringModel(
        owner=owner,
        name="slow",
        kind="linear",
        features=(
            ModelFeature(name="largest_loan", scale=100_000_000),
            ModelFeature(name="max_days_past_due", scale=30),
            ModelFeature(name="worst_rating"),
        ),
        frac_bits=8,
        weight_bits=16,
        weights=(256, 128, 64),
        intercept=-512,
        threshold=Decimal(1),
        output="count",
    )


def long_job_keys(count: int) -> list[str]:
    """``count`` distinct LEI-shaped counterparty keys (most known to no institution)."""
    return [f"5493{c:012d}MPCG{c % 97:02d}" for c in range(1, count + 1)]


@dataclass(frozen=True)
class RiskCheck:
    """One risk query run through the gateway, beside the pooled-data answer.

    ``query``, ``secure`` and ``plaintext`` are structured data (what a script
    compares); ``said`` and ``expected`` say the same in words, for a person.
    """

    title: str
    query: dict[str, Any]
    secure: dict[str, Any]  # what was released
    plaintext: dict[str, Any]  # the pooled-data answer, in the same shape
    seconds: float
    said: str
    expected: str

    @property
    def matches(self) -> bool:
        return self.secure == self.plaintext


def _encoded(paths: list[Path], schema: DatasetSchema, where: str = "TRUE") -> pd.DataFrame:
    """Rows of the data files in the schema's integer encoding (the plaintext reference's view)."""
    columns = [
        f'CAST(round("{n}" * {c.factor}) AS BIGINT) AS "{n}"'
        if isinstance(c, NumericColumn)
        else f'"{n}"'
        for n, c in schema.columns.items()
    ]
    sql = f"SELECT {', '.join(columns)} FROM read_parquet(?) WHERE {where}"
    return duckdb.connect().execute(sql, [[str(p) for p in paths]]).df()


def pooled_frame(
    files: ConsortiumFiles, schema: DatasetSchema, where: str = "TRUE"
) -> pd.DataFrame:
    """Every institution's rows, pooled (what a fully trusted third party would see)."""
    return _encoded([files.data_file(n) for n in files.institutions], schema, where)


def institution_frames(
    files: ConsortiumFiles, schema: DatasetSchema, keys: list[str], column: str = "counterparty_lei"
) -> list[pd.DataFrame]:
    """Each institution's rows of the batch's entities."""
    listed = ", ".join(f"'{k}'" for k in keys)
    where = f"{column} IN ({listed})"
    return [_encoded([files.data_file(n)], schema, where) for n in files.institutions]


def batch(files: ConsortiumFiles) -> list[str]:
    """Counterparties known to three, two and one institutions, and a few known to none."""
    paths = [str(files.data_file(n)) for n in files.institutions]
    per = (BATCH - 10) // 3
    rows = (
        duckdb.connect()
        .execute(
            "WITH known AS (SELECT counterparty_lei AS lei, count(DISTINCT filename) AS lenders "
            "FROM read_parquet(?, filename = true) GROUP BY 1), "
            "ranked AS (SELECT lei, row_number() OVER (PARTITION BY lenders ORDER BY md5(lei)) "
            "AS r FROM known) "
            "SELECT lei FROM ranked WHERE r <= ? ORDER BY md5(lei)",
            [paths, per],
        )
        .fetchall()
    )
    return [r[0] for r in rows] + [f"5493{9_000_000 + i:012d}NONE{i:02d}" for i in range(10)]


def _score(client: GatewayClient, files: ConsortiumFiles, schema: DatasetSchema) -> RiskCheck:
    model = demo_model("analyst/alice")
    weights = [_fixed(w) for _, _, w in DEMO_WEIGHTS]
    # at the owner: sealed to the node certificates the consortium CA issued
    sealed = seal_for_consortium(model, weights, _fixed(DEMO_INTERCEPT), files.pki_dir)
    model_id = client.register_model(model, sealed)
    keys = batch(files)
    started = time.perf_counter()
    result = client.score("loans", model_id, keys)
    seconds = time.perf_counter() - started
    names = [f.name for f in model.features]
    joint = reference.joint_features(institution_frames(files, schema, keys), schema, keys, names)
    scores = reference.real_scores(model, weights, _fixed(DEMO_INTERCEPT), joint)
    expected = [bool(d) for d in reference.decisions(model, scores)]
    outcome = result.outcome
    assert isinstance(outcome, ScoreOutcome)
    released = {"decisions": outcome.decisions, "scores": [str(s) for s in outcome.scores]}
    return RiskCheck(
        f"Credit score of {len(keys)} counterparties (secret weights; decision bits only)",
        {
            "computation": "score",
            "model": model.name,
            "model_id": model_id,
            "keys": len(keys),
            "output": model.output,
            "threshold": str(model.threshold),
        },
        released,
        {"decisions": expected, "scores": []},
        seconds,
        f"{sum(outcome.decisions)} of {len(keys)} above PD 25%; "
        "no score, feature or weight released",
        f"{sum(expected)} above PD 25%",
    )


PERSONS = 300  # applicants bank-a asks about


def _over_indebted(
    client: GatewayClient, files: ConsortiumFiles, schema: DatasetSchema
) -> RiskCheck:
    """The analyst pseudonymises applicants' national ids under the nodes' joint key (blinded:
    no one else learns them) and asks how many are over-indebted across all lenders: only
    that count is released."""
    model = ScoringModel(
        owner="analyst/alice",
        name="over-indebted",
        kind="linear",
        features=(
            ModelFeature(name="total_exposure", scale=100_000_000),  # EUR millions
            ModelFeature(name="lenders"),
        ),
        frac_bits=8,
        weight_bits=16,
        weights=(256, 128),
        intercept=0,
        threshold=Decimal(2),
        output="count",
    )
    model_id = client.register_model(model)
    keys = client.pseudonyms([national_id(p) for p in range(PERSONS)], purpose="risk monitoring")
    started = time.perf_counter()
    result = client.score("loans", model_id, keys, key_column="guarantor_pseudonym")
    seconds = time.perf_counter() - started
    names = [f.name for f in model.features]
    frames = institution_frames(files, schema, keys, "guarantor_pseudonym")
    joint = reference.joint_features(frames, schema, keys, names, "guarantor_pseudonym")
    scores = reference.real_scores(model, [256, 128], 0, joint)
    controls = result.controls
    expected = rounded(sum(reference.decisions(model, scores)), "count", controls)
    rounding = f" (rounded to a multiple of {controls.round_counts_to})" * (
        controls.round_counts_to > 1
    )
    outcome = result.outcome
    assert isinstance(outcome, ScoreOutcome)
    return RiskCheck(
        f"Over-indebted guarantors among {PERSONS} applicants (person pseudonyms; a count only)",
        {
            "computation": "score",
            "model": model.name,
            "model_id": model_id,
            "keys": PERSONS,
            "key_column": "guarantor_pseudonym",
            "output": model.output,
        },
        {"count": outcome.count, "decisions": outcome.decisions},
        {"count": expected, "decisions": []},
        seconds,
        f"{outcome.count} of {PERSONS} with EUR m guaranteed + 0.5 x lenders >= 2{rounding}",
        f"{expected}",
    )


def _concentration(
    client: GatewayClient, files: ConsortiumFiles, schema: DatasetSchema
) -> RiskCheck:
    limit = Decimal("10000000000")
    started = time.perf_counter()
    result = client.concentration("loans", group_by="sector", limit=str(limit), hhi="fraction")
    seconds = time.perf_counter() - started
    pooled = pooled_frame(files, schema).groupby("sector")["exposure"].sum()
    joint = [int(pooled.get(s, 0)) for s in schema.categorical("sector").domain]
    plain = reference.concentration([np.array(joint, dtype=object)], int(limit * 100))
    numerator, denominator = plain["hhi"]
    hhi = Fraction(10000 * numerator, denominator)
    flags = [bool(f) for f in plain["over_limit"]]
    outcome = result.outcome
    assert isinstance(outcome, ConcentrationOutcome)
    over = [u for u, f in zip(outcome.units, outcome.over_limit) if f]
    units = list(schema.categorical("sector").domain)
    return RiskCheck(
        "Concentration of exposure across sectors (HHI; sectors above EUR 10bn)",
        {
            "computation": "concentration",
            "group_by": "sector",
            "limit": str(limit),
            "hhi": "fraction",
        },
        {"hhi": str(outcome.hhi), "over_limit": dict(zip(outcome.units, outcome.over_limit))},
        {"hhi": str(hhi), "over_limit": dict(zip(units, flags))},
        seconds,
        f"HHI {hhi_text(outcome.hhi or Fraction(0))} points; "
        f"above the limit: {', '.join(over) or 'none'}",
        f"HHI {hhi_text(hhi)} points",
    )


def _percentile(client: GatewayClient, files: ConsortiumFiles, schema: DatasetSchema) -> RiskCheck:
    started = time.perf_counter()
    result = client.quantiles("loans", "exposure", ["0.5", "0.99"])
    seconds = time.perf_counter() - started
    values = pooled_frame(files, schema)["exposure"].tolist()
    factor = schema.numeric("exposure").factor
    plain = [
        Decimal(reference.quantile(values, Fraction(q)) or 0) / factor for q in ("0.5", "0.99")
    ]
    outcome = result.outcome
    assert isinstance(outcome, QuantileOutcome)
    secure = [v for _, v in outcome.quantiles]
    return RiskCheck(
        f"Median and 99th percentile of exposure (exact, {outcome.rounds} search rounds)",
        {"computation": "quantile", "column": "exposure", "levels": ["0.5", "0.99"]},
        {"quantiles": {str(q): None if v is None else str(v) for q, v in outcome.quantiles}},
        {"quantiles": {q: str(v) for q, v in zip(("0.5", "0.99"), plain)}},
        seconds,
        f"median EUR {secure[0]:,}, p99 EUR {secure[1]:,}",
        f"median EUR {plain[0]:,}, p99 EUR {plain[1]:,}",
    )


RISK_CHECKS: dict[str, Callable[[GatewayClient, ConsortiumFiles, DatasetSchema], RiskCheck]] = {
    "score": _score,
    "score (over-indebted persons)": _over_indebted,
    "concentration": _concentration,
    "quantile": _percentile,
}
"""The demo's risk queries by computation, each checked against the pooled plaintext."""


def run_risk_checks(client: GatewayClient, files: ConsortiumFiles) -> list[RiskCheck]:
    schema = load_schema(schema_path())
    return [check(client, files, schema) for check in RISK_CHECKS.values()]


def plain_dict(check: RiskCheck) -> dict[str, Any]:
    """One JSON object per query: the query and both results as structured data."""
    return {
        "title": check.title,
        "query": check.query,
        "secure": check.secure,
        "plaintext": check.plaintext,
        "match": check.matches,
        "latency_ms": round(check.seconds * 1000, 2),
    }
