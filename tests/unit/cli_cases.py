"""Shared by the CLI tests: a throwaway consortium PKI, input files, and running ``mpcgw``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mpc_gateway.cli.app import app
from mpc_gateway.pki import ConsortiumLayout, init_consortium

NODES = ("bank-a", "bank-b", "broker-c")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    return init_consortium(tmp_path_factory.mktemp("pki"), nodes=NODES, analysts=("alice",))


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _invoke(*args: str, input: str | None = None) -> Any:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args), input=input)
    # errors end in a message and an exit code, never in a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _pki(layout: ConsortiumLayout) -> tuple[str, str]:
    return "--pki", str(layout.root)
