"""``mpcgw risk``: joint risk scores and portfolio risk (docs/risk.md).

Each command checks its options, reads its key batch (if any) and runs one
computation through :mod:`mpc_gateway.client`; what it prints is the
computation's own display of what was released, nothing else.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    IDENTITY_OPTION,
    PKI_OPTION,
    ExplainOption,
    JsonOption,
    PurposeOption,
    client_from_env,
    explain_or_run,
    reporting_errors,
)
from mpc_gateway.cli.model import read_text
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.policy.models import MAX_BATCH

__all__ = ["risk_app", "read_keys"]

risk_app = typer.Typer(
    help="Joint risk scores and portfolio risk (see docs/risk.md).", no_args_is_help=True
)

DatasetOption = Annotated[str, typer.Option(help="joint dataset")]
WhereOption = Annotated[
    str, typer.Option(help="filter over rows, e.g. \"sector IN ('energy')\" (as for query)")
]
KeysOption = Annotated[
    str | None,
    typer.Option("--keys", help="file with one entity key per line ('-': stdin; # comments)"),
]
KeyColumnOption = Annotated[
    str, typer.Option(help="the dataset's entity key column (default counterparty_lei)")
]


class Hhi(StrEnum):
    none = "none"
    fraction = "fraction"
    flag = "flag"


class Interpolation(StrEnum):
    discrete = "discrete"
    linear = "linear"


def read_keys(source: str, limit: int = MAX_BATCH) -> list[str]:
    """Entity keys, one per line, from file ``source`` (``-``: stdin), in order.

    Surrounding whitespace is dropped; blank lines and lines starting with ``#``
    are skipped. Duplicates are kept (a scoring batch may repeat a key). More than
    ``limit`` keys is refused.
    """
    text = sys.stdin.read() if source == "-" else read_text(source, "keys file")
    where = "stdin" if source == "-" else source
    keys = [k for k in (line.strip() for line in text.splitlines()) if k and not k.startswith("#")]
    if not keys:
        raise InvalidQueryError(f"no keys in {where}: give one entity key per line")
    if len(keys) > limit:
        raise InvalidQueryError(
            f"{where} holds {len(keys):,} keys; a batch takes at most {limit:,}"
        )
    too_long = next((k for k in keys if len(k) > 128), None)
    if too_long is not None:
        raise InvalidQueryError(f"a key in {where} is longer than 128 characters: {too_long[:40]}…")
    return keys


def _run(
    kind: str,
    *,
    dataset: str,
    where: str,
    purpose: str,
    explain: bool,
    as_json: bool,
    gateway: str,
    pki: str,
    identity: str,
    **fields: Any,
) -> None:
    """Run (or dry-run) one risk computation and print what was released."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        explain_or_run(
            client,
            kind,
            dataset,
            where=where,
            purpose=purpose,
            explain=explain,
            as_json=as_json,
            **fields,
        )


