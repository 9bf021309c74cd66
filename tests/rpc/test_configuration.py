"""Configurations that do not fit together are configuration errors: exit 5, FAILED_PRECONDITION."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mpc_gateway.cli.app import app
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.service import Node
from mpc_gateway.pki import Identity
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.settings import NodeSettings, load_settings
from tests.forged import count_plan, forge

GATEWAY = Identity("gateway", "gateway")


def _with(config: Path, tmp_path: Path, old: str, new: str) -> Path:
    changed = tmp_path / config.name
    changed.write_text(config.read_text().replace(old, new))
    return changed


def test_a_node_serving_another_institutions_policy_exits_5(
    files: ConsortiumFiles, tmp_path: Path
) -> None:
    config = files.node_config("bank-a")
    wrong = _with(config, tmp_path, str(files.policy("bank-a")), str(files.policy("bank-b")))
    result = CliRunner().invoke(app, ["node", "serve", "--config", str(wrong)])
    assert result.exit_code == 5, result.output
    assert "is 'bank-b''s policy, not 'bank-a''s" in " ".join(result.output.split())


def test_a_gateway_given_a_nodes_policy_owned_by_another_exits_5(
    files: ConsortiumFiles, tmp_path: Path
) -> None:
    shutil.copytree(files.pki_dir, tmp_path / "pki")
    config = _with(
        files.gateway_config, tmp_path, str(files.policy("broker-c")), str(files.policy("bank-b"))
    )
    config.write_text(config.read_text().replace(str(files.pki_dir), str(tmp_path / "pki")))
    config.write_text(
        config.read_text().replace(str(files.root / "audit.sqlite"), str(tmp_path / "a.sqlite"))
    )
    result = CliRunner().invoke(app, ["gateway", "serve", "--config", str(config)])
    assert result.exit_code == 5, result.output
    assert "published for node broker-c" in " ".join(result.output.split())


def test_a_node_whose_schema_differs_from_the_gateways_refuses_as_a_configuration_error(
    files: ConsortiumFiles, tmp_path: Path
) -> None:
    settings = load_settings(NodeSettings, files.node_config("bank-a"))
    node = Node(
        settings.model_copy(
            update={"audit_db": tmp_path / "w.sqlite", "usage_db": tmp_path / "u.sqlite"}
        )
    )
    try:
        schema = load_schema(schema_path())
        other = DatasetSchema.model_validate(
            {**schema.model_dump(), "description": "another version"}
        )
        assert other.schema_hash != schema.schema_hash
        forged = forge(files, count_plan(other))
        with pytest.raises(
            ConfigurationError, match="schema of 'loans' differs from the gateway's"
        ):
            node.execute(GATEWAY, forged.data, forged.signature, forged.evidence, 5.0)
        refused = node.witness.log.events(kind="order.refused")[-1].event
        assert "differs from the gateway's" in str(refused.details["reason"])  # in its witness log
    finally:
        node.close()


@pytest.mark.parametrize("service", ["gateway", "node"])
def test_a_service_on_a_damaged_audit_log_file_exits_5_saying_so(
    service: str, files: ConsortiumFiles, tmp_path: Path
) -> None:
    config = files.gateway_config if service == "gateway" else files.node_config("bank-a")
    log = files.root / "audit.sqlite" if service == "gateway" else config.parent / "audit.sqlite"
    damaged = tmp_path / "audit.sqlite"
    damaged.write_bytes(b"SQLite format 3\x00" + bytes(4096))  # the header, then nothing valid
    changed = _with(config, tmp_path, str(log), str(damaged))
    result = CliRunner().invoke(app, [service, "serve", "--config", str(changed)])
    assert result.exit_code == 5, result.output
    assert f"the audit log file {damaged} is damaged" in " ".join(result.output.split())
