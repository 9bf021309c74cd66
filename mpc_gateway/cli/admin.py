"""The operator's commands: certificates, example data, serving a node or the gateway, health."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpc_gateway.cli.common import (
    IDENTITY_OPTION,
    PKI_OPTION,
    console,
    reporting_errors,
    setup_logging,
)
from mpc_gateway.errors import ConfigurationError

__all__ = ["pki_app", "node_app", "gateway_app", "data_app", "health_check"]

pki_app = typer.Typer(help="Consortium certificates.", no_args_is_help=True)
node_app = typer.Typer(help="Run an institution's node.", no_args_is_help=True)
gateway_app = typer.Typer(help="Run the gateway.", no_args_is_help=True)
data_app = typer.Typer(help="Synthetic example data.", no_args_is_help=True)


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
    server_host: Annotated[
        list[str],
        typer.Option(
            help="NAME=HOST: where the gateway or node NAME listens (repeat); its certificate "
            "then names these hosts (and NAME) instead of every --host"
        ),
    ] = [],  # noqa: B006
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
            host_names=_server_hosts(server_host, servers=("gateway", *node)),
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
    out: Annotated[
        Path, typer.Option(help="directory; writes OUT/<node>/loans.parquet and alerts.parquet")
    ] = Path("var/data"),
    node: Annotated[list[str], typer.Option(help="institution (repeat)")] = [
        "bank-a",
        "bank-b",
        "broker-c",
    ],  # noqa: B006
    rows: Annotated[int, typer.Option(min=1)] = 100_000,
    seed: int = 7,
    key_dir: Annotated[
        Path | None,
        typer.Option(
            help="the key shares `mpcgw oprf ceremony` wrote: persons are pseudonymised under "
            "that consortium's key (default: a key derived from the seed, synthetic data only)"
        ),
    ] = None,
) -> None:
    """Write a seeded synthetic loan book and alert book for each institution."""
    from mpc_gateway.devnet.synth import alert_book, key_pseudonyms, loan_book, write_loan_book
    from mpc_gateway.oprf import joint_key, load_key_share

    pseudonyms = None
    if key_dir is not None:
        with reporting_errors():
            shares = [load_key_share(p) for p in sorted(key_dir.glob("*.json"))]
            pseudonyms = key_pseudonyms(joint_key(shares))
    for name in node:
        book = loan_book(name, rows, seed, pseudonyms=pseudonyms)
        path = write_loan_book(out / name / "loans.parquet", book)
        alerts = write_loan_book(
            out / name / "alerts.parquet",
            alert_book(name, max(rows // 50, 200), seed, pseudonyms=pseudonyms),
        )
        console.print(f"{name}: {rows} rows -> {path}; alerts -> {alerts}")


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


def health_check(
    address: Annotated[str, typer.Argument(help="host:port of a gateway or node")],
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
) -> None:
    """Probe a server's standard gRPC health service over mutual TLS (exit 0 if SERVING)."""
    from mpc_gateway.client import HealthClient, tls_from_pki

    with reporting_errors(), HealthClient(address, tls_from_pki(pki, identity)) as probe:
        status = probe.status()
    console.print(f"{address}: {status}")
    raise typer.Exit(0 if status == "SERVING" else 4)


def _server_hosts(pairs: list[str], servers: tuple[str, ...]) -> dict[str, list[str]]:
    """``NAME=HOST`` pairs as each server's hosts; a name that is no server is refused."""
    hosts: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, where = pair.partition("=")
        if not sep or not name or not where:
            raise ConfigurationError(f"--server-host takes NAME=HOST, not {pair!r}")
        if name not in servers:
            raise ConfigurationError(
                f"--server-host names {name!r}: servers are {', '.join(servers)}"
            )
        hosts.setdefault(name, []).append(where)
    return hosts
