"""Disclosure control against a determined analyst, through the real API, as the examples set it.

``loans_dp`` holds the same loan books as ``loans``, shared only under
differential privacy: each attack below is run against ``loans`` (exact, under
output controls) and, where DP is the answer to it, against ``loans_dp``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import duckdb
import grpc
import pytest

from mpc_gateway.auditor import AuditorClient
from mpc_gateway.client import GatewayClient, tls_from_pki
from mpc_gateway.computations import AggregateRequest
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.computations.aggregate_result import AggregateOutcome
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.errors import BudgetExhaustedError, PolicyDeniedError
from tests.e2e.conftest import gateway_stub, running_consortium
from tests.forged import dispatched, forge

pytestmark = pytest.mark.e2e

PRIVATE = "loans_dp"


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    with running_consortium(tmp_path_factory.mktemp("private"), policies="examples") as running:
        yield running


def _client(consortium: LocalConsortium, identity: str = "analyst/alice") -> GatewayClient:
    files = consortium.files
    return GatewayClient.from_pki(
        files.pki_dir, identity, files.gateway_address, purpose="risk monitoring", timeout_s=30
    )


def _table(
    client: GatewayClient, dataset: str, aggregates: list[str], **kw: str
) -> AggregateOutcome:
    outcome = client.query(dataset, aggregates, **kw).outcome
    assert isinstance(outcome, AggregateOutcome)
    return outcome


def _pooled(consortium: LocalConsortium, sql: str) -> list[tuple[object, ...]]:
    paths = [str(consortium.files.data_file(n)) for n in consortium.files.nodes]
    return duckdb.connect().execute(sql.replace("data", "read_parquet(?)"), [paths]).fetchall()


def test_the_mean_no_longer_undoes_the_rounding_of_count_and_sum(governed: LocalConsortium) -> None:
    """bank-b rounds counts to 5 and sums to whole euros: mean = released sum / released count."""
    with _client(governed) as client:
        table = _table(
            client, "loans", ["count", "sum:exposure", "mean:exposure"], group_by="sector"
        )
    exact = dict(_pooled(governed, "SELECT sector, count(*) FROM data GROUP BY 1"))
    released = [(g, v) for g, v in table.rows if g not in table.suppressed]
    assert released
    for _, (count, total, mean) in released:
        assert count % 5 == 0 and total == total.to_integral_value()
        assert mean == pytest.approx(float(total) / count, rel=1e-12)  # not the exact mean
    assert any(count != exact[g] for g, (count, _, _) in released)  # so rounding really hides


def test_withheld_cells_do_not_tell_an_empty_cell_from_a_one_loan_cell(
    governed: LocalConsortium,
) -> None:
    """The rule bits were an oracle: an empty cell failed two rules, a one-loan cell three."""
    (largest,) = _pooled(governed, "SELECT max(exposure) FROM data WHERE sector = 'energy'")[0]
    (rating,) = _pooled(
        governed, f"SELECT rating FROM data WHERE sector = 'energy' AND exposure = {largest}"
    )[0]
    with _client(governed) as client:
        table = _table(
            client,
            "loans",
            ["count"],
            where=f"sector = 'energy' AND exposure >= {largest}",
            group_by="rating",
        )
    assert rating in table.suppressed  # one loan
    empty = [g for g, _ in table.rows if g != rating]
    assert all(table.suppressed[g] == ("withheld",) for g in empty)
    assert table.suppressed[rating] == ("withheld",)  # the same report


def _tracker_pair(client: GatewayClient, dataset: str, x: Decimal) -> Decimal:
    """Two filters whose populations differ by the loans of exposure exactly ``x``."""
    high = _table(client, dataset, ["sum:exposure"], where=f"exposure >= {x}")
    higher = _table(client, dataset, ["sum:exposure"], where=f"exposure > {x}")
    (_, (a,)), (_, (b,)) = high.rows[0], higher.rows[0]
    return Decimal(a) - Decimal(b)


def _one_loan(governed: LocalConsortium) -> Decimal:
    """An exposure exactly one loan has, below the median (the filtered cells stay large)."""
    rows = _pooled(
        governed,
        "SELECT exposure FROM data GROUP BY exposure HAVING count(*) = 1 "
        "ORDER BY exposure LIMIT 1 OFFSET 500",
    )
    return Decimal(str(rows[0][0]))


def test_without_dp_a_tracker_pair_gives_one_loan_to_the_rounding_of_sums(
    governed: LocalConsortium,
) -> None:
    """What docs/privacy.md says plainly: two queries, and output controls do not stop them."""
    x = _one_loan(governed)
    with _client(governed) as client:
        gap = _tracker_pair(client, "loans", x)
    assert abs(gap - x) <= 1  # sums are rounded to whole euros by bank-b's policy


def test_with_dp_the_same_tracker_pair_reveals_only_noise_and_costs_budget(
    governed: LocalConsortium,
) -> None:
    x = _one_loan(governed)
    with _client(governed, "analyst/bob") as client:
        before = {(b["owner"], b["holder"]): Decimal(b["spent"]) for b in client.budget(PRIVATE)}
        gap = _tracker_pair(client, PRIVATE, x)
        after = {(b["owner"], b["holder"]): Decimal(b["spent"]) for b in client.budget(PRIVATE)}
        report = client.explain("aggregate", PRIVATE, aggregates=["sum:exposure"])
    sigma = next(Decimal(n["scale"]) for n in report["privacy"]["noise"] if "sum" in n["release"])
    assert sigma > 1_000_000  # EUR: one loan's exposure is lost in the noise
    assert abs(gap - x) > Decimal("0.01")  # not the loan (a false alarm has p ~ 1e-9)
    assert after[("bank-a", "analyst/bob")] - before[("bank-a", "analyst/bob")] == Decimal("0.10")


def test_dp_releases_are_noisy_near_the_truth_and_the_dry_run_states_the_cost(
    governed: LocalConsortium,
) -> None:
    (total,) = _pooled(governed, "SELECT count(*) FROM data")[0]
    with _client(governed, "analyst/bob") as client:
        report = client.explain("aggregate", PRIVATE, aggregates=["count"])
        draws = [_table(client, PRIVATE, ["count"]).rows[0][1][0] for _ in range(4)]
    privacy = report["privacy"]
    assert report["allowed"] and privacy["rho"] == "0.05" and float(privacy["epsilon"]) > 0
    (count_noise,) = privacy["noise"]
    assert count_noise["release"] == "count" and count_noise["sensitivity"] == "1"
    spread = 6 * float(count_noise["scale"]) * 3**0.5  # three nodes' noise, 6 sigma
    assert all(abs(d - total) <= spread for d in draws)
    # drawn afresh each time: the noise (three nodes' samples, sigma ~5.5) is 0 with
    # probability ~7%, so four exact answers in a row have a chance of ~3e-5 (two: 0.5%)
    assert any(d != total for d in draws)
    owners = {b["owner"] for b in privacy["budgets"]}
    assert owners == {"consortium", "bank-a", "bank-b"}  # broker-c sets no budget


def test_what_noise_cannot_protect_is_refused_under_dp(governed: LocalConsortium) -> None:
    with _client(governed) as client:
        report = client.explain("aggregate", PRIVATE, aggregates=["max:exposure"])
        with pytest.raises(PolicyDeniedError):
            client.query(PRIVATE, ["max:exposure"])
    failed = {r["rule"] for r in report["refusals"]}
    assert "privacy.mechanism" in failed


def test_a_spent_budget_is_refused_at_the_gateway_and_by_the_node_whose_budget_it_is(
    governed: LocalConsortium,
) -> None:
    """analyst/bob spends bank-a's daily budget; then a forged order finds bank-a won't pay."""
    files = governed.files
    refused: BudgetExhaustedError | None = None
    with _client(governed, "analyst/bob") as client:
        for _ in range(20):
            try:
                client.query(PRIVATE, ["count"])
            except BudgetExhaustedError as err:
                refused = err
                break
        left = {(b["owner"], b["holder"]): b["left"] for b in client.budget(PRIVATE)}
    assert refused is not None, "the budget never ran out"
    assert refused.rule == "privacy.budget" and "bank-a" in refused.public_message
    assert Decimal(left[("bank-a", "analyst/bob")]) == 0
    # the log: each query's spend recorded at submission, before any result; the refusal too
    tls = tls_from_pki(files.pki_dir, "auditor/audrey")
    with AuditorClient(files.gateway_address, tls) as auditor:
        submitted = auditor.events(kind="query.submitted", actor="analyst/bob", dataset=PRIVATE)
        refusals = auditor.events(kind="query.refused", actor="analyst/bob", dataset=PRIVATE)
    spends = [e.details["privacy_spent"] for _, e in submitted]
    assert spends and all(spends)
    assert {"owner": "bank-a", "budget": "analyst/bob", "period": "day", "rho": "0.05"} in spends[0]
    assert refusals[0][1].details["rule"] == "privacy.budget"
    # a compromised gateway that skips its own check: the plan exactly as it would dispatch it
    request = AggregateRequest(
        dataset=PRIVATE, aggregates=(parse_aggregate("count"),), purpose="risk monitoring"
    )
    plan = dispatched(files, request, "analyst/bob")
    assert plan.controls.dp_rho == Decimal("0.05")
    forged = forge(files, plan, query_id="over-budget")
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(governed, "bank-a").Execute(forged.message(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "privacy.budget" in str(caught.value.details())
