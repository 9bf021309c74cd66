"""Differential privacy's pieces: costs and scales (OpenDP's maps), the noise sampler, budgets."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from mpc_gateway.errors import BudgetExhaustedError, InvalidQueryError
from mpc_gateway.policy import UsageLedger
from mpc_gateway.privacy import (
    Charge,
    NoisyRelease,
    PrivacyLedger,
    calibrate,
    epsilon_for,
    period_of,
    release_cost,
    sample,
)
from tests.stats import discrete_gaussian_pmf, goodness_of_fit
from tests.syncs import strace_syncs, syncs_in

# --- costs and scales ---------------------------------------------------------------------


def test_a_release_costs_what_the_discrete_gaussian_mechanism_costs() -> None:
    release = NoisyRelease("count", sensitivity=1, scale=20.0)
    assert release.rho == pytest.approx(1 / (2 * 20.0**2), rel=1e-9)  # 0.00125 (TRUST_NOTES)
    wide = NoisyRelease("sum", sensitivity=1000, scale=20_000.0)
    assert wide.rho == pytest.approx(release.rho, rel=1e-9)


@pytest.mark.parametrize("rho", ["0.01", "0.1", "1"])
def test_calibrated_scales_spend_the_budget_per_query_and_no_more(rho: str) -> None:
    releases = calibrate(Decimal(rho), {"count": 1, "sum": 10**10, "sumsq": 10**17})
    cost = release_cost(releases)
    assert cost <= float(rho)
    assert cost == pytest.approx(float(rho), rel=1e-6)  # not needlessly noisy either
    ratios = {r.scale / r.sensitivity for r in releases.values()}
    assert max(ratios) / min(ratios) == pytest.approx(1.0)  # one common multiplier


def test_a_budget_per_query_must_be_positive_and_sensitivities_within_64_bits() -> None:
    with pytest.raises(InvalidQueryError):
        calibrate(Decimal(0), {"count": 1})
    with pytest.raises(InvalidQueryError, match="coarser units"):
        calibrate(Decimal(1), {"sumsq": 10**20})


def test_epsilon_at_delta_is_opendps_conversion_and_within_the_textbook_bound() -> None:
    rho, delta = 0.1, 1e-9
    eps = epsilon_for(rho, delta)
    assert 0 < eps <= rho + 2 * math.sqrt(rho * math.log(1 / delta))  # Bun & Steinke 2016


def test_the_sampler_refuses_scales_it_cannot_draw_exactly() -> None:
    with pytest.raises(InvalidQueryError):
        sample(0.0, 3)
    with pytest.raises(InvalidQueryError):
        sample(1e16, 3)


def test_the_sampler_draws_the_discrete_gaussian() -> None:
    """20,000 draws at σ = 3.5 fit the discrete Gaussian (a false alarm has p < 1e-6)."""
    scale = 3.5
    draws = sample(scale, 20_000)
    assert all(isinstance(v, int) for v in draws[:10])  # exact integers, not floats
    support = np.arange(-60, 61)
    pmf = dict(zip(support.tolist(), discrete_gaussian_pmf(scale, support).tolist()))
    assert goodness_of_fit(draws, pmf) > 1e-6
    # and not some other scale: σ = 3 or 4 is rejected by the same test
    for wrong in (3.0, 4.0):
        other = dict(zip(support.tolist(), discrete_gaussian_pmf(wrong, support).tolist()))
        assert goodness_of_fit(draws, other) < 1e-6


# --- budgets ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _charge(holder: str = "analyst/alice", budget: str = "1", cost: str = "0.3") -> Charge:
    return Charge("bank-a", "loans", holder, holder, "month", Decimal(budget), Decimal(cost))


def test_periods_are_utc_days_iso_weeks_or_months() -> None:
    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert period_of("day", now) == "2026-12-31"
    assert period_of("week", now) == "2026-W53"
    assert period_of("month", now) == "2026-12"


def test_a_budget_pays_until_it_cannot_and_then_refuses_naming_the_rule() -> None:
    with PrivacyLedger(clock=Clock()) as ledger:
        for n in range(3):
            ledger.charge(f"q{n}", [_charge()])
        assert ledger.spent(_charge()) == Decimal("0.9")
        with pytest.raises(BudgetExhaustedError) as caught:
            ledger.charge("q3", [_charge()])
        assert caught.value.rule == "privacy.budget"
        assert "ρ 0.1 left" in caught.value.public_message
        ledger.charge("q4", [_charge(cost="0.1")])  # exactly what is left still fits
        assert ledger.remaining(_charge()) == 0


def test_a_query_is_charged_to_every_budget_or_to_none() -> None:
    with PrivacyLedger(clock=Clock()) as ledger:
        ledger.charge("q0", [_charge("*", budget="0.5", cost="0.4")])
        both = [_charge(), _charge("*", budget="0.5")]
        with pytest.raises(BudgetExhaustedError):
            ledger.charge("q1", both)  # the shared budget cannot pay
        assert ledger.spent(_charge()) == 0  # so the analyst's paid nothing either
        ledger.refund("q0")
        ledger.charge("q1", both)
        assert ledger.spent_by_holder(both) == {
            "analyst/alice": Decimal("0.3"),
            "*": Decimal("0.3"),
        }


def test_spending_is_durable_and_refunds_are_per_query(tmp_path: Path) -> None:
    clock = Clock()
    with PrivacyLedger(tmp_path / "usage.sqlite", clock=clock) as ledger:
        ledger.charge("kept", [_charge()])
        ledger.charge("refunded", [_charge()])
        ledger.refund("refunded")
    with PrivacyLedger(tmp_path / "usage.sqlite", clock=clock) as reopened:
        assert reopened.spent(_charge()) == Decimal("0.3")
        for n in range(2):
            reopened.charge(f"more{n}", [_charge()])
        with pytest.raises(BudgetExhaustedError):  # the filter is rebuilt from the record
            reopened.charge("over", [_charge()])


def test_a_new_period_starts_a_fresh_budget() -> None:
    clock = Clock()
    with PrivacyLedger(clock=clock) as ledger:
        ledger.charge("q0", [_charge(cost="1")])
        with pytest.raises(BudgetExhaustedError):
            ledger.charge("q1", [_charge()])
        clock.now += timedelta(days=31)
        ledger.charge("q1", [_charge()])
        assert ledger.period(_charge()) == "2027-01"


@pytest.mark.parametrize(
    ("left", "cost"),
    [("1", "0.05"), ("0.05", "0.05"), ("0.0499999", "0.05"), ("0.1", "0.1000001"), ("2", "0.7")],
)
def test_a_budget_admits_what_an_opendp_privacy_filter_of_what_is_left_admits(
    left: str, cost: str
) -> None:
    """The ledger's check is the filter's: one query of OpenDP's stated loss into the rest."""
    import opendp.prelude as dp

    from mpc_gateway.privacy import ledger

    domain, metric = dp.atom_domain(T="i64"), dp.absolute_distance(T="i64")
    odometer = dp.c.make_fully_adaptive_composition(
        domain, metric, dp.zero_concentrated_divergence()
    )
    room = float(Decimal(left)) * (1 + 1e-9)
    queryable = dp.c.make_privacy_filter(odometer, d_in=1, d_out=room)(0)
    scale = 1 / math.sqrt(2 * float(Decimal(cost)))
    try:
        queryable(dp.m.make_gaussian(domain, metric, scale=scale))
        filtered = True
    except dp.OpenDPException:
        filtered = False
    assert ledger._admits(Decimal(left), Decimal(cost)) is filtered


