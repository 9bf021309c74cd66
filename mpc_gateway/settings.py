"""Settings of a node and of the gateway: a TOML file, overridable from the environment.

Precedence, lowest first: the TOML file, environment variables
(``MPCGW_NODE_*`` / ``MPCGW_GATEWAY_*``, e.g. ``MPCGW_NODE_LISTEN``), secrets
files. Relative paths in a file are taken relative to that file, so a config
works from any working directory. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mpc_gateway.errors import ConfigurationError

__all__ = ["DatasetSource", "NodeLink", "NodeSettings", "GatewaySettings", "load_settings"]

_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class DatasetSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_file: Path = Field(alias="schema")
    source: Path | None = None  # nodes only: the institution's CSV/Parquet file


class NodeLink(BaseModel):
    """How the gateway reaches one node (gRPC) and how peers reach its MPC port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    address: str  # host:port of the node's gRPC service
    mpc_host: str
    mpc_port: int = Field(ge=1, le=65535)
    policy: Path  # the policy the node's institution published (the node enforces its own copy)


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # first wins: secrets over environment over the TOML file (passed as init kwargs)
        return (file_secret_settings, env_settings, init_settings)


class NodeSettings(_Settings):
    model_config = SettingsConfigDict(env_prefix="MPCGW_NODE_", frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    listen: str = "127.0.0.1:50051"
    mpc_port: int = Field(ge=1, le=65535)
    pki_dir: Path
    gateway: str = Field(default="gateway", pattern=_NAME)
    audit_db: Path = Path("audit.sqlite")  # this node's witness log
    policy: Path  # this institution's policy file
    usage_db: Path = Path("usage.sqlite")  # daily query counts and privacy budgets spent
    scan_threads: int = Field(default=1, ge=1, le=256)  # DuckDB threads for local pre-aggregation
    datasets: dict[str, DatasetSource]
    log_level: str = "INFO"


class GatewaySettings(_Settings):
    model_config = SettingsConfigDict(env_prefix="MPCGW_GATEWAY_", frozen=True, extra="forbid")

    name: str = Field(default="gateway", pattern=_NAME)
    listen: str = "127.0.0.1:50050"
    pki_dir: Path
    audit_db: Path = Path("audit.sqlite")
    consortium_policy: Path
    usage_db: Path = Path("usage.sqlite")  # daily query counts and privacy budgets spent
    query_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    risk_timeout_s: float = Field(default=600.0, gt=0, le=3600)  # per MPC job of a risk query
    models_dir: Path = Path("models")  # registered scoring models (public records, sealed weights)
    nodes: tuple[NodeLink, ...] = Field(min_length=3)
    datasets: dict[str, DatasetSource]
    log_level: str = "INFO"


S = TypeVar("S", NodeSettings, GatewaySettings)


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() else (base / value).resolve()
    if isinstance(value, BaseModel):
        updates = {k: _resolve(getattr(value, k), base) for k in type(value).model_fields}
        return value.model_copy(update=updates)
    if isinstance(value, dict):
        return {k: _resolve(v, base) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_resolve(v, base) for v in value)
    return value


def load_settings(kind: type[S], path: Path) -> S:
    """Settings of ``kind`` from the TOML file at ``path`` (and the environment)."""
    try:
        data = tomllib.loads(path.read_text())
        settings = kind(**data)
    except FileNotFoundError as err:
        raise ConfigurationError(f"config file {path} does not exist") from err
    except (tomllib.TOMLDecodeError, ValidationError) as err:
        raise ConfigurationError(f"config file {path} is invalid: {err}") from err
    return _resolve(settings, path.resolve().parent)  # type: ignore[no-any-return]
