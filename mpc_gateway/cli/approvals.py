"""The approver's commands: the queries waiting for you, and your signed decision on one."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table

from mpc_gateway.cli.common import GATEWAY_OPTION, PKI_OPTION, console, reporting_errors
from mpc_gateway.client import ApproverClient

__all__ = ["approvals_app", "approve", "reject"]

APPROVER_OPTION = typer.Option(
    "approver/carol", "--identity", envvar="MPCGW_APPROVER", help="role/name of your certificate"
)
approvals_app = typer.Typer(
    help="Queries waiting for approval (approver role).", no_args_is_help=True
)


@approvals_app.command("list")
def approvals_list(
    gateway: str = GATEWAY_OPTION, pki: str = PKI_OPTION, identity: str = APPROVER_OPTION
) -> None:
    """The queries waiting for your decision, with the exact plan you would sign."""
    with reporting_errors(), ApproverClient(pki, identity, gateway) as approver:
        found = approver.pending()
    table = Table(title=f"queries waiting for {identity}")
    for header in ("query", "analyst", "purpose", "plan hash", "plan", "waiting for"):
        table.add_column(header)
    for q in found:
        table.add_row(
            q.query_id,
            q.analyst,
            q.purpose,
            q.plan_hash[:16] + "…",
            q.plan_json,
            ", ".join(q.waiting_for),
        )
    console.print(table)


def _decide(
    query_id: str,
    decision: Literal["approve", "reject"],
    reason: str,
    gateway: str,
    pki: str,
    identity: str,
) -> None:
    with reporting_errors(), ApproverClient(pki, identity, gateway) as approver:
        state = approver.decide(query_id, decision, reason)
    console.print(f"query {query_id}: {decision}d by {identity}; it is now {state}")


def approve(
    query_id: str,
    reason: Annotated[str, typer.Option(help="why (signed and audited)")],
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = APPROVER_OPTION,
) -> None:
    """Approve one exact query (its plan hash), signed with your key."""
    _decide(query_id, "approve", reason, gateway, pki, identity)


def reject(
    query_id: str,
    reason: Annotated[str, typer.Option(help="why (signed, audited, shown to the analyst)")],
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = APPROVER_OPTION,
) -> None:
    """Reject one exact query, signed with your key."""
    _decide(query_id, "reject", reason, gateway, pki, identity)
