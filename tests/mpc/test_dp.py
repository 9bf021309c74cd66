"""Differential privacy inside the MPC: what the receiver opens carries the declared noise.

Three real parties run the aggregate program over many cells of zeros, each
party's inputs noised by the node's own code (:func:`add_noise`), so every
opened cell is one draw of the released noise. The draws must fit the declared
mechanism (every node's full-scale discrete Gaussian, summed), and a coalition
of two parties that subtracts what it put in must still face one full-scale
discrete Gaussian: the honest node's. Goodness-of-fit tests at p < 1e-6, with a
check of their power (the wrong scale is rejected).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from scipy import stats

from mpc_gateway.computations import AggregateRequest
from mpc_gateway.computations.aggregate import build_plan, parse_aggregate
from mpc_gateway.computations.aggregate_layout import AggregateLayout, add_noise, layout_for
from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.query.schema import load_schema
from tests.mpc.harness import open_blocks, run_parties
from tests.stats import discrete_gaussian_pmf, goodness_of_fit

pytestmark = pytest.mark.mpc

PARTIES = 3
CELLS = 4000
RHO = Decimal("0.05")


def _layout() -> AggregateLayout:
    schema = load_schema(schema_path())
    request = AggregateRequest(
        dataset="loans",
        aggregates=(parse_aggregate("count"), parse_aggregate("sum:exposure")),
        purpose="testing",
    )
    plan = build_plan(request, schema, "analyst/alice", OutputControls(dp_rho=RHO))
    return layout_for(plan, schema, PARTIES)


@pytest.fixture(scope="module")
def draws() -> dict[str, np.ndarray]:
    """Every party's noise and what the receiver opened, per column, over CELLS cells."""
    layout = _layout()
    width = len(layout.additive)
    zeros = {
        "additive": np.zeros((CELLS, width), dtype=object),
        "minima": np.zeros((CELLS, 0), dtype=object),
        "maxima": np.zeros((CELLS, 0), dtype=object),
    }
    inputs = [add_noise(layout, zeros) for _ in range(PARTIES)]
    args = [
        {**local, "bits": layout.bits, "sentinel": layout.sentinel, "controls": None}
        for local in inputs
    ]
    opened = open_blocks(run_parties("aggregate:joint_aggregates", args))
    released = np.array(opened["additive"], dtype=object).reshape(CELLS, width)
    return {
        "released": released,
        **{f"party{i}": local["additive"] for i, local in enumerate(inputs)},
    }


def _pmf_of_sum(scale: float, terms: int, support: np.ndarray) -> dict[int, float]:
    """The pmf of the sum of ``terms`` independent discrete Gaussians of scale σ."""
    window = np.arange(-int(40 * scale) - 1, int(40 * scale) + 2)
    one = discrete_gaussian_pmf(scale, window)
    total = one
    for _ in range(terms - 1):
        total = np.convolve(total, one)
    offset = (len(total) - 1) // 2
    return {int(x): float(total[x + offset]) for x in support if 0 <= x + offset < len(total)}


def test_the_noise_scales_are_what_the_query_pays_for() -> None:
    layout = _layout()
    assert [stat for stat, _ in layout.additive] == ["count", "sum"]
    count, total = layout.noise
    assert count.sensitivity == 1 and count.rho + total.rho == pytest.approx(float(RHO), rel=1e-6)
    # exposure's declared bound (EUR 100m, in cents) is one record's largest contribution
    assert total.sensitivity * layout.units[1] >= 10_000_000_000


def test_released_counts_carry_every_nodes_full_scale_noise(draws: dict[str, np.ndarray]) -> None:
    scale = _layout().noise[0].scale
    counts = draws["released"][:, 0].astype(np.int64)
    assert len(set(counts.tolist())) > 10  # really drawn, cell by cell
    support = np.arange(-int(12 * scale), int(12 * scale) + 1)
    assert goodness_of_fit(counts, _pmf_of_sum(scale, PARTIES, support)) > 1e-6
    assert goodness_of_fit(counts, _pmf_of_sum(scale, PARTIES - 1, support)) < 1e-6  # power


def test_released_sums_carry_noise_of_the_declared_scale(draws: dict[str, np.ndarray]) -> None:
    layout = _layout()
    scale = layout.noise[1].scale  # in the column's units of the layout
    sums = np.array([float(v) for v in draws["released"][:, 1]])
    spread = scale * math.sqrt(PARTIES)  # σ this large: the discrete Gaussian is the normal's
    assert stats.kstest(sums / spread, "norm").pvalue > 1e-6
    assert stats.kstest(sums / (spread / math.sqrt(2)), "norm").pvalue < 1e-6


def test_two_colluding_nodes_that_subtract_their_noise_still_face_a_full_scale_sample(
    draws: dict[str, np.ndarray],
) -> None:
    scale = _layout().noise[0].scale
    released = draws["released"][:, 0]
    residual = (released - draws["party0"][:, 0] - draws["party1"][:, 0]).astype(np.int64)
    support = np.arange(-int(12 * scale), int(12 * scale) + 1)
    assert goodness_of_fit(residual, _pmf_of_sum(scale, 1, support)) > 1e-6
    assert np.var(residual) > 0.85 * scale**2  # the declared σ, not a fraction of it
    # and what they subtracted is exactly their own: the residual is the honest node's noise
    assert (residual == draws["party2"][:, 0].astype(np.int64)).all()
