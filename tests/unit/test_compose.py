"""docker-compose.yml, the Dockerfile and the example configs agree with each other and the CLI.

There is no container engine where the tests run, so this reads the files and
checks every command, path and port they name against the real CLI and configs.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mpc_gateway.cli.app import app
from mpc_gateway.query.schema import load_schema
from mpc_gateway.settings import GatewaySettings, NodeSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
NODES = ("bank-a", "bank-b", "broker-c")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _invoke_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"`mpcgw {' '.join(args)}` is not a CLI command: {result.output}"


def _setup_commands(compose: dict) -> list[list[str]]:
    script = compose["services"]["setup"]["command"][0]
    parts = [p.strip(" ()") for p in script.replace("||", "&&").split("&&")]
    return [shlex.split(p) for p in parts if p.startswith("mpcgw")]


def test_every_service_runs_a_real_cli_command(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name == "setup":
            continue
        _invoke_help(list(service["command"][:2]))
        assert service["healthcheck"]["test"][:2] == ["CMD", "mpcgw"]
        _invoke_help(list(service["healthcheck"]["test"][2:3]))
    for command in _setup_commands(compose):
        _invoke_help(command[1:3])


def test_setup_issues_the_nodes_in_the_gateway_party_order(compose: dict) -> None:
    pki_init = next(c for c in _setup_commands(compose) if c[1:3] == ["pki", "init"])
    nodes = [pki_init[i + 1] for i, arg in enumerate(pki_init) if arg == "--node"]
    gateway = tomllib.loads((ROOT / "examples/compose/gateway.toml").read_text())
    assert nodes == [n["name"] for n in gateway["nodes"]] == list(NODES)
    assert "--out" in pki_init and pki_init[pki_init.index("--out") + 1] == "var/pki"


@pytest.mark.parametrize("node", NODES)
def test_node_service_matches_its_config(compose: dict, node: str, monkeypatch) -> None:
    service = compose["services"][node]
    config = ROOT / service["command"][service["command"].index("--config") + 1]
    settings = load_settings(NodeSettings, config)
    assert settings.name == node
    port = int(settings.listen.rsplit(":", 1)[1])
    assert service["environment"]["MPCGW_NODE_LISTEN"] == f"0.0.0.0:{port}"
    assert service["healthcheck"]["test"][3] == f"127.0.0.1:{port}"
    assert service["healthcheck"]["test"][-1] == f"node/{node}"
    assert settings.pki_dir == (ROOT / "var/pki").resolve()
    source = settings.datasets["loans"].source
    assert source == (ROOT / f"var/data/{node}/loans.parquet").resolve()
    load_schema(settings.datasets["loans"].schema_file)
    for compose_gateway in ("examples/compose/gateway.toml", "examples/gateway.toml"):
        gateway = load_settings(GatewaySettings, ROOT / compose_gateway)
        link = next(n for n in gateway.nodes if n.name == node)
        assert int(link.address.rsplit(":", 1)[1]) == port
        assert (link.mpc_port, link.mpc_long_port) == (settings.mpc_port, settings.mpc_long_port)


def test_compose_gateway_reaches_nodes_by_service_name(compose: dict) -> None:
    gateway = load_settings(GatewaySettings, ROOT / "examples/compose/gateway.toml")
    for link in gateway.nodes:
        assert link.address.split(":")[0] == link.mpc_host == link.name
        assert link.name in compose["services"]
    service = compose["services"]["gateway"]
    assert service["command"][-1] == "examples/compose/gateway.toml"
    assert set(service["depends_on"]) == set(NODES)
    assert service["ports"] == [f"127.0.0.1:{gateway.listen.rsplit(':', 1)[1]}:50050"]


def test_local_and_compose_gateway_configs_differ_only_in_hosts() -> None:
    local = load_settings(GatewaySettings, ROOT / "examples/gateway.toml")
    deployed = load_settings(GatewaySettings, ROOT / "examples/compose/gateway.toml")
    assert [(n.name, n.mpc_port, n.mpc_long_port) for n in local.nodes] == [
        (n.name, n.mpc_port, n.mpc_long_port) for n in deployed.nodes
    ]
    assert local.pki_dir == deployed.pki_dir and local.audit_db == deployed.audit_db
    assert local.datasets == deployed.datasets


def test_dockerfile_ships_what_the_services_read() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for path in ("mpc_gateway", "nodes", "examples", "pyproject.toml"):
        assert f"COPY {path}" in dockerfile or f" {path} " in dockerfile
    assert 'ENTRYPOINT ["mpcgw"]' in dockerfile
