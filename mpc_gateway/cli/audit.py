"""``mpcgw audit``: the auditor's commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape
from rich.table import Table

from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.auditor import (
    AuditorClient,
    AuditOutcome,
    LogCopy,
    certified_log_key,
    check_proof,
    load_state,
    save_state,
    verify_consortium,
)
from mpc_gateway.cli.common import GATEWAY_OPTION, PKI_OPTION, console, reporting_errors
from mpc_gateway.client import tls_from_pki
from mpc_gateway.errors import ConfigurationError, IntegrityError
from mpc_gateway.pki import Identity, load_layout

audit_app = typer.Typer(
    help="Review and verify the audit logs (auditor role).", no_args_is_help=True
)

AUDITOR_OPTION = typer.Option(
    "auditor/audrey", "--identity", envvar="MPCGW_AUDITOR", help="role/name of your certificate"
)
STATE_OPTION = typer.Option(
    Path.home() / ".mpcgw" / "audit-state.json",
    "--state",
    help="where the last verified tree head of every log is kept",
)


def _millis(text: str | None) -> int:
    if not text:
        return 0
    moment = datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


@audit_app.command("log")
def audit_log(
    kind: str = "",
    analyst: Annotated[str, typer.Option(help="actor, e.g. analyst/alice")] = "",
    dataset: str = "",
    decision: Annotated[str, typer.Option(help="allowed, refused, released, failed, ...")] = "",
    query_id: str = "",
    since: Annotated[str, typer.Option(help="ISO time, inclusive")] = "",
    until: Annotated[str, typer.Option(help="ISO time, exclusive")] = "",
    limit: int = 50,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = AUDITOR_OPTION,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List audit events, newest first (analysts see only their own queries)."""
    with reporting_errors(), AuditorClient(gateway, tls_from_pki(pki, identity)) as client:
        found = client.events(
            kind=kind,
            actor=analyst,
            dataset=dataset,
            decision=decision,
            query_id=query_id,
            since_ms=_millis(since),
            until_ms=_millis(until),
            limit=limit,
        )
    if as_json:
        for index, event in found:
            print(json.dumps({"index": index, **event.model_dump()}))
        return
    table = Table(title=f"audit log of {gateway} ({len(found)} events)")
    for header in ("#", "time (UTC)", "kind", "actor", "query", "decision", "details"):
        table.add_column(header)
    for index, event in found:
        when = datetime.fromtimestamp(event.timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        details = event.details.get("reason") or event.details.get("plan_hash") or ""
        table.add_row(
            str(index),
            when,
            event.kind,
            event.actor,
            (event.query_id or "")[:8],
            event.decision or "",
            str(details)[:60],
        )
    console.print(table)


def _node_logs(
    pki: Path, identity: str, nodes: list[str], node_dbs: list[str]
) -> dict[str, tuple[LogCopy, Ed25519PublicKey]]:
    trust = load_layout(pki).trust_domain
    found: dict[str, tuple[LogCopy, Ed25519PublicKey]] = {}
    for spec in node_dbs:
        name, _, path = spec.partition("=")
        if not path:
            raise ConfigurationError(f"--node-db takes NAME=PATH, not {spec!r}")
        owner = Identity("node", name, trust)
        found[name] = (LogCopy.from_file(owner, Path(path)), certified_log_key(pki, owner))
    for spec in nodes:
        name, _, address = spec.partition("=")
        if not address:
            raise ConfigurationError(f"--node takes NAME=HOST:PORT, not {spec!r}")
        owner = Identity("node", name, trust)
        with AuditorClient(address, tls_from_pki(pki, identity)) as client:
            found[name] = (client.export(owner), certified_log_key(pki, owner))
    return found


def _print_outcome(outcome: AuditOutcome, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.to_json(), indent=2))
        return
    for line in outcome.checked:
        console.print(f"[green]✓[/] {escape(line)}", highlight=False)
    for warning in outcome.warnings:
        console.print(f"[yellow]![/] {escape(warning)}", highlight=False)
    for problem in outcome.problems:
        console.print(f"[bold red]✗[/] {escape(problem)}", highlight=False)


@audit_app.command("verify")
def audit_verify(
    node: Annotated[
        list[str],
        typer.Option(help="NAME=HOST:PORT of a node whose witness log to cross-check (repeat)"),
    ] = [],
    db: Annotated[
        Path | None,
        typer.Option(help="verify this gateway SQLite file instead of asking the gateway"),
    ] = None,
    node_db: Annotated[
        list[str], typer.Option(help="NAME=PATH of a node's witness log file (repeat)")
    ] = [],
    gateway_name: Annotated[str, typer.Option(help="the gateway's identity name")] = "gateway",
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = AUDITOR_OPTION,
    state: Path = STATE_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="print the findings as JSON")] = False,
) -> None:
    """Recompute every tree, check every signed head and consistency with the heads you saw
    last (gateway and nodes), cross-check the node witness logs and reconcile their events
    with the gateway's; exits 3 with the reasons on any problem (state saved only if none)."""
    pki_dir = Path(pki)
    with reporting_errors():
        owner = Identity("gateway", gateway_name, load_layout(pki_dir).trust_domain)
        if db is not None:
            log = LogCopy.from_file(owner, db)
        else:
            with AuditorClient(gateway, tls_from_pki(pki_dir, identity)) as client:
                log = client.export(owner)
        key = certified_log_key(pki_dir, owner)
        nodes = _node_logs(pki_dir, identity, node, node_db)
        outcome = verify_consortium(log, key, nodes, load_state(state))
        _print_outcome(outcome, as_json)
        if not outcome.ok:
            raise IntegrityError(f"audit verification failed: {len(outcome.problems)} problem(s)")
        save_state(state, outcome.latest_notes)
    if not as_json:
        size = outcome.latest.size if outcome.latest else 0
        console.print(f"[bold green]verified[/]: the log is intact up to size {size}")


@audit_app.command("proof")
def audit_proof(
    index: Annotated[int, typer.Argument(help="entry index")],
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = AUDITOR_OPTION,
) -> None:
    """Print an inclusion proof of one entry as JSON that anyone can check (see check-proof)."""
    with reporting_errors(), AuditorClient(gateway, tls_from_pki(pki, identity)) as client:
        print(json.dumps(client.inclusion_proof(index), indent=2))


@audit_app.command("check-proof")
def audit_check_proof(
    file: Annotated[Path, typer.Argument(help="a proof printed by `mpcgw audit proof`")],
    gateway_name: str = "gateway",
    pki: str = PKI_OPTION,
) -> None:
    """Check an inclusion proof against the gateway key the consortium CA certified."""
    with reporting_errors():
        owner = Identity("gateway", gateway_name, load_layout(Path(pki)).trust_domain)
        event = check_proof(
            json.loads(file.read_text()),
            certified_log_key(Path(pki), owner),
            log_origin(owner.trust_domain, owner.role, owner.name),
        )
    about = f" (query {event.query_id})" if event.query_id else ""
    console.print(f"[green]✓[/] entry is in the signed log: {event.kind} by {event.actor}{about}")
