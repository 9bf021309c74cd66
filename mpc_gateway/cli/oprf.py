"""``mpcgw oprf``: the persons' pseudonym key's ceremony, and pseudonyms of national ids.

No one holds the key (:mod:`mpc_gateway.oprf`): each node deals (``deal``), every
node combines every deal into its own key share (``combine``). ``ceremony`` runs
every node's part in turn, for a consortium whose nodes one operator runs (the
demo, a test bed). ``pseudonymise`` replaces a column of national ids by their
pseudonyms with the nodes' help, through the gateway: what an institution runs
(as its node's identity) before it loads its customers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpc_gateway.cli.common import (
    GATEWAY_OPTION,
    PKI_OPTION,
    PurposeOption,
    client_from_env,
    console,
    reporting_errors,
)
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.tables import check_suffixes, read_rows, write_rows

__all__ = ["oprf_app"]

oprf_app = typer.Typer(help="Persons' pseudonyms under the nodes' joint key.", no_args_is_help=True)

NodeOption = Annotated[str, typer.Option(help="the node whose part this is")]
PkiDir = Annotated[Path, typer.Option("--pki", help="consortium PKI directory")]


@oprf_app.command("deal")
def deal(
    node: NodeOption,
    out: Annotated[Path, typer.Option(help="the deal file to publish to every node")],
    pki: PkiDir = Path("var/pki"),
    threshold: Annotated[
        int | None, typer.Option(min=0, help="t: any t + 1 nodes evaluate (default: a minority)")
    ] = None,
) -> None:
    """A node's deal: commitments, and a value for every node sealed to it, signed."""
    from mpc_gateway.oprf.ceremony import write_deal

    with reporting_errors():
        console.print(f"{node}'s deal -> {write_deal(pki, node, out, threshold)}")


@oprf_app.command("combine")
def combine(
    node: NodeOption,
    deals: Annotated[list[Path], typer.Argument(help="every node's deal file")],
    out: Annotated[Path, typer.Option(help="this node's key share (mode 0600)")],
    pki: PkiDir = Path("var/pki"),
) -> None:
    """A node's key share from every node's deal, each checked against its commitments."""
    from mpc_gateway.oprf.ceremony import combine_ceremony

    with reporting_errors():
        key = combine_ceremony(pki, node, deals, out)
    console.print(
        f"{node}: share {key.party} of {key.parties} (any {key.threshold + 1} evaluate) -> {out}; "
        f"public key {key.public_key.hex()[:16]}…"
    )


@oprf_app.command("ceremony")
def ceremony(
    out: Annotated[Path, typer.Option(help="writes OUT/<node>.json and OUT/deals/")] = Path(
        "var/keys"
    ),
    pki: PkiDir = Path("var/pki"),
) -> None:
    """Every node's deal and combination in turn: only where one operator runs every node."""
    from mpc_gateway.oprf.ceremony import whole_ceremony

    with reporting_errors():
        keys = whole_ceremony(
            pki, lambda n: out / "deals" / f"{n}.deal.json", lambda n: out / f"{n}.json"
        )
    console.print(f"{len(keys)} key shares in {out}; public key {keys[0].public_key.hex()[:16]}…")


@oprf_app.command("pseudonymise")
def pseudonymise(
    source: Annotated[Path, typer.Argument(help="CSV or Parquet file with a national id column")],
    out: Annotated[Path, typer.Option(help="the same rows, ids replaced (CSV or Parquet)")],
    column: Annotated[str, typer.Option(help="the national id column")] = "national_id",
    target: Annotated[str, typer.Option(help="the pseudonym column written")] = "person_pseudonym",
    purpose: PurposeOption = "customer onboarding",
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: Annotated[str, typer.Option(help="role/name: node/<yours> to load data")] = "",
) -> None:
    """Replace a column of national ids by their pseudonyms (the nodes evaluate, blinded)."""
    with reporting_errors():
        if not identity:
            raise InvalidRequestError("give --identity (node/<your node> to load your data)")
        check_suffixes(source, out)
        frame = read_rows(source)
        if column not in frame.columns:
            raise InvalidRequestError(f"{source} has no column {column!r}")
        with client_from_env(gateway, pki, identity) as client:
            pseudonyms = client.pseudonyms(frame[column].astype(str).tolist(), purpose=purpose)
        frame = frame.drop(columns=[column]).assign(**{target: pseudonyms})
        write_rows(frame, out)
    console.print(f"{len(frame)} rows: {column} -> {target} in {out}")
