"""``mpcgw sql``: one SQL statement, or (with none) an interactive shell like ``psql``'s.

The shell reads a statement over as many lines as it takes, up to a ``;``, keeps a
readline history (``~/.mpcgw_history`` or ``--history-file``), and takes ``\\d`` (list
the datasets), ``\\d NAME`` (describe one), ``\\?`` (help) and ``\\q`` (quit; so does
end of input). An error is printed and the shell goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    IDENTITY_OPTION,
    PKI_OPTION,
    client_from_env,
    console,
    err_console,
    print_explanation,
    print_released,
    reporting_errors,
)
from mpc_gateway.cli.query import dataset_table
from mpc_gateway.client import GatewayClient
from mpc_gateway.errors import GatewayError

__all__ = ["sql", "Shell"]

HELP = """\\d          list the datasets
\\d NAME     describe a dataset: columns, kinds, domains, bounds
\\?          this help
\\q          quit (so does Ctrl-D)
Statements end with ; and may span lines (docs/sql.md)."""


def _run(client: GatewayClient, statement: str, purpose: str, explain: bool, as_json: bool) -> int:
    """Run (or explain) one statement and print it; the exit code it means."""
    if explain:
        report = client.explain_sql(statement, purpose=purpose)
        print(json.dumps(report, indent=2)) if as_json else print_explanation(report)
        return 0 if report["allowed"] else 3
    print_released(client.sql(statement, purpose=purpose), as_json)
    return 0


class Shell:
    """The interactive loop: statements up to ``;``, backslash commands, history."""

    def __init__(self, client: GatewayClient, purpose: str, as_json: bool, history: Path):
        self.client, self.purpose, self.as_json, self.history = client, purpose, as_json, history

    def describe(self, name: str) -> None:
        found = self.client.datasets()
        if not name:
            table = Table(title="datasets")
            for header in ("name", "description", "nodes"):
                table.add_column(header)
            for dataset in found:
                table.add_row(dataset["name"], dataset["description"], ", ".join(dataset["nodes"]))
            console.print(table)
            return
        match = [d for d in found if d["name"] == name]
        if not match:
            known = ", ".join(d["name"] for d in found)
            err_console.print(f"[bold red]error:[/] no dataset {escape(name)!r}; datasets: {known}")
            return
        console.print(dataset_table(match[0]))

    def command(self, line: str) -> bool:
        """A backslash command; False to quit."""
        word, _, rest = line[1:].strip().partition(" ")
        if word == "q":
            return False
        if word == "d":
            self.describe(rest.strip().rstrip(";"))
        elif word == "?":
            console.print(escape(HELP), highlight=False)
        else:
            err_console.print(f"[bold red]error:[/] unknown command \\{escape(word)}; \\? for help")
        return True

    def statement(self, text: str) -> None:
        try:
            _run(self.client, text, self.purpose, explain=False, as_json=self.as_json)
        except GatewayError as err:
            err_console.print(f"[bold red]error:[/] {escape(err.public_message)}", highlight=False)

    def loop(self) -> None:
        import readline

        self.history.parent.mkdir(parents=True, exist_ok=True)
        if self.history.exists():
            readline.read_history_file(self.history)
        console.print("mpcgw sql: statements end with ;  \\? for help, \\q to quit")
        buffer: list[str] = []
        try:
            while True:
                try:
                    line = input("mpcgw> " if not buffer else "  ...> ")
                except KeyboardInterrupt:
                    buffer = []
                    print()
                    continue
                if not buffer and line.strip().startswith("\\"):
                    if not self.command(line.strip()):
                        break
                    continue
                if line.strip():
                    buffer.append(line)
                if buffer and line.rstrip().endswith(";"):
                    self.statement("\n".join(buffer).rstrip().rstrip(";"))
                    buffer = []
        except EOFError:
            print()
        finally:
            readline.write_history_file(self.history)


def sql(
    statement: Annotated[
        str, typer.Argument(help="a SELECT statement (docs/sql.md); none: the shell")
    ] = "",
    purpose: Annotated[
        str, typer.Option(help="why you ask: a purpose the policies allow (audited)")
    ] = "",
    explain: Annotated[
        bool, typer.Option("--explain", help="dry run: rules, approvals, disclosure")
    ] = False,
    history_file: Annotated[Path, typer.Option(help="the shell's history")] = Path.home()
    / ".mpcgw_history",
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run a SQL statement as an analyst, or with none, open the interactive SQL shell."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        if statement.strip():
            raise typer.Exit(_run(client, statement, purpose, explain, as_json))
        Shell(client, purpose, as_json, history_file).loop()
