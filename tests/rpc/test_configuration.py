"""Configurations that do not fit together are configuration errors: exit 5, FAILED_PRECONDITION."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mpc_gateway.audit.evidence import DispatchEvidence, log_origin
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.memory import InMemoryAuditLog
from mpc_gateway.cli.app import app
from mpc_gateway.computations import AggregateRequest
from mpc_gateway.computations.aggregate import build_plan, parse_aggregate
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.node.service import Node
from mpc_gateway.orders import ExecutionOrder, Party
from mpc_gateway.pki import Identity, load_layout, load_signing_key
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.settings import NodeSettings, load_settings

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


def _order_for(
    schema: DatasetSchema, files: ConsortiumFiles
) -> tuple[bytes, bytes, DispatchEvidence]:
    """An order the gateway signed and logged, for a plan built on ``schema``."""
    layout = load_layout(files.pki_dir)
    key = load_signing_key(
        layout.signing_paths(Identity("gateway", "gateway", layout.trust_domain))[1]
    )
    plan = build_plan(
        AggregateRequest(
            dataset="loans", aggregates=(parse_aggregate("count"),), purpose="risk monitoring"
        ),
        schema,
        "analyst/alice",
    )
    now = int(time.time() * 1000)
    node_config = {n: load_settings(NodeSettings, files.node_config(n)) for n in files.nodes}
    parties = tuple(
        Party(index=i, name=n, host="127.0.0.1", port=node_config[n].mpc_port)
        for i, n in enumerate(files.nodes)
    )
    order = ExecutionOrder(
        query_id="q1",
        plan=plan,
        plan_hash=plan.plan_hash,
        epoch=now,
        sequence=0,
        parties=parties,
        issued_at_ms=now,
        deadline_ms=now + 5000,
    )
    log = InMemoryAuditLog(
        origin=log_origin(layout.trust_domain, "gateway", "gateway"),
        signing_key=key,
        clock=lambda: now,
    )
    entry = log.append(
        AuditEvent(
            kind="query.submitted",
            actor="analyst/alice",
            query_id="q1",
            timestamp_ms=now,
            details={"plan_hash": plan.plan_hash},
        )
    )
    evidence = DispatchEvidence(
        log.entry(entry.index),
        entry.index,
        tuple(log.inclusion_proof(entry.index)),
        log.signed_tree_head(),
    )
    data = order.canonical()
    return data, key.sign(data), evidence


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
        data, signature, evidence = _order_for(other, files)
        with pytest.raises(
            ConfigurationError, match="schema of 'loans' differs from the gateway's"
        ):
            node.execute(GATEWAY, data, signature, evidence, 5.0)
        assert (
            ConfigurationError.exit_code == 5 and ConfigurationError.status == "FAILED_PRECONDITION"
        )
        data, signature, evidence = _order_for(
            schema, files
        )  # the same order on its schema: no refusal
        assert (
            node.witness.log.events(kind="order.refused")[-1]
            .event.details["reason"]
            .startswith("bank-a")
        )
    finally:
        node.close()
