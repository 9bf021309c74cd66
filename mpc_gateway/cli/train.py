"""``mpcgw model train``: a ridge or logistic model trained inside the MPC (docs/training.md)."""

from __future__ import annotations

from typing import Annotated, Literal

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

__all__ = ["model_train"]


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def model_train(
    label: Annotated[str, typer.Option(help="the column to predict, e.g. defaulted")],
    features: Annotated[
        str, typer.Option(help="comma-separated numeric or categorical columns (one-hot)")
    ],
    dataset: Annotated[str, typer.Option(help="joint dataset")] = "loans",
    kind: Annotated[
        Literal["linear", "logistic"],
        typer.Option(help="linear (ridge, closed form) or logistic (Newton/IRLS)"),
    ] = "logistic",
    l2: Annotated[
        str, typer.Option(help="penalty (l2/2)·Σ(σ_j β_j)², intercept unpenalised")
    ] = "1",
    iterations: Annotated[
        int | None, typer.Option(help="logistic: Newton steps (fixed; default 12)")
    ] = None,
    min_rows: Annotated[int | None, typer.Option(help="joint rows required (default 1000)")] = None,
    min_institutions: Annotated[
        int | None, typer.Option(help="institutions with rows required (default 2)")
    ] = None,
    holdout: Annotated[
        str | None,
        typer.Option(help="logistic: each node's share of rows held out for the joint AUC"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the held-out draw")] = None,
    where: Annotated[str, typer.Option(help="train on the rows this filter selects")] = "",
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Train a model on every institution's rows; no row leaves its node."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        explain_or_run(
            client,
            "train",
            dataset,
            explain=explain,
            as_json=as_json,
            where=where,
            purpose=purpose,
            label=label,
            features=_columns(features),
            family=kind,
            l2=l2,
            iterations=iterations,
            min_rows=min_rows,
            min_institutions=min_institutions,
            holdout=holdout,
            seed=seed,
        )
