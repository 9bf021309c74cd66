"""The demo with two banks and a data-less helper node: every result equals the plaintext
over the two banks' pooled rows, and the helper's own policy and witness log take part."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_demo import run_demo_json

pytestmark = pytest.mark.e2e


def test_demo_of_two_institutions_and_a_helper_matches_the_two_banks_plaintext(
    tmp_path: Path,
) -> None:
    everything, said = run_demo_json(tmp_path / "demo", "--institutions", "2")
    lines = [line for line in everything if "secure" in line]
    noisy = [line for line in everything if "noisy" in line]
    (budget,) = [line for line in everything if "budget_after" in line]
    assert len(lines) == 14  # 5 aggregates (one in SQL), 4 risk queries, 1 training, 4 screenings
    for line in lines:
        assert line["match"] is True, line["title"]
    assert {line["query"].get("computation") for line in lines} == {
        None,
        "score",
        "concentration",
        "quantile",
        "train",
        "check",
    }
    assert len(noisy) == 2 and all(line["match"] for line in noisy)  # within two banks' noise
    assert budget["refusal"]["rule"] == "privacy.budget"

    assert "bank-a, bank-b and helper" in said and "broker-c" not in said
    assert "helper's policy does not mention column 'region'" in " ".join(said.split())
    assert "node helper witness log" in said  # the auditor verifies the helper's log too
