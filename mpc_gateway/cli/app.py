"""The ``mpcgw`` command tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mpc_gateway.cli.audit import audit_app
from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    IDENTITY_OPTION,
    PKI_OPTION,
    client_from_env,
    console,
    format_value,
    print_explanation,
    reporting_errors,
    setup_logging,
)
from mpc_gateway.cli.risk import model_app, print_risk_result, risk_app, risk_json
from mpc_gateway.client import ApproverClient, QueryResult, RiskResult

app = typer.Typer(
    help="mpc-gateway: joint statistics over institutions' data, computed with MPC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
pki_app = typer.Typer(help="Consortium certificates.", no_args_is_help=True)
node_app = typer.Typer(help="Run an institution's node.", no_args_is_help=True)
gateway_app = typer.Typer(help="Run the gateway.", no_args_is_help=True)
data_app = typer.Typer(help="Synthetic example data.", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
app.add_typer(node_app, name="node")
app.add_typer(gateway_app, name="gateway")
app.add_typer(data_app, name="data")
app.add_typer(audit_app, name="audit")
app.add_typer(model_app, name="model")
app.add_typer(risk_app, name="risk")


@pki_app.command("init")
def pki_init(
    out: Annotated[Path, typer.Option(help="directory to create")] = Path("var/pki"),
    node: Annotated[list[str], typer.Option(help="node name, in MPC party order (repeat)")] = [
        "bank-a",
        "bank-b",
        "broker-c",
    ],  # noqa: B006
    analyst: Annotated[list[str], typer.Option(help="analyst name (repeat)")] = ["alice"],  # noqa: B006
    auditor: Annotated[list[str], typer.Option(help="auditor name (repeat)")] = ["audrey"],  # noqa: B006
    approver: Annotated[list[str], typer.Option(help="approver name (repeat)")] = ["carol"],  # noqa: B006
    host: Annotated[
        list[str], typer.Option(help="extra DNS name or IP for server certificates")
    ] = ["localhost", "127.0.0.1"],  # noqa: B006
    overwrite: Annotated[bool, typer.Option(help="replace an existing CA")] = False,
) -> None:
    """Create a consortium CA and certificates for the gateway, nodes and people."""
    from mpc_gateway.pki import init_consortium

    with reporting_errors():
        layout = init_consortium(
            out,
            nodes=node,
            analysts=analyst,
            auditors=auditor,
            approvers=approver,
            hosts=host,
            overwrite=overwrite,
        )
    console.print(
        f"consortium PKI in {layout.root}: {len(layout.identities)} identities; "
        f"MPC parties: {', '.join(layout.nodes)}"
    )


@pki_app.command("issue")
def pki_issue(
    identity: Annotated[str, typer.Argument(help="role/name, e.g. analyst/bob")],
    out: Annotated[Path, typer.Option(help="consortium PKI directory")] = Path("var/pki"),
) -> None:
    """Issue one more identity with the consortium CA."""
    from mpc_gateway.pki import Identity, issue_identity, load_layout

    role, _, name = identity.partition("/")
    with reporting_errors():
        layout = load_layout(out)
        issue_identity(out, Identity(role, name, layout.trust_domain))
    console.print(f"issued {identity} in {out}")


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="directory; writes OUT/<node>/loans.parquet")] = Path(
        "var/data"
    ),
    node: Annotated[list[str], typer.Option(help="institution (repeat)")] = [
        "bank-a",
        "bank-b",
        "broker-c",
    ],  # noqa: B006
    rows: Annotated[int, typer.Option(min=1)] = 100_000,
    seed: int = 7,
    pseudonym_key: Annotated[
        Path | None,
        typer.Option(
            help="the institutions' shared person-pseudonym key file, created if missing "
            "(default: a key derived from the seed, for synthetic data only)"
        ),
    ] = None,
) -> None:
    """Write a seeded synthetic loan book for each institution."""
    from mpc_gateway.risk.pseudonym import create_key_file, load_key
    from mpc_gateway.synth import loan_book, write_loan_book

    key = None
    if pseudonym_key is not None:
        with reporting_errors():
            if not pseudonym_key.exists():
                pseudonym_key.parent.mkdir(parents=True, exist_ok=True)
                create_key_file(pseudonym_key)
            key = load_key(pseudonym_key)
    for name in node:
        book = loan_book(name, rows, seed, pseudonym_key=key)
        path = write_loan_book(out / name / "loans.parquet", book)
        console.print(f"{name}: {rows} rows -> {path}")


@node_app.command("serve")
def node_serve(config: Annotated[Path, typer.Option(help="node.toml")]) -> None:
    """Serve a node: its data, its keys, its MPC worker."""
    from mpc_gateway.node.server import serve_node
    from mpc_gateway.settings import NodeSettings, load_settings

    with reporting_errors():
        settings = load_settings(NodeSettings, config)
        setup_logging(settings.log_level)
        serve_node(settings)


@gateway_app.command("serve")
def gateway_serve(config: Annotated[Path, typer.Option(help="gateway.toml")]) -> None:
    """Serve the gateway: analyst API, ordering, dispatch, audit log."""
    from mpc_gateway.gateway.server import serve_gateway
    from mpc_gateway.settings import GatewaySettings, load_settings

    with reporting_errors():
        settings = load_settings(GatewaySettings, config)
        setup_logging(settings.log_level)
        serve_gateway(settings)


@app.command("datasets")
def datasets(
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the joint datasets and their schemas (never data)."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        found = client.datasets()
    if as_json:
        print(json.dumps(found, indent=2))
        return
    for dataset in found:
        table = Table(
            title=f"{dataset['name']}: {dataset['description']} (nodes: {', '.join(dataset['nodes'])})"
        )
        for header in ("column", "kind", "values", "description"):
            table.add_column(header)
        for column in dataset["columns"]:
            if column["kind"] == "categorical":
                values = ", ".join(column["domain"])
            elif column["kind"] == "numeric":
                values = f"[{column['min']}, {column['max']}], {column['scale']} decimals"
            else:
                values = "entity key (risk computations only, never released)"
            table.add_row(column["name"], column["kind"], values, column["description"])
        console.print(table)


def print_result(result: QueryResult, title: str = "") -> None:
    table = Table(
        title=title or f"{result.dataset} (query {result.query_id[:8]}, {result.total_ms:.1f} ms)"
    )
    table.add_column(result.group_by or "group")
    for column in result.columns:
        table.add_column(column, justify="right")
    if result.suppressed:
        table.add_column("withheld by")
    for group, values in result.rows:
        withheld = [", ".join(result.suppressed.get(group, ()))] if result.suppressed else []
        table.add_row(group, *(format_value(v) for v in values), *withheld)
    console.print(table)


@app.command("query")
def query(
    dataset: Annotated[str, typer.Option(help="joint dataset")] = "loans",
    agg: Annotated[
        list[str],
        typer.Option(
            "--agg",
            "-a",
            help="count, or FUNC:COLUMN with FUNC in sum, mean, var, stddev, min, max (repeat)",
        ),
    ] = ["count"],  # noqa: B006
    where: Annotated[
        str, typer.Option(help="filter, e.g. \"sector IN ('energy') AND exposure > 1000\"")
    ] = "",
    group_by: Annotated[str | None, typer.Option(help="categorical column")] = None,
    purpose: Annotated[
        str, typer.Option(help="why you ask: a purpose the policies allow (audited)")
    ] = "",
    explain: Annotated[
        bool, typer.Option("--explain", help="dry run: rules, approvals, disclosure")
    ] = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run a joint query as an analyst (or, with --explain, see what would happen)."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        if explain:
            report = client.explain(dataset, agg, where=where, group_by=group_by, purpose=purpose)
            print(json.dumps(report, indent=2)) if as_json else print_explanation(report)
            raise typer.Exit(0 if report["allowed"] else 3)
        result = client.query(dataset, agg, where=where, group_by=group_by, purpose=purpose)
    print_json(result) if as_json else print_result(result)


def print_json(result: QueryResult) -> None:
    print(json.dumps({"query_id": result.query_id, "plan_hash": result.plan_hash, "rows": result.records(),
                      "suppressed": result.suppressed, "total_ms": result.total_ms}, default=str, indent=2))  # fmt: skip


@app.command("status")
def status(
    query_id: Annotated[str, typer.Argument(help="the id a query waiting for approval was given")],
    wait: Annotated[
        float, typer.Option(help="seconds to wait for the result (0: just look)")
    ] = 0.0,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Where a query that needed approval stands; its result once it ran."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        result: QueryResult | RiskResult
        if wait > 0:
            result = client.wait(query_id, timeout_s=wait)
        else:
            found = client.status(query_id)
            if found.result is None and found.risk_result is None:
                waiting = (
                    f", waiting for {', '.join(found.waiting_for)}" if found.waiting_for else ""
                )
                reason = f": {found.reason}" if found.reason else ""
                console.print(f"query {query_id}: {found.state}{waiting}{reason}")
                raise typer.Exit(0 if found.state in ("waiting", "running") else 3)
            result = found.result or found.risk_result  # type: ignore[assignment]
    if isinstance(result, RiskResult):
        print(json.dumps(risk_json(result), indent=2)) if as_json else print_risk_result(result)
    else:
        print_json(result) if as_json else print_result(result)


APPROVER_OPTION = typer.Option(
    "approver/carol", "--identity", envvar="MPCGW_APPROVER", help="role/name of your certificate"
)
approvals_app = typer.Typer(
    help="Queries waiting for approval (approver role).", no_args_is_help=True
)
app.add_typer(approvals_app, name="approvals")


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
    query_id: str, decision: str, reason: str, gateway: str, pki: str, identity: str
) -> None:
    with reporting_errors(), ApproverClient(pki, identity, gateway) as approver:
        state = approver.decide(query_id, decision, reason)
    console.print(f"query {query_id}: {decision}d by {identity}; it is now {state}")


@app.command("approve")
def approve(
    query_id: str,
    reason: Annotated[str, typer.Option(help="why (signed and audited)")],
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = APPROVER_OPTION,
) -> None:
    """Approve one exact query (its plan hash), signed with your key."""
    _decide(query_id, "approve", reason, gateway, pki, identity)


@app.command("reject")
def reject(
    query_id: str,
    reason: Annotated[str, typer.Option(help="why (signed, audited, shown to the analyst)")],
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = APPROVER_OPTION,
) -> None:
    """Reject one exact query, signed with your key."""
    _decide(query_id, "reject", reason, gateway, pki, identity)


@app.command("demo")
def demo(
    rows: Annotated[int, typer.Option(min=1, help="loan rows per institution")] = 100_000,
    seed: int = 7,
    workdir: Annotated[Path, typer.Option(help="where PKI, data, configs and logs go")] = Path(
        "var/demo"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per query")] = False,
) -> None:
    """Bring up a local consortium (gateway + 3 nodes), run example queries, shut down."""
    from mpc_gateway.cli.demo import run_demo

    with reporting_errors():
        raise typer.Exit(run_demo(rows=rows, seed=seed, workdir=workdir, as_json=as_json))


@app.command("health")
def health_check(
    address: Annotated[str, typer.Argument(help="host:port of a gateway or node")],
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
) -> None:
    """Probe a server's standard gRPC health service over mutual TLS (exit 0 if SERVING)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from mpc_gateway.client import tls_from_pki
    from mpc_gateway.rpc.errors import error_from_rpc
    from mpc_gateway.rpc.server import client_channel

    with reporting_errors():
        with client_channel(address, tls_from_pki(pki, identity)) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
            except grpc.RpcError as err:
                raise error_from_rpc(err, address) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    console.print(f"{address}: {status}")
    raise typer.Exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 4)
