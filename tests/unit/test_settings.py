"""Node settings: a TOML file, relative paths, environment overrides, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.settings import NodeSettings, load_settings

NODE_TOML = """\
name = "bank-a"
listen = "127.0.0.1:6001"
mpc_port = 7001
mpc_long_port = 7101
pki_dir = "pki"
policy = "policy.toml"

[datasets.loans]
schema = "../schemas/loans.toml"
source = "data/bank-a.parquet"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MPCGW_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node config in tmp/conf, loaded from another working directory."""
    path = tmp_path / "conf" / "node.toml"
    path.parent.mkdir()
    path.write_text(NODE_TOML)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return path


def error_for(path: Path) -> str:
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings(NodeSettings, path)
    return excinfo.value.public_message


def test_node_settings_are_read_from_the_file(config: Path) -> None:
    settings = load_settings(NodeSettings, config)

    assert (settings.name, settings.listen, settings.mpc_port) == ("bank-a", "127.0.0.1:6001", 7001)
    assert settings.gateway == "gateway"  # default


def test_relative_paths_are_resolved_against_the_file_not_the_working_directory(
    config: Path, tmp_path: Path
) -> None:
    settings = load_settings(NodeSettings, config)

    assert settings.pki_dir == (tmp_path / "conf" / "pki").resolve()
    loans = settings.datasets["loans"]
    assert loans.schema_file == (tmp_path / "schemas" / "loans.toml").resolve()
    assert loans.source == (tmp_path / "conf" / "data" / "bank-a.parquet").resolve()


def test_absolute_paths_are_kept(config: Path, tmp_path: Path) -> None:
    pki = tmp_path / "absolute" / "pki"
    config.write_text(NODE_TOML.replace('pki_dir = "pki"', f'pki_dir = "{pki.as_posix()}"'))

    assert load_settings(NodeSettings, config).pki_dir == pki


def test_environment_overrides_the_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPCGW_NODE_LISTEN", "0.0.0.0:7443")

    settings = load_settings(NodeSettings, config)

    assert settings.listen == "0.0.0.0:7443"
    assert settings.mpc_port == 7001


def test_environment_fills_a_key_the_file_omits(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.write_text(NODE_TOML.replace("mpc_port = 7001\n", ""))
    monkeypatch.setenv("MPCGW_NODE_MPC_PORT", "7999")

    assert load_settings(NodeSettings, config).mpc_port == 7999


def test_unknown_key_is_refused_naming_it(config: Path) -> None:
    config.write_text(NODE_TOML.replace("listen =", "lissten ="))

    message = error_for(config)

    assert "lissten" in message
    assert str(config) in message


def test_unknown_key_in_a_dataset_is_refused_naming_it(config: Path) -> None:
    config.write_text(NODE_TOML + 'sorce = "typo.csv"\n')

    assert "sorce" in error_for(config)


def test_invalid_value_is_refused_naming_the_field(config: Path) -> None:
    config.write_text(NODE_TOML.replace("mpc_port = 7001", "mpc_port = 0"))

    assert "mpc_port" in error_for(config)


def test_missing_required_key_is_refused_naming_it(config: Path) -> None:
    config.write_text(NODE_TOML.replace('pki_dir = "pki"\n', ""))

    assert "pki_dir" in error_for(config)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    message = error_for(path)

    assert str(path) in message
    assert "does not exist" in message


def test_malformed_toml_is_a_configuration_error(config: Path) -> None:
    config.write_text("name = \n")

    assert "is invalid" in error_for(config)


def test_a_node_has_one_mpc_port_per_lane(config: Path) -> None:
    settings = load_settings(NodeSettings, config)

    assert (settings.mpc_port_of("short"), settings.mpc_port_of("long")) == (7001, 7101)


def test_the_two_lanes_mpc_ports_must_differ(config: Path) -> None:
    config.write_text(NODE_TOML.replace("mpc_long_port = 7101", "mpc_long_port = 7001"))

    message = error_for(config)

    assert "mpc_long_port" in message and "must differ" in message


def test_a_config_without_the_long_lanes_port_is_refused_naming_it(config: Path) -> None:
    config.write_text(NODE_TOML.replace("mpc_long_port = 7101\n", ""))

    assert "mpc_long_port" in error_for(config)
