"""Quantiles cannot single out loans: attacks through the real API, under the example policies.

bank-b allows no min or max of exposure (single loans), so a quantile at level 1 or
0.000001, which is the maximum or the minimum, is refused. The consortium requires
records from 2 institutions per released cell, and a quantile is a cell: over one
institution's loans it is withheld, answered exactly like a population too small to release.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

import duckdb
import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet import reference
from mpc_gateway.devnet.localnet import LocalConsortium, schema_path
from mpc_gateway.devnet.risk_demo import pooled_frame
from mpc_gateway.errors import PolicyDeniedError
from mpc_gateway.query.schema import load_schema

pytestmark = pytest.mark.e2e

SCHEMA = load_schema(schema_path())


@pytest.fixture(scope="module")
def alice(governed: LocalConsortium) -> Iterator[GatewayClient]:
    files = governed.files
    with GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, purpose="risk monitoring"
    ) as client:
        yield client


def _only_at(consortium: LocalConsortium, node: str, count: int) -> list[str]:
    """``count`` exposures (EUR, as a filter writes them) that only ``node``'s book holds."""
    files = consortium.files
    paths = [str(files.data_file(n)) for n in files.nodes]
    rows = (
        duckdb.connect()
        .execute(
            "SELECT exposure FROM read_parquet(?, filename = true) GROUP BY exposure "
            "HAVING count(DISTINCT filename) = 1 AND min(filename) = ? "
            "ORDER BY md5(CAST(exposure AS VARCHAR)) LIMIT ?",
            [paths, str(files.data_file(node)), count],
        )
        .fetchall()
    )
    assert len(rows) == count
    return [f"{row[0]:.2f}" for row in rows]


def _among(values: list[str]) -> str:
    return f"exposure IN ({', '.join(values)})"


@pytest.mark.parametrize("level", ["1", "0.000001"])
def test_a_quantile_at_the_maximum_or_minimum_of_a_column_without_them_is_refused(
    alice: GatewayClient, level: str
) -> None:
    with pytest.raises(PolicyDeniedError) as caught:
        alice.quantiles("loans", "exposure", ["0.5", level])
    message = caught.value.public_message
    assert "risk.quantile_level" in message and "bank-b" in message, message
    assert f"at level {level}" in message
    dry_run = alice.explain("quantile", "loans", column="exposure", levels=[level])
    assert dry_run["allowed"] is False
    assert "risk.quantile_level" in str(dry_run["refusals"])


def test_a_quantile_inside_the_allowed_levels_runs(
    alice: GatewayClient, governed: LocalConsortium
) -> None:
    result = alice.quantiles("loans", "exposure", ["0.01", "0.99"])
    values = pooled_frame(governed.files, SCHEMA)["exposure"].tolist()
    expected = [Decimal(reference.quantile(values, Fraction(q))) / 100 for q in ("0.01", "0.99")]
    assert [v for _, v in result.outcome.quantiles] == expected


def test_a_quantile_over_one_institutions_loans_is_withheld_like_a_small_one(
    alice: GatewayClient, governed: LocalConsortium
) -> None:
    """25 loans pass every minimum count (bank-b's is 20), but they are all bank-a's."""
    bank_a, bank_b = _only_at(governed, "bank-a", 25), _only_at(governed, "bank-b", 25)
    alone = alice.quantiles("loans", "exposure", ["0.5"], where=_among(bank_a))
    assert alone.outcome.quantiles == [(Decimal("0.5"), None)]
    mixed_where = _among(bank_a[:13] + bank_b[:12])  # two institutions: released, exactly
    mixed = alice.quantiles("loans", "exposure", ["0.5"], where=mixed_where)
    values = pooled_frame(governed.files, SCHEMA, mixed_where)["exposure"].tolist()
    assert len(values) >= 25
    plain = Decimal(reference.quantile(values, Fraction(1, 2))) / 100
    assert mixed.outcome.quantiles == [(Decimal("0.5"), plain)]
    small = alice.quantiles("loans", "exposure", ["0.5"], where=_among(bank_a[:5] + bank_b[:5]))
    assert alone.outcome.to_json() == small.outcome.to_json()  # one meaning: withheld
    assert alone.outcome.withheld() == [{"quantile": "0.5"}]
