"""The analyst's commands: datasets, a joint query, how a query that needed approval stands."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    IDENTITY_OPTION,
    PKI_OPTION,
    ExplainOption,
    JsonOption,
    PurposeOption,
    client_from_env,
    console,
    explain_or_run,
    print_released,
    reporting_errors,
)

__all__ = ["datasets", "dataset_table", "query", "status", "budget"]


def datasets(
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """List the joint datasets and their schemas (never data)."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        found = client.datasets()
    if as_json:
        print(json.dumps(found, indent=2))
        return
    for dataset in found:
        console.print(dataset_table(dataset))


def dataset_table(dataset: dict[str, Any]) -> Table:
    """One dataset's schema as a table: columns, kinds, domains or bounds."""
    nodes = ", ".join(dataset["nodes"])
    table = Table(title=f"{dataset['name']}: {dataset['description']} (nodes: {nodes})")
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
    return table


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
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="categorical column; repeat or comma-separate for a cross tab"),
    ] = None,
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Run a joint query as an analyst (or, with --explain, see what would happen)."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        explain_or_run(
            client,
            "aggregate",
            dataset,
            explain=explain,
            as_json=as_json,
            where=where,
            purpose=purpose,
            aggregates=agg,
            group_by=group_by,
        )


def status(
    query_id: Annotated[str, typer.Argument(help="the id a query waiting for approval was given")],
    wait: Annotated[
        float, typer.Option(help="seconds to wait for the result (0: just look)")
    ] = 0.0,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Where a query that needed approval stands; its result once it ran."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        if wait > 0:
            result = client.wait(query_id, timeout_s=wait)
        else:
            found = client.status(query_id)
            if found.result is None:
                waiting = (
                    f", waiting for {', '.join(found.waiting_for)}" if found.waiting_for else ""
                )
                reason = f": {found.reason}" if found.reason else ""
                console.print(f"query {query_id}: {found.state}{waiting}{reason}")
                raise typer.Exit(0 if found.state in ("waiting", "running") else 3)
            result = found.result
    print_released(result, as_json)


def budget(
    dataset: Annotated[str, typer.Option(help="one dataset (default: every dataset)")] = "",
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Your privacy budgets on datasets under differential privacy: spent and left (zCDP ρ)."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        lines = client.budget(dataset)
    if as_json:
        print(json.dumps(lines, indent=2))
        return
    if not lines:
        console.print("no dataset you can query is under differential privacy")
        return
    table = Table(title=f"privacy budgets of {identity} (zCDP ρ)")
    for header in ("dataset", "set by", "for", "period", "budget", "spent", "left"):
        table.add_column(
            header, justify="right" if header in ("budget", "spent", "left") else "left"
        )
    for line in lines:
        table.add_row(
            line["dataset"],
            line["owner"],
            line["who"],
            f"{line['period']} ({line['current']})",
            line["rho"],
            line["spent"],
            line["left"],
        )
    console.print(table)
