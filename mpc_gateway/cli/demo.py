"""``mpcgw demo``: the whole path on one machine, narrated."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from rich.table import Table

from mpc_gateway.auditor import AuditorClient, AuditOutcome, certified_log_key, verify_consortium
from mpc_gateway.cli.common import console, err_console
from mpc_gateway.client import ApproverClient, GatewayClient, tls_from_pki
from mpc_gateway.computations.aggregate_result import AggregateOutcome, is_close
from mpc_gateway.computations.base import format_value
from mpc_gateway.devnet.demo import EXAMPLE_QUERIES, Checked, run_checked
from mpc_gateway.devnet.dp_demo import (
    DATASET,
    DP_QUERIES,
    SIGMAS,
    BudgetRun,
    NoisyCheck,
    run_noisy,
    spend_until_refused,
)
from mpc_gateway.devnet.localnet import (
    HELPER,
    TWO_BANKS,
    ConsortiumFiles,
    LocalConsortium,
    prepare,
    schema_path,
)
from mpc_gateway.devnet.risk_demo import (
    RiskCheck,
    batch,
    plain_dict,
    run_risk_checks,
    scores_model,
)
from mpc_gateway.devnet.screening_demo import run_screening
from mpc_gateway.devnet.train_demo import training_check
from mpc_gateway.errors import ApprovalMissingError, GatewayError
from mpc_gateway.pki import Identity, load_layout
from mpc_gateway.query.schema import load_schema

__all__ = ["run_demo"]


def _show(checked: Checked) -> None:
    secure = checked.secure
    verdict = "[green]matches plaintext[/]" if checked.matches else "[red]DIFFERS from plaintext[/]"
    table = Table(title=f"{checked.query.title}  ({checked.seconds * 1000:.0f} ms, {verdict})")
    table.add_column(checked.query.group_by or "group")
    for column in secure.columns:
        table.add_column(column, justify="right")
    table.add_column("plaintext", justify="center")
    for (group, values), (_, plain) in zip(secure.rows, checked.plaintext):
        same = all(is_close(a, b) for a, b in zip(values, plain))
        mark = "[green]=[/]" if same else "[red]≠[/]"
        if group in secure.suppressed:
            why = ", ".join(secure.suppressed[group])
            shown = "withheld" if why == "withheld" else f"withheld: {why}"
            cells = [f"[dim]{shown}[/]"] + [""] * (len(values) - 1)
            table.add_row(group, *cells, mark)
        else:
            table.add_row(group, *(format_value(v) for v in values), mark)
    if checked.query.sql:
        table.caption = checked.query.sql
    elif checked.query.where:
        table.caption = f"where {checked.query.where}"
    console.print(table)


def _show_noisy(checked: NoisyCheck) -> None:
    outcome = checked.outcome
    verdict = (
        f"[green]within {SIGMAS}σ of the exact answer[/]"
        if checked.matches
        else "[red]OUTSIDE the declared noise[/]"
    )
    table = Table(title=f"{checked.query.title}  ({verdict})")
    table.add_column(checked.query.group_by or "group")
    for column in outcome.columns:
        table.add_column(f"{column} noisy / exact", justify="right")
    exact = dict(checked.exact)
    for group, values in outcome.rows:
        if group in outcome.suppressed:
            table.add_row(group, "[dim]withheld[/]", *[""] * (len(values) - 1))
            continue
        table.add_row(
            group,
            *(f"{format_value(v)} / {format_value(e)}" for v, e in zip(values, exact[group])),
        )
    noise = ", ".join(
        f"{n['release']} σ {n['scale']} per institution" for n in checked.cost["noise"]
    )
    table.caption = f"noise drawn inside the MPC: {noise}; cost ρ {checked.cost['rho']}"
    console.print(table)


def _run_private(
    files: ConsortiumFiles, say: Callable[[str], None], as_json: bool
) -> tuple[list[NoisyCheck], BudgetRun]:
    """On loans_dp: the dry run's cost, noisy results beside exact ones, a budget spent."""
    with GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, purpose="risk monitoring"
    ) as client:
        checks = [run_noisy(client, files, query) for query in DP_QUERIES]
        cost = checks[0].cost
        say(
            f"[bold]Dry run on {DATASET}[/] (differential privacy): the query costs ρ "
            f"{cost['rho']} (zCDP; ε {cost['epsilon']} at δ {cost['delta']}); tightest budget "
            f"left: ρ {min(Decimal(b['left']) for b in cost['budgets'])}"
        )
        for checked in checks:
            print(json.dumps(checked.as_json()), flush=True) if as_json else _show_noisy(checked)
        spent = spend_until_refused(client)
    if as_json:
        print(json.dumps(spent.as_json()), flush=True)
    lines = ", ".join(
        f"{b['owner']} for {b['who']}: {b['spent']} of {b['rho']} per {b['period']}"
        for b in spent.after
    )
    say(f"[bold]Budgets spent[/] by analyst/alice on {DATASET}: {lines}")
    if spent.refusal is not None:
        say(
            f"[bold]Refused after {spent.ran} more noisy counts:[/] "
            f"{type(spent.refusal).__name__}: {spent.refusal.public_message}"
        )
    return checks, spent


