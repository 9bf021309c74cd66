"""A data-less helper node: its config, and the inputs it gives every computation.

A helper holds an empty table of the schema's columns (``LocalDataset(schema, None)``)
and runs each computation's own local step with ``holds_data=False``. Its inputs must
have exactly an institution's shapes and parameters (every party must issue the same
MPC operations), be zeros (empty extremes: the sentinels), mark it present nowhere
and know no entity, and stay exact under differential privacy: noise from a helper
would protect nothing and, in a presence bit, could count it as an institution.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mpc_gateway.computations import COMPUTATIONS, Request, build, computation_of
from mpc_gateway.computations.aggregate import AggregateRequest, parse_aggregate
from mpc_gateway.computations.base import LocalData, ProgramCall
from mpc_gateway.computations.check import CheckRequest
from mpc_gateway.computations.concentration import ConcentrationRequest
from mpc_gateway.computations.histogram import HistogramRequest
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.computations.score import ScoreRequest
from mpc_gateway.computations.scoring import ModelCatalog, ModelFeature, ScoringModel
from mpc_gateway.computations.train import TrainRequest
from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.policy import OutputControls
from mpc_gateway.query.schema import load_schema
from mpc_gateway.settings import NodeSettings, load_settings

RHO = Decimal("0.05")
KEYS = tuple(f"5493{i:012d}MPCG00" for i in range(5))
MODEL = ScoringModel(
    owner="analyst/alice",
    name="m",
    kind="linear",
    features=(ModelFeature(name="total_exposure"), ModelFeature(name="lenders")),
    weights=(1, 1),
    intercept=0,
    threshold=Decimal(1),
    output="count",
)
DATA_ARRAYS = {
    "additive",
    "presence",
    "counts",
    "totals",
    "exposures",
    "features_local",
    "design",
}
SECRET_BITS = {"presence", "known_local", "noise_local"}


def _aggregate(dataset: str, *aggregates: str) -> AggregateRequest:
    specs = tuple(parse_aggregate(a) for a in aggregates)
    return AggregateRequest(dataset=dataset, aggregates=specs, group_by="sector", purpose="t")


CASES: dict[str, tuple[Request, OutputControls, dict[str, Any]]] = {
    "aggregate": (
        _aggregate("loans", "count", "sum:exposure", "min:exposure", "max:exposure"),
        OutputControls(min_institutions=2, dominance_percent=70),
        {},
    ),
    "aggregate under DP": (
        _aggregate("loans_dp", "count", "sum:exposure"),
        OutputControls(min_institutions=2, dp_rho=RHO),
        {},
    ),
    "histogram under DP": (
        HistogramRequest(
            dataset="loans_dp", column="exposure", edges=(Decimal(0), Decimal(10**6)), purpose="t"
        ),
        OutputControls(min_institutions=2, dp_rho=RHO),
        {},
    ),
    "quantile": (
        QuantileRequest(dataset="loans", column="exposure", levels=(Decimal("0.5"),), purpose="t"),
        OutputControls(min_institutions=2),
        {"round": 0},
    ),
    "concentration": (
        ConcentrationRequest(dataset="loans", keys=KEYS, limit=Decimal(5), purpose="t"),
        OutputControls(min_entities=1),
        {},
    ),
    "check": (
        CheckRequest(dataset="alerts", keys=KEYS, question="members", purpose="t"),
        OutputControls(min_entities=2),  # a batch: the known-entities gate takes part too
        {},
    ),
    "score count under DP": (
        ScoreRequest(dataset="loans", model_id=MODEL.model_id, keys=KEYS, purpose="t"),
        OutputControls(min_entities=1, dp_rho=RHO),
        {},
    ),
    "train": (  # no rows: its worker inputs zero statistics and a row count of 0
        TrainRequest(
            dataset="loans", label="defaulted", features=("exposure", "sector"), purpose="t"
        ),
        OutputControls(min_institutions=2),
        {},
    ),
}


def test_every_computation_has_a_helper_case() -> None:
    assert {request.kind for request, _, _ in CASES.values()} == set(COMPUTATIONS)


def _inputs(case: str, holds_data: bool) -> ProgramCall:
    request, controls, step = CASES[case]
    schema = load_schema(schema_path(request.dataset))
    plan = build(request, schema, "analyst/alice", 3, ModelCatalog(MODEL)).with_controls(controls)
    empty = LocalDataset(schema, None)
    assert empty.rows == 0
    data = LocalData(empty.cursor(), schema, ("TRUE", []), 3, "helper", b"", holds_data)
    return computation_of(plan).local_inputs(plan, step, data)


def _shape(value: Any) -> Any:
    return ("array", value.shape) if isinstance(value, np.ndarray) else value


@pytest.mark.parametrize("case", CASES)
def test_a_helper_gives_every_computation_exact_zeros_of_an_institutions_shape(case: str) -> None:
    helper, institution = _inputs(case, holds_data=False), _inputs(case, holds_data=True)

    assert helper.program == institution.program
    assert {k: _shape(v) for k, v in helper.args.items()} == {
        k: _shape(v) for k, v in institution.args.items()
    }  # the same MPC operations: same bit lengths, controls and array shapes
    sentinel = helper.args.get("sentinel", 0)
    for name, value in helper.args.items():
        if not isinstance(value, np.ndarray):
            continue
        expected = {"minima": sentinel, "maxima": -sentinel}.get(name, 0)  # empty extremes
        assert all(int(v) == expected for v in value.flat), f"{case}: {name}"
    assert DATA_ARRAYS & set(helper.args)
    # quantile: totals decide; train: the row count (0) its worker derives from the design
    assert SECRET_BITS & set(helper.args) or case in ("quantile", "train")


@pytest.mark.parametrize(
    "case", ["aggregate under DP", "histogram under DP", "score count under DP"]
)
def test_under_dp_an_institution_adds_noise_where_the_helper_adds_none(case: str) -> None:
    """What the flag changes: the same empty table, held by an institution, is noisy."""
    values = [
        int(v)
        for args in (_inputs(case, holds_data=True).args for _ in range(10))
        for k in ("additive", "counts", "noise_local")
        if k in args
        for v in args[k].flat
    ]
    assert any(values)  # ten draws of nothing but zero samples: below 1e-8 at these scales


HELPER_TOML = """\
name = "helper"
role = "helper"
mpc_port = 7003
mpc_long_port = 7103
pki_dir = "pki"
policy = "policy.toml"

[datasets.loans]
schema = "../schemas/loans.toml"
"""


def test_a_helper_config_names_schemas_only(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(HELPER_TOML)
    settings = load_settings(NodeSettings, path)
    assert settings.role == "helper" and settings.datasets["loans"].source is None


def test_a_helper_config_that_names_a_data_source_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(HELPER_TOML + 'source = "data/loans.parquet"\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings(NodeSettings, path)
    message = caught.value.public_message
    assert "helper node holds no data" in message and "'loans' names source" in message


def test_a_node_role_is_institution_or_helper(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(HELPER_TOML.replace('role = "helper"', 'role = "observer"'))
    with pytest.raises(ConfigurationError, match="role"):
        load_settings(NodeSettings, path)
