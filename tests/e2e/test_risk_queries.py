"""Risk queries end to end: real gateway and node processes, checked against pooled plaintext.

The consortium runs the open policies (every risk output, any batch size), 3,000
loans per institution. Batches mix counterparties known to one, two and three
institutions with keys known to none. Plaintext answers come from the pooled
rows (mpc_gateway.devnet.reference), which only a test can see.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import numpy as np
import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.features import FEATURES
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel, seal_for_consortium
from mpc_gateway.computations.shared import key_batch_hash
from mpc_gateway.devnet import reference
from mpc_gateway.devnet.localnet import LocalConsortium, schema_path
from mpc_gateway.devnet.risk_demo import batch, institution_frames, pooled_frame
from mpc_gateway.errors import InvalidRequestError, PolicyDeniedError
from mpc_gateway.query.schema import DatasetSchema, load_schema
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e
QUERIES_ONLY = True  # the session's shared consortium (conftest)

SCHEMA: DatasetSchema = load_schema(schema_path())
FRAC = 24
SPEC = (  # (feature, scale, real weight)
    ("total_exposure", 100_000_000, 0.3),
    ("lenders", 1, 0.4),
    ("any_default", 1, 1.9),
    ("worst_rating", 1, 0.3),
    ("largest_loan", 100_000_000, 0.8),
)
WEIGHTS = [round(w * (1 << FRAC)) for _, _, w in SPEC]
INTERCEPT = round(-3.0 * (1 << FRAC))
# the secret model's own weights (7-8 digits: found by chance in a file practically never)
SECRET_WEIGHTS = [5033171, 6710893, 31876709, 5033197, 13421779]
SECRET_INTERCEPT = -50331653
UNKNOWN = [f"5493{9_000_000 + i:012d}NONE{i:02d}" for i in range(5)]


def _model(output: str, *, secret: bool = False, name: str = "") -> ScoringModel:
    return ScoringModel(
        owner="analyst/alice",
        name=name or f"pd-{output}{'-secret' * secret}",
        kind="logistic",
        features=tuple(ModelFeature(name=n, scale=s) for n, s, _ in SPEC),
        frac_bits=FRAC,
        weight_bits=28,
        weights_secret=secret,
        weights=None if secret else tuple(WEIGHTS),
        intercept=None if secret else INTERCEPT,
        threshold=Decimal("0.3") if output != "scores" else None,
        output=output,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def alice(consortium: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(consortium) as client:
        yield client


@pytest.fixture(scope="module")
def keys(consortium: LocalConsortium) -> list[str]:
    """120 counterparties known to one, two or three institutions, and five known to none."""
    return batch(consortium.files)[:120] + UNKNOWN


def _plain_scores(
    consortium: LocalConsortium,
    keys: list[str],
    weights: list[int] = WEIGHTS,
    intercept: int = INTERCEPT,
) -> list[Fraction]:
    names = [n for n, _, _ in SPEC]
    frames = institution_frames(consortium.files, SCHEMA, keys)
    joint = reference.joint_features(frames, SCHEMA, keys, names)
    return reference.real_scores(_model("scores"), weights, intercept, joint)


def _known_by(consortium: LocalConsortium, keys: list[str]) -> list[int]:
    frames = institution_frames(consortium.files, SCHEMA, keys)
    return [sum(key in set(f["counterparty_lei"]) for f in frames) for key in keys]


def test_the_batch_mixes_entities_known_to_one_two_three_and_no_institution(
    consortium: LocalConsortium, keys: list[str]
) -> None:
    assert set(_known_by(consortium, keys)) == {0, 1, 2, 3}


def test_decisions_equal_the_plaintext_decisions(alice, consortium, keys) -> None:
    model = _model("decisions")
    result = alice.score("loans", alice.register_model(model), keys)
    expected = reference.decisions(model, _plain_scores(consortium, keys))
    assert result.outcome.decisions == [bool(d) for d in expected]
    assert 0 < sum(expected) < len(keys)  # the test discriminates
    # only the declared output: no score, probability or count
    assert not result.outcome.scores and not result.outcome.probabilities
    assert result.outcome.count is None


def test_scores_are_exact_and_count_is_the_number_above_threshold(alice, consortium, keys) -> None:
    scores = alice.score("loans", alice.register_model(_model("scores")), keys)
    plain = _plain_scores(consortium, keys)
    assert [Fraction(s, scores.outcome.denominator) for s in scores.outcome.scores] == plain
    sigmoid = [1 / (1 + np.exp(-float(s))) for s in plain]
    assert np.allclose(scores.outcome.probabilities, sigmoid, rtol=1e-12)
    unknown = plain[-1]  # an entity no institution knows scores the intercept
    assert unknown == Fraction(INTERCEPT, 1 << FRAC)
    counted = alice.score("loans", alice.register_model(_model("count")), keys)
    assert counted.outcome.count == sum(reference.decisions(_model("count"), plain))
    assert not counted.outcome.decisions and not counted.outcome.scores


def test_secret_weights_decide_like_the_plaintext_model_and_appear_nowhere(
    alice, consortium, keys
) -> None:
    files = consortium.files
    model = _model("decisions", secret=True)
    sealed = seal_for_consortium(model, SECRET_WEIGHTS, SECRET_INTERCEPT, files.pki_dir)
    result = alice.score("loans", alice.register_model(model, sealed), keys)
    plain = _plain_scores(consortium, keys, SECRET_WEIGHTS, SECRET_INTERCEPT)
    expected = reference.decisions(model, plain)
    assert result.outcome.decisions == [bool(d) for d in expected]
    assert 0 < sum(expected) < len(keys)
    # no weight, as decimal text, in anything the gateway or a node stores or logs
    secrets = {str(abs(w)) for w in (*SECRET_WEIGHTS, SECRET_INTERCEPT)}
    stored = [
        p
        for p in files.root.rglob("*")
        if p.is_file() and p.suffix in (".json", ".sqlite", ".log", ".sqlite-wal", ".toml")
    ]
    assert any(p.parent.name == "models" for p in stored)
    for path in stored:
        text = path.read_bytes().decode("latin-1")
        found = [s for s in secrets if s in text]
        assert not found, f"weight {found} appears in {path}"


def _entries(db: Path) -> list[dict]:
    with sqlite3.connect(db) as con:
        return [json.loads(r[0]) for r in con.execute("SELECT data FROM entries ORDER BY idx")]


def test_the_audit_log_records_the_key_batch_by_hash_not_the_keys(alice, consortium, keys) -> None:
    result = alice.score("loans", alice.register_model(_model("count", name="audited")), keys)
    entries = _entries(consortium.files.root / "audit.sqlite")
    mine = [e for e in entries if e.get("query_id") == result.query_id]
    submitted = next(e for e in mine if e["kind"] == "query.submitted")
    batch_record = submitted["details"]["plan"]["keys"]
    assert batch_record == {"count": len(keys), "sha256": key_batch_hash(keys)}
    assert not any(k in json.dumps(mine) for k in keys)
    released = next(e for e in mine if e["kind"] == "result.released")
    assert all(len(digest) == 64 for digest in released["details"]["sealed"].values())
    registered = [e for e in entries if e["kind"] == "model.registered"]
    assert registered and all(len(e["details"]["model_id"]) == 64 for e in registered)


def test_sector_concentration_equals_plaintext(alice, consortium) -> None:
    limit = Decimal("5000000")
    result = alice.concentration("loans", group_by="sector", limit=str(limit), hhi="fraction")
    pooled = pooled_frame(consortium.files, SCHEMA).groupby("sector")["exposure"].sum()
    joint = [int(pooled.get(s, 0)) for s in SCHEMA.categorical("sector").domain]
    plain = reference.concentration([np.array(joint, dtype=object)], int(limit * 100))
    assert result.outcome.units == list(SCHEMA.categorical("sector").domain)
    assert result.outcome.over_limit == [bool(f) for f in plain["over_limit"]]
    numerator, denominator = plain["hhi"]
    assert abs(result.outcome.hhi - Fraction(10000 * numerator, denominator)) < Fraction(1, 10**6)
    flagged = alice.concentration("loans", group_by="sector", hhi="flag", hhi_limit=500)
    assert flagged.outcome.hhi is None and not flagged.outcome.over_limit  # only the flag
    assert flagged.outcome.hhi_over_limit == (10000 * numerator > 500 * denominator)


def test_counterparty_concentration_equals_plaintext(alice, consortium, keys) -> None:
    limit = Decimal("2000000")
    result = alice.concentration("loans", keys=keys, limit=str(limit), hhi="none")
    pooled = pooled_frame(consortium.files, SCHEMA).groupby("counterparty_lei")["exposure"].sum()
    assert result.outcome.over_limit == [int(pooled.get(k, 0)) > limit * 100 for k in keys]
    assert result.outcome.hhi is None


@pytest.mark.parametrize(
    ("column", "levels", "where"),
    [("exposure", ["0.5", "0.9"], ""), ("lgd", ["0.25"], "sector = 'energy'")],
)
def test_quantiles_equal_numpy_inverted_cdf(alice, consortium, column, levels, where) -> None:
    result = alice.quantiles("loans", column, levels, grid_size=256, where=where)
    sql = "TRUE" if not where else where
    values = pooled_frame(consortium.files, SCHEMA, sql)[column].tolist()
    factor = SCHEMA.numeric(column).factor
    expected = [Decimal(reference.quantile(values, Fraction(q))) / factor for q in levels]
    assert [v for _, v in result.outcome.quantiles] == expected
    assert result.outcome.rounds >= 2


def test_interpolated_percentiles_in_sql_equal_duckdb_over_the_pooled_rows(
    alice, consortium
) -> None:
    """PERCENTILE_CONT / MEDIAN: exact against the pooled rows, and what DuckDB answers."""
    where = "sector IN ('energy', 'retail')"
    result = alice.sql(
        "SELECT PERCENTILE_CONT(0.3) WITHIN GROUP (ORDER BY exposure), "
        f"quantile_cont(exposure, 0.95) FROM loans WHERE {where}"
    )
    median = alice.sql(f"SELECT MEDIAN(exposure) FROM loans WHERE {where}")
    frame = pooled_frame(consortium.files, SCHEMA, where)
    values = frame["exposure"].tolist()
    got = [*(v for _, v in result.outcome.quantiles), median.outcome.quantiles[0][1]]
    levels = [Fraction("0.3"), Fraction("0.95"), Fraction("0.5")]
    assert [Fraction(v) * 100 for v in got] == [
        reference.interpolated_quantile(values, q) for q in levels
    ]
    (plain,) = duckdb.sql(
        "SELECT quantile_cont(exposure, 0.3), quantile_cont(exposure, 0.95), median(exposure) "
        "FROM frame"
    ).fetchall()
    assert [float(v) * 100 for v in got] == pytest.approx(list(plain), rel=1e-12)
    flags = alice.quantiles("loans", "exposure", ["0.5"], where=where, interpolation="linear")
    assert flags.plan_hash == median.plan_hash


def test_histogram_equals_plaintext(alice, consortium) -> None:
    edges = ["0", "10000", "100000", "1000000", "100000000"]
    result = alice.histogram("loans", "exposure", edges)
    values = pooled_frame(consortium.files, SCHEMA)["exposure"].tolist()
    expected = reference.histogram(values, [int(Decimal(e) * 100) for e in edges])
    assert [c for _, _, c in result.outcome.bins] == expected
    assert [(str(lo), str(hi)) for lo, hi, _ in result.outcome.bins] == list(zip(edges, edges[1:]))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.score("loans", "0" * 64, ["K"]), InvalidRequestError, "no registered model"),
        (lambda c: c.quantiles("loans", "salary", ["0.5"]), InvalidRequestError, "salary"),
        (lambda c: c.quantiles("loans", "exposure", ["1.5"]), InvalidRequestError, "(0, 1]"),
        (
            lambda c: c.histogram("loans", "exposure", ["10", "5"]),
            InvalidRequestError,
            "increasing",
        ),
        (lambda c: c.concentration("loans", keys=["A", "A"]), InvalidRequestError, "listed twice"),
        (
            lambda c: c.concentration("loans", group_by="exposure"),
            InvalidRequestError,
            "categorical",
        ),
        (
            lambda c: c.concentration("loans", keys=["A"], column="lgd"),
            InvalidRequestError,
            "sums 'exposure'",
        ),
    ],
)
def test_bad_risk_requests_get_a_precise_error_and_an_audit_entry(
    alice, consortium, call, error, message
) -> None:
    before = len(_entries(consortium.files.root / "audit.sqlite"))
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(alice)
    after = _entries(consortium.files.root / "audit.sqlite")[before:]
    assert [e["kind"] for e in after] == ["query.refused"]


def test_a_model_registers_only_under_its_owner(consortium) -> None:
    with client_for(consortium, "analyst/bob") as bob:
        with pytest.raises(PolicyDeniedError, match="only under its own identity"):
            bob.register_model(_model("count", name="not-bobs"))
    entries = _entries(consortium.files.root / "audit.sqlite")
    assert entries[-1]["kind"] == "model.refused"


def test_a_model_no_dataset_can_score_is_refused_at_registration(alice, consortium) -> None:
    # co-prime scales near 10**18: their lcm, the common scale, has some 600 bits
    scales = [10**18 - d for d in (11, 17, 59, 93, 97, 123, 131, 179, 201, 203)]
    wide = ScoringModel(
        owner="analyst/alice",
        name="too-wide",
        kind="linear",
        features=tuple(ModelFeature(name=n, scale=s) for n, s in zip(FEATURES, scales)),
        weights=(1,) * len(scales),
        intercept=0,
        threshold="1",
        output="count",
    )
    with pytest.raises(InvalidRequestError, match="'too-wide' cannot score over any dataset: "):
        alice.register_model(wide)
    refused = _entries(consortium.files.root / "audit.sqlite")[-1]
    assert refused["kind"] == "model.refused"
    assert refused["details"]["model_id"] == wide.model_id
    assert "at most 512 are allowed" in refused["details"]["reason"]
    assert all(m.model_id != wide.model_id for m in alice.models())