_SYNCS = """
import sys
from decimal import Decimal
from pathlib import Path
from mpc_gateway.policy import UsageLedger
from mpc_gateway.privacy import Charge, PrivacyLedger
path, durable = Path(sys.argv[1]), sys.argv[2] == "durable"
usage, privacy = UsageLedger(path), PrivacyLedger(path)
charge = Charge("bank-a", "loans", "a", "a", "month", Decimal(1), Decimal("0.01"))
for n in range(20):
    usage.record_if_below("a", None, durable=durable)
    privacy.charge(f"q{n}", [charge])
print(usage.count("a"), privacy.spent(charge))
"""


def _syncs(tmp_path: Path, mode: str) -> tuple[int, str]:
    """How many times SQLite synced a file while the script charged 20 queries (strace -c)."""
    path, report = tmp_path / f"{mode}.sqlite", tmp_path / f"{mode}.strace"
    done = subprocess.run(
        [*strace_syncs(report), sys.executable, "-c", _SYNCS, str(path), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return syncs_in(report), done.stdout


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_query_s_usage_count_and_privacy_charge_share_one_sync(tmp_path: Path) -> None:
    """The usage count written without a sync is made durable by the charge's sync."""
    both, answer = _syncs(tmp_path, "durable")
    shared, same_answer = _syncs(tmp_path, "shared")
    assert answer == same_answer == "20 0.20\n"
    assert both - shared == 20, (both, shared)  # one sync fewer per query
    with UsageLedger(tmp_path / "shared.sqlite") as reopened:  # and the count is on disk
        assert reopened.count("a") == 20