def _audit(files: ConsortiumFiles) -> AuditOutcome:
    """What an auditor runs: `mpcgw audit verify` over the gateway and every node's witness log."""
    tls = tls_from_pki(files.pki_dir, "auditor/audrey")
    layout = load_layout(files.pki_dir)
    gateway = Identity("gateway", "gateway", layout.trust_domain)
    with AuditorClient(files.gateway_address, tls) as client:
        log = client.export(gateway)
    nodes = {}
    for name, address in files.node_addresses.items():
        owner = Identity("node", name, layout.trust_domain)
        with AuditorClient(address, tls) as client:
            nodes[name] = (client.export(owner), certified_log_key(files.pki_dir, owner))
    return verify_consortium(log, certified_log_key(files.pki_dir, gateway), nodes)


REFUSED = (
    (["mean:salary"], None, "no such column"),
    (["count"], "region", "broker-c's policy does not share region"),
    (["max:exposure"], None, "bank-b's policy allows no single-loan figures"),
)
HELPER_REFUSED = (["count"], "region", f"{HELPER}'s policy does not help with region")
"""With two banks and a helper: the helper's own policy refuses what both banks allow."""


def _approval_flow(files: ConsortiumFiles, say: Callable[[str], None]) -> bool:
    """A supervisory query waits for bank-b's approver, who signs its plan hash; then it runs."""
    with GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, purpose="supervisory review"
    ) as client:
        try:
            client.query("loans", ["count", "mean:defaulted"], group_by="sector")
            return False
        except ApprovalMissingError as err:
            say(f"[bold]Waiting for approval:[/] {err.public_message}")
            query_id = str(err.query_id)
        with ApproverClient(files.pki_dir, "approver/carol", files.gateway_address) as carol:
            state = carol.decide(query_id, "approve", "quarterly supervisory review")
        say(f"[bold]approver/carol approved[/] query {query_id} (signed its plan hash); {state}")
        outcome = client.wait(query_id, timeout_s=60).outcome
    assert isinstance(outcome, AggregateOutcome)
    say(
        f"[bold]Released after approval:[/] {len(outcome.rows)} sectors, "
        f"{len(outcome.suppressed)} withheld by output controls"
    )
    return True


NOT_YET = (
    "a trained model kept secret-shared among the nodes (its coefficients are released), "
    "and scoring entities with it in `mpcgw risk score` (scoring models take entity features, "
    "not loan rows)"
)
RISK_REFUSED = "raw scores: bank-a's policy releases only decision bits or counts"


def _show_risk(checks: list[RiskCheck], say: Callable[[str], None], as_json: bool) -> None:
    for check in checks:
        if as_json:
            print(json.dumps(plain_dict(check)), flush=True)
            continue
        verdict = (
            "[green]matches plaintext[/]" if check.matches else "[red]DIFFERS from plaintext[/]"
        )
        say(
            f"[bold]{check.title}[/] ({check.seconds * 1000:.0f} ms, {verdict})\n"
            f"  released: {check.said}\n  plaintext: {check.expected}"
        )


def _run_screening(
    files: ConsortiumFiles, say: Callable[[str], None], as_json: bool
) -> list[RiskCheck]:
    """Real-time checks as analyst/alice: counterparties and persons against every alert book."""
    with GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, purpose="aml screening"
    ) as client:
        checks = run_screening(client, files)
    _show_risk(checks, say, as_json)
    return checks


