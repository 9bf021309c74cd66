"""Two banks and a data-less helper node: m = 3, results exactly the two banks', and the
helper never counted as an institution.

Every policy (open otherwise) requires records from two institutions per released
cell and reports the first rule a cell fails. bank-b holds no energy loans, so an
energy cell holds rows of bank-a alone: with the helper counted as an institution
it would pass ``min_institutions = 2``; it must be withheld, for that rule. Every
released figure equals the plaintext over the two banks' pooled rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.histogram import HistogramOutcome
from mpc_gateway.computations.quantile import QuantileOutcome
from mpc_gateway.devnet import reference
from mpc_gateway.devnet.demo import ExampleQuery, run_checked
from mpc_gateway.devnet.localnet import HELPER, TWO_BANKS, LocalConsortium, prepare, schema_path
from mpc_gateway.devnet.risk_demo import pooled_frame, run_risk_checks
from mpc_gateway.errors import PolicyDeniedError
from mpc_gateway.query.schema import load_schema
from tests.e2e.conftest import ROWS, client_for

pytestmark = pytest.mark.e2e

CONTROLS = "\n[datasets.loans.output]\nmin_institutions = 2\nreport_rules = true\n"
ONE_BANK = "energy"  # bank-b's rows of this sector are removed before the nodes start


def _drop_sector(path: Path, sector: str) -> None:
    kept = path.with_suffix(".kept.parquet")
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{path}') WHERE sector <> '{sector}') "
            f"TO '{kept}' (FORMAT PARQUET)"
        )
    kept.replace(path)


@pytest.fixture(scope="module")
def helped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    files = prepare(
        tmp_path_factory.mktemp("helped") / "consortium",
        nodes=TWO_BANKS,
        helpers=(HELPER,),
        rows=ROWS,
        seed=11,
        query_timeout_s=8.0,
    )
    for owner in ("consortium", *files.nodes):
        with files.policy(owner).open("a") as policy:
            policy.write(CONTROLS)
    _drop_sector(files.data_file("bank-b"), ONE_BANK)
    running = LocalConsortium(files).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def alice(helped: LocalConsortium) -> Iterator[GatewayClient]:
    with client_for(helped) as client:
        yield client


def test_the_consortium_is_two_institutions_and_a_helper(helped: LocalConsortium) -> None:
    files = helped.files
    assert files.nodes == (*TWO_BANKS, HELPER) and files.institutions == TWO_BANKS
    assert not files.data_file(HELPER).exists()
    assert "role = " in files.node_config(HELPER).read_text()


def test_aggregates_equal_the_two_banks_and_a_one_bank_cell_is_withheld(
    alice: GatewayClient, helped: LocalConsortium, loans_columns: dict[str, object]
) -> None:
    query = ExampleQuery(
        "by sector",
        ("count", "sum:exposure", "mean:exposure", "stddev:exposure", "min:exposure", "max:lgd"),
        group_by="sector",
        purpose="testing",
    )
    checked = run_checked(alice, helped.files, query, loans_columns)
    assert checked.secure.suppressed == {ONE_BANK: ("min_institutions",)}
    assert checked.withheld == checked.secure.suppressed  # the plaintext counts two banks too
    assert checked.matches, checked.as_json()
    released = dict(checked.secure.rows)
    assert all(released[g][0] for g in released if g != ONE_BANK)  # two banks in every other


def test_a_filter_to_one_banks_rows_is_withheld_too(
    alice: GatewayClient, helped: LocalConsortium, loans_columns: dict[str, object]
) -> None:
    query = ExampleQuery("energy", ("count", "sum:exposure"), where=f"sector = '{ONE_BANK}'")
    checked = run_checked(alice, helped.files, query, loans_columns)
    assert checked.secure.suppressed == {"*": ("min_institutions",)} and checked.matches


def test_quantiles_equal_the_two_banks_and_one_banks_values_are_suppressed(
    alice: GatewayClient, helped: LocalConsortium
) -> None:
    schema = load_schema(schema_path())
    values = pooled_frame(helped.files, schema)["exposure"].tolist()
    result = alice.quantiles("loans", "exposure", ["0.5", "0.9"])
    assert isinstance(result.outcome, QuantileOutcome)
    expected = [Decimal(reference.quantile(values, Fraction(q)) or 0) / 100 for q in ("0.5", "0.9")]
    assert [v for _, v in result.outcome.quantiles] == expected
    alone = alice.quantiles("loans", "exposure", ["0.5"], where=f"sector = '{ONE_BANK}'")
    assert isinstance(alone.outcome, QuantileOutcome)
    assert alone.outcome.quantiles == [(Decimal("0.5"), None)]  # bank-a's values only


def test_histograms_equal_the_two_banks_and_one_banks_bins_are_withheld(
    alice: GatewayClient, helped: LocalConsortium
) -> None:
    edges = ["0", "100000", "1000000", "100000000"]
    schema = load_schema(schema_path())
    values = pooled_frame(helped.files, schema)["exposure"].tolist()
    result = alice.histogram("loans", "exposure", edges)
    assert isinstance(result.outcome, HistogramOutcome)
    expected = reference.histogram(values, [int(Decimal(e) * 100) for e in edges])
    assert [c for _, _, c in result.outcome.bins] == expected
    alone = alice.histogram("loans", "exposure", edges, where=f"sector = '{ONE_BANK}'")
    assert isinstance(alone.outcome, HistogramOutcome)
    assert [c for _, _, c in alone.outcome.bins] == [None, None, None]


def test_risk_computations_equal_the_plaintext_over_the_two_banks(
    alice: GatewayClient, helped: LocalConsortium
) -> None:
    """Secret-weight scores (weights shared to the helper too), a person-keyed count,
    sector concentration and exact quantiles; the helper adds nothing to any feature."""
    checks = run_risk_checks(alice, helped.files)
    assert [c.query["computation"] for c in checks] == [
        "score",
        "score",
        "concentration",
        "quantile",
    ]
    for check in checks:
        assert check.matches, (check.title, check.secure, check.plaintext)


def test_entities_only_the_helper_takes_part_for_are_not_known(alice: GatewayClient) -> None:
    """The batch check counts entities an institution holds rows of; the helper holds none."""
    invented = [f"5493{9_000_000 + i:012d}NONE{i:02d}" for i in range(5)]
    with pytest.raises(PolicyDeniedError, match="risk.batch"):
        alice.concentration("loans", keys=invented, limit="1000")
