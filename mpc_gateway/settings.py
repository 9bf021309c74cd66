"""Settings of a node and of the gateway: a TOML file, overridable from the environment.

Precedence, lowest first: the TOML file, environment variables
(``MPCGW_NODE_*`` / ``MPCGW_GATEWAY_*``, e.g. ``MPCGW_NODE_LISTEN``), secrets
files. Relative paths in a file are taken relative to that file, so a config
works from any working directory. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.lanes import Lane

__all__ = [
    "DatasetSource",
    "NodeRole",
    "PostgresSource",
    "NodeLink",
    "NodeSettings",
    "GatewaySettings",
    "load_settings",
]

_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"

NodeRole = Literal["institution", "helper"]
"""An institution's node holds its data; a helper node holds none and only takes part in the MPC
(with two institutions, so that m = 3 and t = 1: docs/helper.md)."""


class PostgresSource(BaseModel):
    """A dataset in PostgreSQL: a table or view, and where the connection string is kept.

    The connection string (libpq keywords or a ``postgresql://`` URI, with the
    credentials) never sits in the config: it is read from the environment
    variable ``dsn_env`` or from the file ``dsn_file`` (readable by the node only).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")
    dsn_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    dsn_file: Path | None = None

    @model_validator(mode="after")
    def _one_dsn(self) -> PostgresSource:
        if (self.dsn_env is None) == (self.dsn_file is None):
            raise ValueError("give the connection string in exactly one of dsn_env, dsn_file")
        return self

    def dsn(self) -> str:
        """The connection string; ConfigurationError saying where it was looked for."""
        if self.dsn_env is not None:
            value = os.environ.get(self.dsn_env, "").strip()
            where = f"environment variable {self.dsn_env}"
        else:
            assert self.dsn_file is not None
            try:
                value = self.dsn_file.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise ConfigurationError(f"cannot read {self.dsn_file}: {err.strerror}") from None
            where = str(self.dsn_file)
        if not value:
            raise ConfigurationError(f"no PostgreSQL connection string in {where}")
        return value


class DatasetSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_file: Path = Field(alias="schema")
    source: Path | None = None  # nodes only: the institution's CSV/TSV/Parquet or DuckDB file
    table: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    postgres: PostgresSource | None = None  # nodes only: or its table in PostgreSQL

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSource:
        if self.source is not None and self.postgres is not None:
            raise ValueError("a dataset has one source: a file (source) or postgres, not both")
        if self.table is not None and self.postgres is not None:
            raise ValueError("`table` is for a DuckDB database file; postgres names its own")
        return self


def _lane_port(lane: Lane, short: int, long: int) -> int:
    """The MPC port of ``lane`` among a node's two (README, "MPC ports"); they must differ."""
    if short == long:
        raise ValueError(
            "a node has one MPC port per lane, mpc_port (short queries) and mpc_long_port "
            f"(long jobs), and they must differ: both are {short}"
        )
    return short if lane == "short" else long


class NodeLink(BaseModel):
    """How the gateway reaches one node (gRPC) and how peers reach its MPC ports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    address: str  # host:port of the node's gRPC service
    mpc_host: str
    mpc_port: int = Field(ge=1, le=65535)  # the short lane's MPC session
    mpc_long_port: int = Field(ge=1, le=65535)  # the long lane's
    policy: Path  # the policy the node's institution published (the node enforces its own copy)
    role: NodeRole = "institution"  # what the dry run tells analysts; the node's own config decides

    @model_validator(mode="after")
    def _ports_per_lane(self) -> NodeLink:
        _lane_port("short", self.mpc_port, self.mpc_long_port)  # checks they differ
        return self

    def mpc_port_of(self, lane: Lane) -> int:
        return _lane_port(lane, self.mpc_port, self.mpc_long_port)


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
    mpc_port: int = Field(ge=1, le=65535)  # the short lane's MPC session
    mpc_long_port: int = Field(ge=1, le=65535)  # the long lane's
    pki_dir: Path
    gateway: str = Field(default="gateway", pattern=_NAME)
    audit_db: Path = Path("audit.sqlite")  # this node's witness log
    policy: Path  # this institution's policy file
    usage_db: Path = Path("usage.sqlite")  # daily query counts and privacy budgets spent
    # this node's share of the persons' pseudonym key (mpcgw oprf); none: it evaluates none
    pseudonym_key_share: Path | None = None
    scan_threads: int = Field(default=1, ge=1, le=256)  # DuckDB threads for local pre-aggregation
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)  # SIGTERM: orders may finish
    role: NodeRole = "institution"  # a helper lists its datasets' schemas only, and no source
    datasets: dict[str, DatasetSource]
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _ports_per_lane(self) -> NodeSettings:
        _lane_port("short", self.mpc_port, self.mpc_long_port)  # checks they differ
        return self

    def mpc_port_of(self, lane: Lane) -> int:
        return _lane_port(lane, self.mpc_port, self.mpc_long_port)

    @model_validator(mode="after")
    def _helper_holds_no_data(self) -> NodeSettings:
        if self.role != "helper":
            return self
        for name, src in self.datasets.items():
            named = [k for k in type(src).model_fields if k != "schema_file" and getattr(src, k)]
            if named:
                raise ValueError(
                    f"a helper node holds no data: dataset {name!r} names {', '.join(named)}"
                )
        return self


class GatewaySettings(_Settings):
    model_config = SettingsConfigDict(env_prefix="MPCGW_GATEWAY_", frozen=True, extra="forbid")

    name: str = Field(default="gateway", pattern=_NAME)
    listen: str = "127.0.0.1:50050"
    pki_dir: Path
    audit_db: Path = Path("audit.sqlite")
    consortium_policy: Path
    usage_db: Path = Path("usage.sqlite")  # daily query counts and privacy budgets spent
    # queries waiting for approval, and outcomes a restart must still report; default: a
    # queries.sqlite beside audit_db (gateway/pending.py says why it is a file of its own)
    queries_db: Path | None = None
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)  # SIGTERM: queries may finish
    query_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    risk_timeout_s: float = Field(default=600.0, gt=0, le=3600)  # per MPC job of a risk query
    # short queries queued at the same moment go to the nodes as one batch of at most this
    # many, with at most batches_in_flight batches under way (gateway/batching.py); releases
    # queued together share a checkpoint (gateway/relay.py); 1: every query alone, both times
    batch_max: int = Field(default=16, ge=1, le=32)  # 32: orders.MAX_BATCH
    batches_in_flight: int = Field(default=2, ge=1, le=32)
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
