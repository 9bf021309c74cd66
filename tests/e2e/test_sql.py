"""SQL through the real consortium: the result, its presentation, and the interactive shell.

The cross tab asked in SQL is checked against the pooled plaintext by
``test_joint_statistics`` (it is one of the demo's example queries); here the
statement's plan is the flag query's, ORDER BY and LIMIT apply to the released
values only, and ``mpcgw sql`` with no statement is driven through a
pseudo-terminal the way an analyst types into it.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpc_gateway.client import GatewayClient
from mpc_gateway.devnet.localnet import LocalConsortium

pytestmark = pytest.mark.e2e
QUERIES_ONLY = True  # the session's shared consortium (conftest)

CROSS = (
    "SELECT sector, region, COUNT(*) AS n, SUM(exposure) FROM loans "
    "WHERE exposure > 1000 GROUP BY sector, region"
)


def test_sql_releases_the_flag_querys_plan_then_orders_and_limits_it(
    analyst: GatewayClient,
) -> None:
    flags = analyst.query(
        "loans", ["count", "sum:exposure"], where="exposure > 1000", group_by=["sector", "region"]
    )
    ordered = analyst.sql(CROSS + " ORDER BY n DESC, sector LIMIT 7")
    assert ordered.plan_hash == flags.plan_hash
    released = [r for r in flags.records() if r["count"] is not None]
    expected = sorted(released, key=lambda r: (-r["count"], r["sector"]))[:7]
    got = ordered.records()
    assert [(r["sector"], r["region"], r["n"]) for r in got] == [
        (r["sector"], r["region"], r["count"]) for r in expected
    ]
    assert [r["sum(exposure)"] for r in got] == [r["sum(exposure)"] for r in expected]
    assert list(ordered.to_pandas().columns) == ["n", "sum(exposure)"]  # keys are the index


def test_a_refused_statement_names_its_position(analyst: GatewayClient) -> None:
    with pytest.raises(Exception, match=r"SQL at line 1, column 8: SELECT \* would release"):
        analyst.sql("SELECT * FROM loans")


class Terminal:
    """The controller side of a pseudo-terminal: type a line, read until some text appears."""

    def __init__(self, fd: int) -> None:
        self.fd, self.output, self.mark = fd, "", 0

    def type(self, line: str) -> None:
        self.mark = len(self.output)  # what the shell prints from now on answers this line
        os.write(self.fd, line.encode() + b"\n")

    def expect(self, wanted: str, timeout_s: float = 120.0) -> None:
        """Wait for ``wanted`` in what the shell printed since the last line typed."""
        deadline = time.monotonic() + timeout_s
        while _unwrapped(wanted) not in _unwrapped(self.output[self.mark :]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {wanted!r} in the shell's output: {self.output[-2000:]}")
            ready, _, _ = select.select([self.fd], [], [], 1.0)
            if ready:
                self.output += os.read(self.fd, 65536).decode(errors="replace")


def _unwrapped(text: str) -> str:
    """Terminal output with the line breaks the terminal's width added taken out."""
    return " ".join(text.replace("\r\n", " ").split())


def test_the_interactive_shell_through_a_pseudo_terminal(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    files = consortium.files
    history = tmp_path / "history"
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "mpc_gateway.cli", "sql", "--purpose", "testing"]
    command += ["--gateway", files.gateway_address, "--pki", str(files.pki_dir)]
    command += ["--identity", "analyst/alice", "--history-file", str(history)]
    env = {**os.environ, "COLUMNS": "160", "TERM": "dumb"}
    shell = subprocess.Popen(
        command, stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True
    )
    os.close(terminal)
    term = Terminal(controller)
    try:
        term.expect("mpcgw> ")
        term.type("\\d")
        term.expect("loans")
        term.type("\\d loans")
        term.expect("AAA, AA, A, BBB")
        term.type("SELECT rating, COUNT(*) AS loans_n")
        term.expect("...> ")  # the statement goes on until a ;
        term.type("  FROM loans GROUP BY rating")
        term.type(" ORDER BY rating;")
        term.expect("loans_n")
        term.type("SELECT exposure FROM loans;")
        term.expect("SQL at line 1, column 8: 'exposure' outside GROUP BY would release")
        term.type("SELECT COUNT(*) AS after_error FROM loans;")  # the shell goes on
        term.expect("after_error")
        term.type("\\q")
        assert shell.wait(timeout=60) == 0
    finally:
        if shell.poll() is None:
            shell.kill()
        os.close(controller)
    assert "Traceback" not in term.output
    saved = history.read_text()
    assert "SELECT exposure FROM loans;" in saved and "ORDER BY rating;" in saved


def _mpcgw(consortium: LocalConsortium, *args: str) -> subprocess.CompletedProcess[str]:
    files = consortium.files
    common = ["--gateway", files.gateway_address, "--pki", str(files.pki_dir)]
    return subprocess.run(
        [sys.executable, "-m", "mpc_gateway.cli", *args, *common, "--purpose", "testing"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_one_statement_from_the_command_line_as_json_and_explained(
    consortium: LocalConsortium,
) -> None:
    statement = "SELECT region, rating, COUNT(*) FROM loans GROUP BY region, rating LIMIT 3"
    done = _mpcgw(consortium, "sql", statement, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["group_by"] == ["region", "rating"] and len(result["rows"]) == 3
    explained = _mpcgw(consortium, "sql", statement, "--explain", "--json")
    flags = _mpcgw(
        consortium,
        "query",
        "-a",
        "count",
        "--group-by",
        "region",
        "--group-by",
        "rating",
        "--explain",
        "--json",
    )
    assert json.loads(explained.stdout)["plan_hash"] == json.loads(flags.stdout)["plan_hash"]
    refused = _mpcgw(consortium, "sql", "SELECT exposure FROM loans")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "SQL at line 1, column 8" in " ".join(refused.stderr.split())