@risk_app.command("score")
def risk_score(
    model: Annotated[str, typer.Option("--model", help="registered model id (mpcgw model list)")],
    keys: Annotated[
        str,
        typer.Option("--keys", help="file with one entity key per line ('-': stdin; # comments)"),
    ],
    key_column: KeyColumnOption = "",
    dataset: DatasetOption = "loans",
    where: WhereOption = "",
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Score a batch of entities with a registered model: its declared output only."""
    with reporting_errors():  # a local input problem is reported like a gateway error
        batch = read_keys(keys)
    _run(
        "score",
        dataset=dataset,
        where=where,
        purpose=purpose,
        explain=explain,
        as_json=as_json,
        gateway=gateway,
        pki=pki,
        identity=identity,
        model_id=model,
        keys=batch,
        key_column=key_column,
    )


def _distinct(keys: list[str]) -> list[str]:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise InvalidQueryError(f"concentration units must be distinct: {key} is listed twice")
        seen.add(key)
    return keys


@risk_app.command("concentration")
def risk_concentration(
    keys: KeysOption = None,
    group_by: Annotated[
        str | None, typer.Option(help="categorical column whose values are the units")
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(help="release one flag per unit: joint exposure > LIMIT (column units)"),
    ] = None,
    hhi: Annotated[
        Hhi | None,
        typer.Option(
            help="Herfindahl-Hirschman index: the value, only HHI > --hhi-limit, or none "
            "(default: fraction, or flag when --hhi-limit is given)"
        ),
    ] = None,
    hhi_limit: Annotated[
        int | None, typer.Option(min=0, max=10000, help="HHI limit in points (0..10,000)")
    ] = None,
    column: Annotated[str, typer.Option(help="numeric column summed per unit")] = "exposure",
    key_column: KeyColumnOption = "",
    dataset: DatasetOption = "loans",
    where: WhereOption = "",
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Joint exposure per unit (entities or a column's values): limit flags and/or the HHI."""
    if (keys is None) == (group_by is None):
        raise typer.BadParameter("give the units with either --keys FILE or --group-by COLUMN")
    chosen = hhi.value if hhi is not None else ("flag" if hhi_limit is not None else "")
    if hhi_limit is not None and chosen != "flag":
        raise typer.BadParameter("--hhi-limit goes with --hhi flag", param_hint="--hhi-limit")
    if chosen == "flag" and hhi_limit is None:
        raise typer.BadParameter("--hhi flag needs --hhi-limit POINTS", param_hint="--hhi")
    with reporting_errors():
        batch = None if keys is None else _distinct(read_keys(keys))
    _run(
        "concentration",
        dataset=dataset,
        where=where,
        purpose=purpose,
        explain=explain,
        as_json=as_json,
        gateway=gateway,
        pki=pki,
        identity=identity,
        keys=batch or (),
        group_by=group_by,
        key_column=key_column,
        limit=limit,
        hhi=chosen,
        hhi_limit=hhi_limit,
        column="" if column == "exposure" else column,
    )


@risk_app.command("quantiles")
def risk_quantiles(
    column: Annotated[str, typer.Argument(metavar="COLUMN", help="numeric column")],
    levels: Annotated[
        list[str], typer.Argument(metavar="LEVEL...", help="in (0, 1], e.g. 0.5 0.99")
    ],
    grid_size: Annotated[
        int | None, typer.Option(min=2, max=4096, help="grid points per search round (default 64)")
    ] = None,
    interpolation: Annotated[
        Interpolation,
        typer.Option(
            help="discrete: a value of the column (PERCENTILE_DISC); "
            "linear: interpolated between its neighbours (PERCENTILE_CONT)"
        ),
    ] = Interpolation.discrete,
    dataset: DatasetOption = "loans",
    where: WhereOption = "",
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Exact joint quantiles of a numeric column, by a batched secure search."""
    _run(
        "quantile",
        dataset=dataset,
        where=where,
        purpose=purpose,
        explain=explain,
        as_json=as_json,
        gateway=gateway,
        pki=pki,
        identity=identity,
        column=column,
        levels=levels,
        grid_size=grid_size,
        interpolation="" if interpolation is Interpolation.discrete else str(interpolation),
    )


@risk_app.command("histogram")
def risk_histogram(
    column: Annotated[str, typer.Argument(metavar="COLUMN", help="numeric column")],
    edges: Annotated[
        list[str],
        typer.Argument(
            metavar="EDGE...", help="increasing bin edges: bins [e_i, e_i+1), the last closed"
        ),
    ],
    dataset: DatasetOption = "loans",
    where: WhereOption = "",
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Joint counts of a numeric column per bin (bins with too few values are suppressed)."""
    if len(edges) < 2:
        raise typer.BadParameter("a histogram needs at least two edges", param_hint="EDGE...")
    _run(
        "histogram",
        dataset=dataset,
        where=where,
        purpose=purpose,
        explain=explain,
        as_json=as_json,
        gateway=gateway,
        pki=pki,
        identity=identity,
        column=column,
        edges=edges,
    )
