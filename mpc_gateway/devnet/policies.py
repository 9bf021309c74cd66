"""The example datasets and the open policies a local consortium can run under.

:func:`schema_path` finds a packaged example schema; :func:`open_policy` writes a
policy that lets every analyst use every column of the example datasets in every
way, with no output controls (``loans_dp`` under differential privacy), for tests
and benchmarks. The example institutions' own policies are files in ``nodes/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from mpc_gateway.computations import VOCABULARY
from mpc_gateway.query.schema import CategoricalColumn, KeyColumn, NumericColumn, load_schema

__all__ = ["DATASETS", "OPEN_PURPOSES", "OPEN_PRIVACY", "open_policy", "schema_path"]

DATASETS = ("loans", "loans_dp", "alerts")
"""The example datasets: the loan books, the same rows shared only under DP, the alerts."""

OPEN_PURPOSES = ("risk monitoring", "supervisory review", "testing", "benchmark")

OPEN_PRIVACY = 'rho_per_query = 0.05\nrho_per_analyst = 100\nperiod = "day"\n'
"""An open policy's privacy section for ``loans_dp``: noise on every query, a wide budget."""


def schema_path(dataset: str = "loans") -> Path:
    """The packaged schema of an example dataset (``loans``, ``loans_dp`` or ``alerts``)."""
    return Path(str(resources.files("mpc_gateway.schemas") / f"{dataset}.toml"))


def open_policy(owner: str, purposes: Sequence[str] = OPEN_PURPOSES) -> str:
    """A policy letting every analyst use every column in every way, with no output controls.

    Risk computations too: every output and feature, anyone's models, batches of any
    size; and training on every column (the nodes may learn the iterates). ``loans_dp``
    the same way, but under differential privacy (no min/max there, no training).
    Persons' pseudonyms for every analyst and node, ten million a day.
    """
    listed = ", ".join(f'"{p}"' for p in purposes)
    sections = [f'version = 1\nowner = "{owner}"\n']
    for dataset in DATASETS:
        schema = load_schema(schema_path(dataset))
        private = dataset == "loans_dp"
        extremes = "" if private else ', "min", "max"'
        columns = []
        for name, column in schema.columns.items():
            if isinstance(column, NumericColumn):
                columns.append(
                    f'{name} = {{ uses = ["aggregate", "filter"], aggregates = '
                    f'["sum", "mean", "var", "stddev"{extremes}] }}'
                )
            elif isinstance(column, CategoricalColumn):
                columns.append(f'{name} = {{ uses = ["group_by", "filter"] }}')
        numeric = [n for n, c in schema.columns.items() if isinstance(c, NumericColumn)]
        keys = [n for n, c in schema.columns.items() if isinstance(c, KeyColumn)]
        outputs = ["count", "histogram"] if private else sorted(VOCABULARY.outputs)
        features = sorted(VOCABULARY.features)
        risk = (
            f"outputs = {_toml_list(outputs)}\nfeatures = {_toml_list(features)}\n"
            f'model_owners = ["analyst/*"]\nkeys = {_toml_list(keys)}\n'
            f"columns = {_toml_list(numeric)}\nmin_batch = 1\n"
        )
        categorical = [n for n, c in schema.columns.items() if isinstance(c, CategoricalColumn)]
        training = (
            f'\n[datasets.{dataset}.training]\nprincipals = ["analyst/*"]\n'
            f"labels = {_toml_list(numeric)}\nfeatures = {_toml_list(numeric + categorical)}\n"
            "iterates_to_nodes = true\nmin_rows = 1\nmin_institutions = 1\n"
        )
        sections.append(
            f'[datasets.{dataset}]\nprincipals = ["analyst/*"]\npurposes = [{listed}]\n\n'
            f"[datasets.{dataset}.columns]\n" + "\n".join(columns) + "\n\n"
            f"[datasets.{dataset}.risk]\n{risk}"
            + (f"\n[datasets.{dataset}.privacy]\n{OPEN_PRIVACY}" if private else training)
        )
    sections.append(
        f'[pseudonyms]\nprincipals = ["analyst/*", "node/*"]\npurposes = [{listed}]\n'
        "max_per_day = 10000000\n"
    )
    return "\n".join(sections)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"
