"""``mpcgw model``: register a scoring model, list the registered ones (docs/risk.md).

A model owner registers a :class:`~mpc_gateway.computations.scoring.ScoringModel`
from a JSON file. Secret weights come from a separate file that stays on the
owner's machine: they are split and sealed here, one share per node, to the
node certificates the consortium CA issued (checked), and only the ciphertexts
go to the gateway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    IDENTITY_OPTION,
    PKI_OPTION,
    JsonOption,
    client_from_env,
    console,
    err_console,
    reporting_errors,
)
from mpc_gateway.computations.scoring import ScoringModel, seal_for_consortium
from mpc_gateway.errors import InvalidQueryError, PolicyDeniedError
from mpc_gateway.pki.sealing import SealedWeights

__all__ = ["model_app", "read_text", "load_model_file", "load_weights_file", "seal_weights_file"]

model_app = typer.Typer(
    help="Scoring models: register yours, list the registered ones.", no_args_is_help=True
)


def read_text(path: Path | str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidQueryError(f"cannot read {what} {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise InvalidQueryError(f"{what} {path} is not UTF-8 text") from None


def _first_problem(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def load_model_file(path: Path, identity: str) -> ScoringModel:
    """The ScoringModel in ``path``; its owner is ``identity`` (filled in when omitted)."""
    try:
        data = json.loads(read_text(path, "model file"))
    except json.JSONDecodeError as err:
        raise InvalidQueryError(f"model file {path} is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise InvalidQueryError(f"model file {path} must hold one JSON object (a ScoringModel)")
    owner = data.get("owner") or identity
    if owner != identity:
        raise PolicyDeniedError(
            f"the model in {path} is owned by {owner!r}, but you register as {identity}: "
            "a model is registered under its owner's identity (--identity)"
        )
    try:
        return ScoringModel.model_validate({**data, "owner": owner})
    except ValidationError as err:
        raise InvalidQueryError(f"model file {path}: {_first_problem(err)}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_weights_file(path: Path, model: ScoringModel) -> tuple[list[int], int]:
    """``(weights, intercept)``, fixed-point integers, of ``{"weights": [...], "intercept": n}``."""
    try:
        data = json.loads(read_text(path, "weights file"))
    except json.JSONDecodeError as err:
        raise InvalidQueryError(f"weights file {path} is not JSON: {err}") from None
    if not isinstance(data, dict) or set(data) != {"weights", "intercept"}:
        raise InvalidQueryError(
            f'weights file {path} must hold exactly {{"weights": [...], "intercept": n}}'
        )
    weights, intercept = data["weights"], data["intercept"]
    bits = model.frac_bits
    fixed = f"fixed-point integers with the model's {bits} fraction bits, round(w * 2**{bits})"
    if not isinstance(weights, list) or not all(_is_int(w) for w in weights):
        raise InvalidQueryError(f"weights in {path} must be a list of {fixed}")
    if not _is_int(intercept):
        raise InvalidQueryError(f"the intercept in {path} must be one of the {fixed}")
    if len(weights) != len(model.features):
        names = ", ".join(f.name for f in model.features)
        raise InvalidQueryError(
            f"{path} holds {len(weights)} weights; "
            f"the model has {len(model.features)} features ({names})"
        )
    bound = 1 << model.weight_bits
    if any(abs(w) >= bound for w in (*weights, intercept)):
        raise InvalidQueryError(
            f"every weight and the intercept in {path} must satisfy |w| < 2**{model.weight_bits} "
            "(the model's weight_bits)"
        )
    return weights, intercept


def seal_weights_file(model: ScoringModel, weights_file: Path, pki: Path | str) -> SealedWeights:
    """Split the weights in ``weights_file`` and seal one share per node (here, at the owner)."""
    weights, intercept = load_weights_file(weights_file, model)
    return seal_for_consortium(model, weights, intercept, pki)


# --- mpcgw model ------------------------------------------------------------------------------


@model_app.command("register")
def model_register(
    model_file: Annotated[
        Path, typer.Argument(metavar="MODEL.json", help="a ScoringModel (docs/risk.md)")
    ],
    weights: Annotated[
        Path | None,
        typer.Option(
            metavar="WEIGHTS.json",
            help='secret weights {"weights": [...], "intercept": n} (fixed-point integers): '
            "sealed here to the nodes' certificates, never sent in the clear",
        ),
    ] = None,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
) -> None:
    """Register a scoring model under your identity; prints its model id."""
    with reporting_errors():
        model = load_model_file(model_file, identity)
        sealed = None
        if model.weights_secret:
            if weights is None:
                raise InvalidQueryError(
                    f"model {model.name!r} has secret weights: "
                    "give them with --weights WEIGHTS.json"
                )
            sealed = seal_weights_file(model, weights, pki)
        elif weights is not None:
            raise InvalidQueryError(
                f"model {model.name!r} carries public weights; "
                "--weights is for weights_secret models"
            )
        with client_from_env(gateway, pki, identity) as client:
            model_id = client.register_model(model, sealed)
    how = (
        f"weights sealed to {', '.join(sealed.shares)}" if sealed is not None else "public weights"
    )
    err_console.print(f"registered model {model.name!r} of {model.owner} ({how})", highlight=False)
    print(model_id)


@model_app.command("list")
def model_list(
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """The registered scoring models (public records; secret weights stay sealed)."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        found = client.models()
    if as_json:
        print(
            json.dumps(
                [{"model_id": m.model_id, **m.model_dump(mode="json")} for m in found], indent=2
            )
        )
        return
    table = Table(title=f"{len(found)} registered scoring model(s)")
    table.add_column("model id", overflow="fold")  # whole, never cut: it is what you pass on
    for header in ("name", "owner", "kind"):
        table.add_column(header, no_wrap=True)
    table.add_column("features (/ scale)", overflow="fold")
    for header in ("weights", "threshold", "output"):
        table.add_column(header, no_wrap=True)
    for m in found:
        features = ", ".join(
            f.name if f.scale == 1 else f"{f.name}/{f.scale:,}" for f in m.features
        )
        weights = "sealed" if m.weights_secret else "public"
        threshold = "-" if m.threshold is None else str(m.threshold)
        table.add_row(m.model_id, m.name, m.owner, m.kind, features, weights, threshold, m.output)
    console.print(table)
