"""What every CLI command shares: consoles, exit codes, the client from options."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import Released
from mpc_gateway.errors import GatewayError

__all__ = [
    "console",
    "err_console",
    "reporting_errors",
    "client_from_env",
    "setup_logging",
    "print_explanation",
    "print_released",
    "explain_or_run",
    "GATEWAY_OPTION",
    "PKI_OPTION",
    "IDENTITY_OPTION",
]

console = Console()
err_console = Console(stderr=True)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Print a domain error as one line and exit with its class's code; no traceback."""
    try:
        yield
    except GatewayError as err:
        err_console.print(f"[bold red]error:[/] {escape(err.public_message)}", highlight=False)
        raise typer.Exit(err.exit_code) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


PurposeOption = Annotated[
    str, typer.Option(help="why you ask: a purpose the policies allow (audited)")
]
ExplainOption = Annotated[
    bool, typer.Option("--explain", help="dry run: rules, approvals, disclosure")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]

GATEWAY_OPTION = typer.Option(
    os.environ.get("MPCGW_GATEWAY", "127.0.0.1:50050"),
    "--gateway",
    help="gateway address (env MPCGW_GATEWAY)",
)
PKI_OPTION = typer.Option(
    os.environ.get("MPCGW_PKI", "var/pki"), "--pki", help="consortium PKI directory (env MPCGW_PKI)"
)
IDENTITY_OPTION = typer.Option(
    os.environ.get("MPCGW_IDENTITY", "analyst/alice"),
    "--identity",
    help="role/name of your certificate (env MPCGW_IDENTITY)",
)


def client_from_env(gateway: str, pki: str, identity: str) -> GatewayClient:
    return GatewayClient.from_pki(pki, identity, gateway)


def print_explanation(report: dict[str, Any]) -> None:
    """A dry run's report: the verdict, then every section as JSON."""
    verdict = "[green]would run[/]" if report["allowed"] else "[red]would be refused[/]"
    console.print(f"[bold]{verdict}[/] (plan {report['plan_hash'][:16]}…)")
    privacy = report.get("privacy")
    if privacy:
        noise = ", ".join(f"{n['release']} σ {n['scale']}" for n in privacy["noise"])
        tightest = min(privacy["budgets"], key=lambda b: Decimal(b["left"]), default=None)
        left = f"; tightest budget left: ρ {tightest['left']}" if tightest else ""
        console.print(
            f"[bold]cost[/]: ρ {privacy['rho']} (zCDP; ε {privacy['epsilon']} at δ "
            f"{privacy['delta']}); noise: {noise or 'none'}{left}",
            highlight=False,
        )
    for key, value in report.items():
        if key not in ("allowed", "plan_hash"):
            console.print(f"[bold]{key}[/]: {json.dumps(value, indent=2)}", highlight=False)


def print_released(released: Released, as_json: bool = False, title: str = "") -> None:
    """What a query released: JSON, or a table (and notes) a person reads."""
    if as_json:
        print(json.dumps(released.to_json(), default=str, indent=2))
        return
    shown = released.outcome.display(released.request)
    about = f", {shown.about}" if shown.about else ""
    heading = title or (
        f"{released.dataset}: {released.kind} (query {released.query_id[:8]}{about}, "
        f"{released.total_ms:.1f} ms)"
    )
    if shown.columns:
        table = Table(title=heading, min_width=len(heading) + 2)  # the title on one line
        for i, column in enumerate(shown.columns):
            table.add_column(column, justify="left" if i == 0 else "right", overflow="fold")
        for row in shown.rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
    else:
        console.print(Text(heading, style="bold"))
    for note in shown.notes:
        console.print(Text(note))


def explain_or_run(
    client: GatewayClient, kind: str, dataset: str, *, explain: bool, as_json: bool, **fields: Any
) -> Released:
    """Run computation ``kind``, print what it released and return it; or print its dry run."""
    if explain:
        report = client.explain(kind, dataset, **fields)
        print(json.dumps(report, indent=2)) if as_json else print_explanation(report)
        raise typer.Exit(0 if report["allowed"] else 3)
    released = client.run(kind, dataset, **fields)
    print_released(released, as_json)
    return released
