"""What every CLI command shares: consoles, exit codes, the client from options."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mpc_gateway.client import GatewayClient
from mpc_gateway.errors import (
    ApprovalMissingError,
    BudgetExhaustedError,
    ConfigurationError,
    DeadlineExceededError,
    DisclosureRiskError,
    GatewayError,
    IntegrityError,
    InvalidQueryError,
    NodeUnavailableError,
    PolicyDeniedError,
    ProtocolAbortedError,
    UnauthenticatedError,
)

__all__ = [
    "format_value",
    "console",
    "err_console",
    "exit_code",
    "reporting_errors",
    "client_from_env",
    "setup_logging",
]

console = Console()
err_console = Console(stderr=True)

_EXIT_CODES: tuple[tuple[type[GatewayError], int], ...] = (
    (InvalidQueryError, 2),
    (UnauthenticatedError, 3),
    (IntegrityError, 3),
    (PolicyDeniedError, 3),
    (ApprovalMissingError, 3),
    (DisclosureRiskError, 3),
    (BudgetExhaustedError, 3),
    (NodeUnavailableError, 4),
    (ProtocolAbortedError, 4),
    (DeadlineExceededError, 4),
    (ConfigurationError, 5),
)


def exit_code(err: GatewayError) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(err, cls):
            return code
    return 1


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Print a domain error as one line and exit with its code; no traceback."""
    try:
        yield
    except GatewayError as err:
        err_console.print(f"[bold red]error:[/] {escape(err.public_message)}", highlight=False)
        raise typer.Exit(exit_code(err)) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


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


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"
    return f"{value:,}"


def print_explanation(report: dict[str, Any]) -> None:
    """A dry run's report: the verdict, then every section as JSON."""
    verdict = "[green]would run[/]" if report["allowed"] else "[red]would be refused[/]"
    console.print(f"[bold]{verdict}[/] (plan {report['plan_hash'][:16]}…)")
    for key, value in report.items():
        if key not in ("allowed", "plan_hash"):
            console.print(f"[bold]{key}[/]: {json.dumps(value, indent=2)}", highlight=False)
