"""``mpcgw demo``: the whole path on one machine, narrated."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.table import Table

from mpc_gateway.cli.app import _fmt
from mpc_gateway.cli.common import console, err_console
from mpc_gateway.client import GatewayClient
from mpc_gateway.demo import EXAMPLE_QUERIES, Checked, run_checked
from mpc_gateway.errors import GatewayError
from mpc_gateway.localnet import LocalConsortium, prepare, schema_path
from mpc_gateway.query.results import is_close
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
        table.add_row(group, *(_fmt(v) for v in values), "[green]=[/]" if same else "[red]≠[/]")
    if checked.query.where:
        table.caption = f"where {checked.query.where}"
    console.print(table)


def run_demo(*, rows: int, seed: int, workdir: Path, as_json: bool) -> int:
    say = err_console.print if as_json else console.print
    started = time.perf_counter()
    say(f"[bold]Preparing[/] a consortium in {workdir}: PKI, {rows:,} loans per institution...")
    files = prepare(workdir, rows=rows, seed=seed)
    columns = dict(load_schema(schema_path()).columns)
    with LocalConsortium(files) as consortium:
        say(
            f"[bold]Started[/] gateway and nodes {', '.join(files.nodes)} "
            f"({time.perf_counter() - started:.1f} s); running example queries"
        )
        with GatewayClient.from_pki(
            files.pki_dir, "analyst/alice", files.gateway_address
        ) as client:
            results = [run_checked(client, files, q, columns) for q in EXAMPLE_QUERIES]
            try:
                client.query("loans", ["mean:salary"], purpose="demo: a refused query")
            except GatewayError as err:
                say(
                    f"[bold]Refused as it should be:[/] mean:salary -> {type(err).__name__}: {err.public_message}"
                )
        del consortium
    for checked in results:
        if as_json:
            print(json.dumps(checked.as_json()))
        else:
            _show(checked)
    ok = all(c.matches for c in results)
    say(
        f"[bold]{'All' if ok else 'NOT all'} {len(results)} secure results match the plaintext answers[/]; "
        f"stopped cleanly after {time.perf_counter() - started:.1f} s"
    )
    return 0 if ok else 6