def _run_risk(files: ConsortiumFiles, say: Callable[[str], None], as_json: bool) -> list[RiskCheck]:
    """Risk queries as analyst/alice: a batch credit score, a concentration index, a percentile."""
    with GatewayClient.from_pki(
        files.pki_dir,
        "analyst/alice",
        files.gateway_address,
        purpose="risk monitoring",
        timeout_s=300,
    ) as client:
        checks = [*run_risk_checks(client, files), training_check(client, files)]
        _show_risk(checks, say, as_json)
        say(f"[bold]Not yet:[/] {NOT_YET}")
        try:
            client.score(
                "loans", client.register_model(scores_model("analyst/alice")), batch(files)
            )
        except GatewayError as err:
            say(f"[bold]Refused ({RISK_REFUSED}):[/] {type(err).__name__}: {err.public_message}")
    return checks


def _run_queries(
    files: ConsortiumFiles, say: Callable[[str], None], as_json: bool
) -> list[Checked]:
    columns = dict(load_schema(schema_path()).columns)
    results = []
    with GatewayClient.from_pki(
        files.pki_dir, "analyst/alice", files.gateway_address, purpose="risk monitoring"
    ) as client:
        for query in EXAMPLE_QUERIES:
            checked = run_checked(client, files, query, columns)
            results.append(checked)
            if as_json:
                print(json.dumps(checked.as_json()), flush=True)
            else:
                _show(checked)
        refused = REFUSED if not files.helpers else (REFUSED[0], HELPER_REFUSED, REFUSED[2])
        for aggregates, group_by, why in refused:
            try:
                client.query("loans", aggregates, group_by=group_by)
            except GatewayError as err:
                say(f"[bold]Refused ({why}):[/] {type(err).__name__}: {err.public_message}")
    return results


def _prepare(workdir: Path, rows: int, seed: int, institutions: int) -> ConsortiumFiles:
    """Three institutions (two banks and a broker), or two banks and a data-less helper."""
    if institutions == 2:
        return prepare(
            workdir, nodes=TWO_BANKS, helpers=(HELPER,), rows=rows, seed=seed, policies="examples"
        )
    return prepare(workdir, rows=rows, seed=seed, policies="examples")


def run_demo(*, rows: int, seed: int, workdir: Path, as_json: bool, institutions: int = 3) -> int:
    say = err_console.print if as_json else console.print
    started = time.perf_counter()
    say(f"[bold]Preparing[/] a consortium in {workdir}: PKI, {rows:,} loans per institution...")
    files = _prepare(workdir, rows, seed, institutions)
    helped = f" and {', '.join(files.helpers)} (a helper node, no data)" if files.helpers else ""
    with LocalConsortium(files):
        say(
            f"[bold]Started[/] gateway, nodes {', '.join(files.institutions)}{helped} as separate "
            f"processes ({time.perf_counter() - started:.1f} s); running example queries as "
            "analyst/alice, each checked against the plaintext over the institutions' pooled rows"
        )
        results = _run_queries(files, say, as_json)
        noisy, spent = _run_private(files, say, as_json)
        risk = _run_risk(files, say, as_json) + _run_screening(files, say, as_json)
        approved = _approval_flow(files, say)
        say("[bold]Auditor audrey verifies[/] the gateway's log and every node's witness log:")
        audit = _audit(files)
        for line in audit.checked:
            say(f"  [green]✓[/] {line}")
        for warning in audit.warnings:
            say(f"  [yellow]![/] {warning}")
        for problem in audit.problems:
            say(f"  [bold red]✗[/] {problem}")
    ok = (
        all(c.matches for c in results)
        and all(c.matches for c in risk)
        and all(c.matches for c in noisy)
        and spent.refusal is not None
    )
    say(
        f"[bold]{'All' if ok else 'NOT all'} {len(results) + len(risk)} exact results match "
        f"the plaintext answers, {len(noisy)} noisy ones lie within their declared noise, "
        f"a spent budget refused; "
        f"audit log {'verified' if audit.ok else 'FAILED verification'}[/]; "
        f"stopped cleanly after {time.perf_counter() - started:.1f} s"
    )
    return 0 if ok and audit.ok and approved else 6
