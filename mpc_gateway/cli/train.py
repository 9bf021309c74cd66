"""``mpcgw model train``: a ridge or logistic model trained inside the MPC (docs/training.md)."""

from __future__ import annotations

from pathlib import Path
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
    err_console,
    explain_or_run,
    reporting_errors,
)
from mpc_gateway.computations.train import TrainOutcome
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.tables import check_suffixes, read_rows, records, write_rows

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
    score: Annotated[
        Path | None,
        typer.Option(help="then score these rows (CSV or Parquet, the features in their units)"),
    ] = None,
    scores_out: Annotated[
        Path | None, typer.Option(help="where the scored rows go (with --score)")
    ] = None,
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Train a model on every institution's rows; no row leaves its node."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        if (score is None) != (scores_out is None):
            raise InvalidRequestError("--score and --scores-out go together")
        rows = None
        if score is not None and scores_out is not None and not explain:
            check_suffixes(score, scores_out)
            rows = read_rows(score)  # read before training: a bad file costs no training run
            missing = [f for f in _columns(features) if f not in rows.columns]
            if missing:
                raise InvalidRequestError(f"{score} has no column {', '.join(missing)}")
        released = explain_or_run(
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
        if rows is not None and scores_out is not None:
            outcome = released.outcome
            assert isinstance(outcome, TrainOutcome)
            scored = rows.assign(prediction=outcome.predict(records(rows)))
            write_rows(scored, scores_out)
            what = "probability of 1" if outcome.family == "logistic" else "predicted value"
            err_console.print(f"{len(scored)} rows scored ({what} in 'prediction') in {scores_out}")
