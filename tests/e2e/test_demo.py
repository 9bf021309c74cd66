"""The demo, run as a user runs it: every query's result checked against plaintext, in JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_json_gives_each_query_and_both_results_as_data(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc_gateway.cli",
            "demo",
            "--rows",
            "2000",
            "--json",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 8  # 4 aggregate queries, 4 risk queries
    for line in lines:
        assert {"title", "query", "secure", "plaintext", "match"} <= set(line)
        assert isinstance(line["query"], dict)
        for result in (line["secure"], line["plaintext"]):
            assert isinstance(result, list | dict), line["title"]  # data, not prose
        assert line["match"] is True, line["title"]  # means and deviations: within 1e-9
    risk = [line for line in lines if "computation" in line["query"]]
    assert {line["query"]["computation"] for line in risk} == {"score", "concentration", "quantile"}
    assert all(line["secure"] == line["plaintext"] for line in risk)
