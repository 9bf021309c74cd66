"""``mpcgw model`` and ``mpcgw risk``: scoring models and risk queries (docs/risk.md).

A model owner registers a :class:`~mpc_gateway.risk.ScoringModel` from a JSON
file. Secret weights come from a separate file that stays on the owner's machine:
they are split and sealed here, one share per node, to the node certificates of
the consortium PKI, and only the ciphertexts go to the gateway.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    IDENTITY_OPTION,
    PKI_OPTION,
    client_from_env,
    console,
    err_console,
    format_value,
    print_explanation,
    reporting_errors,
)
from mpc_gateway.client import RiskResult
from mpc_gateway.errors import (
    IntegrityError,
    InvalidQueryError,
    PolicyDeniedError,
    UnauthenticatedError,
)
from mpc_gateway.pki import Identity, identity_from_certificate, load_ca, load_layout
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.risk import ScoringModel, SealedWeights, seal_model_weights
from mpc_gateway.risk.features import MAX_BATCH
from mpc_gateway.rpc.risk_convert import hhi_text

__all__ = [
    "model_app",
    "risk_app",
    "read_keys",
    "load_model_file",
    "load_weights_file",
    "node_certificates",
    "seal_weights_file",
    "print_risk_result",
    "risk_json",
]

model_app = typer.Typer(
    help="Scoring models: register yours, list the registered ones.", no_args_is_help=True
)
risk_app = typer.Typer(
    help="Joint risk scores and portfolio risk (see docs/risk.md).", no_args_is_help=True
)

DatasetOption = Annotated[str, typer.Option(help="joint dataset")]
WhereOption = Annotated[
    str, typer.Option(help="filter over rows, e.g. \"sector IN ('energy')\" (as for query)")
]
PurposeOption = Annotated[
    str, typer.Option(help="why you ask: a purpose the policies allow (audited)")
]
ExplainOption = Annotated[
    bool, typer.Option("--explain", help="dry run: rules, approvals, disclosure")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
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


# --- reading the owner's and analyst's files (no gateway involved) --------------------------


def _read_text(path: Path | str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidQueryError(f"cannot read {what} {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise InvalidQueryError(f"{what} {path} is not UTF-8 text") from None


def read_keys(source: str) -> list[str]:
    """Entity keys, one per line, from file ``source`` (``-``: stdin), in order.

    Surrounding whitespace is dropped; blank lines and lines starting with ``#``
    are skipped. Duplicates are kept (a scoring batch may repeat a key).
    """
    text = sys.stdin.read() if source == "-" else _read_text(source, "keys file")
    where = "stdin" if source == "-" else source
    keys = [k for k in (line.strip() for line in text.splitlines()) if k and not k.startswith("#")]
    if not keys:
        raise InvalidQueryError(f"no keys in {where}: give one entity key per line")
    if len(keys) > MAX_BATCH:
        raise InvalidQueryError(
            f"{where} holds {len(keys):,} keys; a batch takes at most {MAX_BATCH:,}"
        )
    too_long = next((k for k in keys if len(k) > 128), None)
    if too_long is not None:
        raise InvalidQueryError(f"a key in {where} is longer than 128 characters: {too_long[:40]}…")
    return keys


def _first_problem(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def load_model_file(path: Path, identity: str) -> ScoringModel:
    """The ScoringModel in ``path``; its owner is ``identity`` (filled in when omitted)."""
    try:
        data = json.loads(_read_text(path, "model file"))
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
    """``(weights, intercept)`` from ``{"weights": [...], "intercept": n}``, fixed-point integers."""
    try:
        data = json.loads(_read_text(path, "weights file"))
    except json.JSONDecodeError as err:
        raise InvalidQueryError(f"weights file {path} is not JSON: {err}") from None
    if not isinstance(data, dict) or set(data) != {"weights", "intercept"}:
        raise InvalidQueryError(
            f'weights file {path} must hold exactly {{"weights": [...], "intercept": n}}'
        )
    weights, intercept = data["weights"], data["intercept"]
    fixed = f"fixed-point integers with the model's {model.frac_bits} fraction bits, round(w * 2**{model.frac_bits})"
    if not isinstance(weights, list) or not all(_is_int(w) for w in weights):
        raise InvalidQueryError(f"weights in {path} must be a list of {fixed}")
    if not _is_int(intercept):
        raise InvalidQueryError(f"the intercept in {path} must be one of the {fixed}")
    if len(weights) != len(model.features):
        names = ", ".join(f.name for f in model.features)
        raise InvalidQueryError(
            f"{path} holds {len(weights)} weights; the model has {len(model.features)} features ({names})"
        )
    bound = 1 << model.weight_bits
    if any(abs(w) >= bound for w in (*weights, intercept)):
        raise InvalidQueryError(
            f"every weight and the intercept in {path} must satisfy |w| < 2**{model.weight_bits} "
            "(the model's weight_bits)"
        )
    return weights, intercept


def node_certificates(pki: Path | str) -> dict[str, bytes]:
    """Every node's TLS certificate PEM, in party order, each checked against the consortium CA."""
    layout = load_layout(Path(pki))
    ca = load_ca(layout.ca_cert)
    certs: dict[str, bytes] = {}
    for name in layout.nodes:
        expected = Identity("node", name, layout.trust_domain)
        path = layout.tls_paths(expected)[0]
        try:
            pem = path.read_bytes()
            cert = x509.load_pem_x509_certificate(pem)
            cert.verify_directly_issued_by(ca)
            actual = identity_from_certificate(cert, trust_domain=layout.trust_domain)
        except OSError as err:
            raise IntegrityError(f"cannot read node certificate {path}: {err.strerror}") from None
        except (ValueError, TypeError, InvalidSignature, UnauthenticatedError):
            raise IntegrityError(
                f"{path} is not a certificate the consortium CA issued to node {name}"
            ) from None
        if actual != expected:
            raise IntegrityError(f"{path} certifies {actual}, not node {name}")
        certs[name] = pem
    return certs


