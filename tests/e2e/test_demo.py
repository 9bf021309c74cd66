"""The demo, run as a user runs it: every query's result checked against plaintext, in JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def run_demo_json(workdir: Path, *options: str) -> tuple[list[dict[str, Any]], str]:
    """``mpcgw demo --json`` as a user runs it: one JSON object per line, and what it said."""
    done = subprocess.run(
        [sys.executable, "-m", "mpc_gateway.cli", "demo", "--rows", "2000", "--json"]
        + ["--workdir", str(workdir), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_demo_json_gives_each_query_and_both_results_as_data(tmp_path: Path) -> None:
    everything, _ = run_demo_json(tmp_path / "demo")
    noisy = [line for line in everything if "noisy" in line]
    (budget,) = [line for line in everything if "budget_after" in line]
    lines = [line for line in everything if "secure" in line]
    assert len(lines) == 14  # 5 aggregates (one in SQL), 4 risk queries, 1 training, 4 screenings
    for line in lines:
        assert {"title", "query", "secure", "plaintext", "match"} <= set(line)
        assert isinstance(line["query"], dict)
        for result in (line["secure"], line["plaintext"]):
            assert isinstance(result, list | dict), line["title"]  # data, not prose
        assert line["match"] is True, line["title"]  # means and deviations: within 1e-9
    risk = [line for line in lines if "computation" in line["query"]]
    computations = {line["query"]["computation"] for line in risk}
    assert computations == {"score", "concentration", "quantile", "train", "check"}
    assert all(line["secure"] == line["plaintext"] for line in risk)
    (trained,) = [line for line in risk if line["query"]["computation"] == "train"]
    assert 0 < trained["secure"]["applicants"]["above"] < 200  # the batch the model scored

    # differential privacy on loans_dp: noisy beside exact, within the declared noise
    assert len(noisy) == 2
    for line in noisy:
        assert line["query"]["dataset"] == "loans_dp" and line["match"] is True, line["title"]
        assert line["noisy"] != line["exact"]  # the noise is really there
        assert line["within_noise"] and all(c["gap"] <= c["allowed"] for c in line["within_noise"])
        assert line["cost"]["rho"] == "0.05" and line["cost"]["noise"]  # the dry run's cost
    # the budget is spent query by query, then a query is refused for exceeding it
    refusal = budget["refusal"]
    assert refusal["rule"] == "privacy.budget" and "analyst/alice" in refusal["message"]
    spent = {(b["owner"], b["holder"]): b for b in budget["budget_after"]}
    assert spent[("bank-a", "analyst/alice")]["left"] in ("0", "0.00")
    assert budget["queries_until_refused"] == 8  # 0.5 a day at 0.05 a query, 2 spent before
