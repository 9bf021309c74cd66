"""The ``mpcgw`` command tree: this module only wires the command groups together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpc_gateway.cli.admin import data_app, gateway_app, health_check, node_app, pki_app
from mpc_gateway.cli.approvals import approvals_app, approve, reject
from mpc_gateway.cli.audit import audit_app
from mpc_gateway.cli.check import check
from mpc_gateway.cli.common import reporting_errors
from mpc_gateway.cli.model import model_app
from mpc_gateway.cli.oprf import oprf_app
from mpc_gateway.cli.query import budget, datasets, query, status
from mpc_gateway.cli.risk import risk_app
from mpc_gateway.cli.sql import sql
from mpc_gateway.cli.train import model_train

__all__ = ["app"]

app = typer.Typer(
    help="mpc-gateway: joint statistics over institutions' data, computed with MPC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for sub, name in (
    (pki_app, "pki"),
    (node_app, "node"),
    (gateway_app, "gateway"),
    (data_app, "data"),
    (audit_app, "audit"),
    (model_app, "model"),
    (risk_app, "risk"),
    (approvals_app, "approvals"),
    (oprf_app, "oprf"),
):
    app.add_typer(sub, name=name)
model_app.command("train")(model_train)
for command, name in (
    (datasets, "datasets"),
    (query, "query"),
    (sql, "sql"),
    (check, "check"),
    (status, "status"),
    (budget, "budget"),
    (approve, "approve"),
    (reject, "reject"),
    (health_check, "health"),
):
    app.command(name)(command)


@app.command("demo")
def demo(
    rows: Annotated[int, typer.Option(min=1, help="loan rows per institution")] = 100_000,
    seed: int = 7,
    workdir: Annotated[Path, typer.Option(help="where PKI, data, configs and logs go")] = Path(
        "var/demo"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per query")] = False,
    institutions: Annotated[
        int,
        typer.Option(
            min=2,
            max=3,
            help="3: two banks and a broker; 2: two banks and a data-less helper node (m = 3)",
        ),
    ] = 3,
) -> None:
    """Bring up a local consortium (gateway + 3 nodes), run example queries, shut down."""
    from mpc_gateway.cli.demo import run_demo

    with reporting_errors():
        code = run_demo(
            rows=rows, seed=seed, workdir=workdir, as_json=as_json, institutions=institutions
        )
        raise typer.Exit(code)