def seal_weights_file(model: ScoringModel, weights_file: Path, pki: Path | str) -> SealedWeights:
    """Split the weights in ``weights_file`` and seal one share per node (here, at the owner)."""
    weights, intercept = load_weights_file(weights_file, model)
    return seal_model_weights(model, weights, intercept, node_certificates(pki))


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
                    f"model {model.name!r} has secret weights: give them with --weights WEIGHTS.json"
                )
            sealed = seal_weights_file(model, weights, pki)
        elif weights is not None:
            raise InvalidQueryError(
                f"model {model.name!r} carries public weights; --weights is for weights_secret models"
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
        print(json.dumps([{"model_id": m.model_id, **m.model_dump(mode="json")} for m in found],
                         indent=2))  # fmt: skip
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


# --- printing risk results --------------------------------------------------------------------


def _real(score: int, denominator: int) -> Decimal:
    return Decimal(score) / Decimal(denominator)


def _number(text: str) -> str:
    try:
        return f"{Decimal(text):,f}"
    except ArithmeticError:
        return text


def _table(title: str) -> Table:
    return Table(title=title, min_width=len(title) + 2)  # the title on one line


def _yes(flag: bool) -> str:
    return "[bold red]yes[/]" if flag else "no"


def _bin(lo: Decimal, hi: Decimal, last: bool) -> str:
    return escape(f"[{lo:,}, {hi:,}]" if last else f"[{lo:,}, {hi:,})")


def risk_json(result: RiskResult, keys: list[str] | None = None) -> dict[str, Any]:
    """A released risk result as JSON (exact values as decimal text)."""
    out = result.outcome
    data: dict[str, Any] = {
        "query_id": result.query_id,
        "plan_hash": result.plan_hash,
        "kind": out.kind,
        "total_ms": result.total_ms,
        "controls": result.controls,
    }
    if result.model_id:
        data["model_id"] = result.model_id
    if out.kind == "score":
        rows: list[dict[str, Any]] = [{"decision": d} for d in out.decisions]
        if out.scores:
            data["denominator"] = str(out.denominator)  # score = integer_score / denominator
            for i, s in enumerate(out.scores):
                row = {"score": str(_real(s, out.denominator)), "integer_score": str(s)}
                if out.probabilities:
                    row["probability"] = out.probabilities[i]
                rows.append(row)
        if rows:
            data["rows"] = [{"key": k, **r} for k, r in zip(keys or [], rows)] if keys else rows
        if out.count is not None:
            data["count"] = out.count
    elif out.kind == "concentration":
        if out.over_limit:
            data["units"] = [
                {"unit": u, "over_limit": f} for u, f in zip(out.units, out.over_limit)
            ]
        if out.hhi is not None:
            data["hhi"] = hhi_text(out.hhi)
        if out.hhi_over_limit is not None:
            data["hhi_over_limit"] = out.hhi_over_limit
    elif out.kind == "quantile":
        data["rounds"] = out.rounds
        data["quantiles"] = [{"level": str(q), "value": None if v is None else str(v),
                              "suppressed": v is None} for q, v in out.quantiles]  # fmt: skip
    elif out.kind == "histogram":
        data["bins"] = [{"low": str(lo), "high": str(hi), "count": c, "suppressed": c is None}
                        for lo, hi, c in out.bins]  # fmt: skip
    return data


def print_risk_result(
    result: RiskResult,
    keys: list[str] | None = None,
    dataset: str = "",
    limit: str = "",
    hhi_limit: int | None = None,
    column: str = "exposure",
) -> None:
    """A released risk result as tables (what was released, nothing else)."""
    out = result.outcome
    about = f"{dataset}: " if dataset else ""
    model = f", model {result.model_id[:8]}" if result.model_id else ""
    rounds = f", {out.rounds} rounds" if out.kind == "quantile" else ""
    title = (
        f"{about}{out.kind} (query {result.query_id[:8]}{model}{rounds}, {result.total_ms:.0f} ms)"
    )
    if out.kind == "score":
        if out.count is not None:
            console.print(f"[bold]{title}[/]", highlight=False)
            of = f" of {len(keys)}" if keys else ""
            console.print(f"{out.count:,}{of} entities at or above the model's threshold")
            return
        table = _table(title)
        table.add_column("key", overflow="fold")
        rows = max(len(out.scores), len(out.decisions))
        if out.scores:
            table.add_column("score", justify="right")
            if out.probabilities:
                table.add_column("probability", justify="right")
        if out.decisions:
            table.add_column("decision (score ≥ threshold)")
        for i in range(rows):
            cells = [escape(keys[i]) if keys and i < len(keys) else str(i + 1)]
            if out.scores:
                cells.append(f"{float(Fraction(out.scores[i], out.denominator)):.6g}")
                if out.probabilities:
                    cells.append(f"{out.probabilities[i]:.6f}")
            if out.decisions:
                cells.append(_yes(out.decisions[i]))
            table.add_row(*cells)
        console.print(table)
        if out.decisions:
            console.print(
                f"{sum(out.decisions):,} of {len(out.decisions):,} at or above the threshold"
            )
    elif out.kind == "concentration":
        if out.over_limit:
            table = _table(title)
            table.add_column("unit", overflow="fold")
            table.add_column(f"joint {column} > {_number(limit)}" if limit else "over limit")
            for unit, flag in zip(out.units, out.over_limit):
                table.add_row(escape(unit), _yes(flag))
            console.print(table)
            over = sum(out.over_limit)
            console.print(f"{over:,} of {len(out.units):,} units over the limit")
        else:
            console.print(f"[bold]{title}[/]", highlight=False)
        if out.hhi is not None:
            console.print(f"HHI: {hhi_text(out.hhi)} points (0..10,000)", highlight=False)
        if out.hhi_over_limit is not None:
            above = f"HHI > {hhi_limit} points" if hhi_limit is not None else "HHI over its limit"
            console.print(f"{above}: {_yes(out.hhi_over_limit)}", highlight=False)
    elif out.kind == "quantile":
        table = _table(title)
        table.add_column("level", justify="right")
        table.add_column("quantile", justify="right")
        for level, value in out.quantiles:
            table.add_row(
                str(level), "suppressed (too few values)" if value is None else format_value(value)
            )
        console.print(table)
    else:
        table = _table(title)
        table.add_column("bin")
        table.add_column("count", justify="right")
        for i, (lo, hi, count) in enumerate(out.bins):
            shown = "suppressed (too few values)" if count is None else format_value(count)
            table.add_row(_bin(lo, hi, i == len(out.bins) - 1), shown)
        console.print(table)


# --- mpcgw risk -------------------------------------------------------------------------------


def _run(
    job: dict[str, Any],
    *,
    dataset: str,
    where: str,
    purpose: str,
    explain: bool,
    as_json: bool,
    gateway: str,
    pki: str,
    identity: str,
    keys: list[str] | None = None,
    **shown: Any,
) -> None:
    """Run (or dry-run) one risk job and print what was released."""
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        found = client.risk(dataset, where=where, purpose=purpose, explain=explain, **job)
        if isinstance(found, dict):  # the dry run
            print(json.dumps(found, indent=2)) if as_json else print_explanation(found)
            raise typer.Exit(0 if found["allowed"] else 3)
    if as_json:
        print(json.dumps(risk_json(found, keys), default=str, indent=2))
    else:
        print_risk_result(found, keys, dataset, **shown)


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
    job = gateway_pb2.ScoreJob(model_id=model, keys=batch, key_column=key_column)
    _run({"score": job}, dataset=dataset, where=where, purpose=purpose, explain=explain,
         as_json=as_json, gateway=gateway, pki=pki, identity=identity, keys=batch)  # fmt: skip


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
    job = gateway_pb2.ConcentrationJob(
        keys=batch or [], group_by=group_by or "", key_column=key_column, limit=limit or "",
        hhi=chosen, hhi_limit=hhi_limit, column="" if column == "exposure" else column,
    )  # fmt: skip
    _run({"concentration": job}, dataset=dataset, where=where, purpose=purpose, explain=explain,
         as_json=as_json, gateway=gateway, pki=pki, identity=identity, keys=None,
         limit=limit or "", hhi_limit=hhi_limit, column=column)  # fmt: skip


@risk_app.command("quantiles")
def risk_quantiles(
    column: Annotated[str, typer.Argument(metavar="COLUMN", help="numeric column")],
    levels: Annotated[
        list[str], typer.Argument(metavar="LEVEL...", help="in (0, 1], e.g. 0.5 0.99")
    ],
    grid_size: Annotated[
        int | None, typer.Option(min=2, max=4096, help="grid points per search round (default 64)")
    ] = None,
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
    job = gateway_pb2.QuantileJob(column=column, levels=levels, grid_size=grid_size or 0)
    _run({"quantiles": job}, dataset=dataset, where=where, purpose=purpose, explain=explain,
         as_json=as_json, gateway=gateway, pki=pki, identity=identity)  # fmt: skip


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
    job = gateway_pb2.HistogramJob(column=column, edges=edges)
    _run({"histogram": job}, dataset=dataset, where=where, purpose=purpose, explain=explain,
         as_json=as_json, gateway=gateway, pki=pki, identity=identity)  # fmt: skip
