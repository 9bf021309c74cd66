"""Read a policy file and check it against the schemas and the computations' vocabulary."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.policy.declaration import Vocabulary
from mpc_gateway.policy.models import ColumnPolicy, Policy, RiskPolicy
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn, NumericColumn

__all__ = ["load_policy", "check_against_schema"]


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _explain(err: ValidationError) -> str:
    return "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in err.errors())


def _misuse(column: Any, policy: ColumnPolicy) -> str | None:
    if isinstance(column, KeyColumn) and policy.uses:
        return "is an entity key and cannot be aggregated, filtered on or grouped by"
    if isinstance(column, CategoricalColumn) and "aggregate" in policy.uses:
        return "is categorical and cannot be aggregated (count needs no column)"
    if isinstance(column, NumericColumn) and "group_by" in policy.uses:
        return "is numeric and cannot be grouped by"
    return None


def _check_vocabulary(where: str, risk: RiskPolicy, vocabulary: Vocabulary) -> None:
    for output in risk.outputs:
        if output not in vocabulary.outputs:
            known = ", ".join(sorted(vocabulary.outputs))
            raise ConfigurationError(
                f"{where}.outputs: unknown risk output {output!r}; known: {known}"
            )
    for feature in risk.features:
        if feature not in vocabulary.features:
            known = ", ".join(sorted(vocabulary.features))
            raise ConfigurationError(
                f"{where}.features: unknown risk feature {feature!r}; known: {known}"
            )


def check_against_schema(
    policy: Policy, schemas: Mapping[str, DatasetSchema], vocabulary: Vocabulary | None = None
) -> None:
    """Raise ConfigurationError if ``policy`` names a dataset, column, output or feature
    that the schemas (or the computations' ``vocabulary``) lack.

    A policy that mentions an unknown column would silently deny (default deny);
    checking at load time turns a typo into an error instead.
    """
    for dataset, rules in policy.datasets.items():
        if dataset not in schemas:
            raise ConfigurationError(
                f"{policy.owner}'s policy names dataset {dataset!r}, which has no schema"
            )
        columns = schemas[dataset].columns
        for name, column_policy in rules.columns.items():
            where = f"datasets.{dataset}.columns.{name}"
            if name not in columns:
                raise ConfigurationError(f"{where}: dataset {dataset!r} has no column {name!r}")
            problem = _misuse(columns[name], column_policy)
            if problem:
                raise ConfigurationError(f"{where}: column {name!r} {problem}")
        for name in rules.risk.columns if rules.risk else ():
            if not isinstance(columns.get(name), NumericColumn):
                raise ConfigurationError(
                    f"datasets.{dataset}.risk.columns: {name!r} is not a numeric column"
                )
        for name in rules.risk.keys if rules.risk else ():
            if not isinstance(columns.get(name), KeyColumn):
                raise ConfigurationError(
                    f"datasets.{dataset}.risk.keys: {name!r} is not an entity key column"
                )
        if rules.risk is not None and vocabulary is not None:
            _check_vocabulary(f"datasets.{dataset}.risk", rules.risk, vocabulary)


def load_policy(
    path: Path,
    schemas: Mapping[str, DatasetSchema] | None = None,
    vocabulary: Vocabulary | None = None,
) -> Policy:
    """Read a policy TOML file; any mistake is a ConfigurationError naming the field.

    With ``schemas`` (dataset name to schema), also :func:`check_against_schema`,
    with the risk outputs and features the computations know (``vocabulary``).
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"policy file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"policy file {path} is not valid TOML: {err}") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise ConfigurationError(f"policy file {path} is invalid: {_explain(err)}") from None
    if schemas is not None:
        try:
            check_against_schema(policy, schemas, vocabulary)
        except ConfigurationError as err:
            raise ConfigurationError(f"policy file {path}: {err.public_message}") from None
    return policy
