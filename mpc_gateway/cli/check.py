"""``mpcgw check``: screen counterparties or persons against every member's alerts, in real time.

One computation (:mod:`mpc_gateway.computations.check`) per call: per key, only
whether some member flagged it, or how many did (``--members``), under the
alert kind and age asked. Persons are screened by their pseudonym; with
``--national-ids`` the keys given are national ids, pseudonymised first under the
nodes' joint key (:mod:`mpc_gateway.oprf`: blinded here, so neither the gateway nor
any node learns an id or its pseudonym).
"""

from __future__ import annotations

from typing import Annotated

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
from mpc_gateway.cli.risk import KeysOption, read_keys
from mpc_gateway.computations.check import alert_filter
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.policy.models import MAX_BATCH, MAX_WATCHLIST

__all__ = ["check"]


def check(
    keys: Annotated[
        list[str] | None, typer.Argument(metavar="KEY...", help="entity keys to screen")
    ] = None,
    keys_file: KeysOption = None,
    members: Annotated[
        bool, typer.Option("--members", help="how many members flagged each key (default: any)")
    ] = False,
    overlap: Annotated[
        bool,
        typer.Option("--overlap", help="only how many of the keys any member flagged (one number)"),
    ] = False,
    amount: Annotated[
        bool,
        typer.Option("--amount", help="with --overlap: also the flagged alerts' amounts, summed"),
    ] = False,
    key_column: Annotated[
        str, typer.Option(help="counterparty_lei (default) or person_pseudonym")
    ] = "",
    kind: Annotated[str, typer.Option(help="only alerts of this kind: fraud, aml, sanctions")] = "",
    days: Annotated[
        int | None, typer.Option(min=0, help="only alerts raised in the last DAYS days (UTC)")
    ] = None,
    national_ids: Annotated[
        bool,
        typer.Option(
            "--national-ids", help="the keys are persons' national ids: pseudonymise them first"
        ),
    ] = False,
    dataset: Annotated[str, typer.Option(help="joint dataset")] = "alerts",
    where: Annotated[str, typer.Option(help="further filter over the alerts")] = "",
    purpose: PurposeOption = "",
    explain: ExplainOption = False,
    gateway: str = GATEWAY_OPTION,
    pki: str = PKI_OPTION,
    identity: str = IDENTITY_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Is a counterparty or a person flagged at any member (or at how many)? Nothing else."""
    with reporting_errors():
        limit = MAX_WATCHLIST if overlap else MAX_BATCH
        batch = [*(keys or []), *(read_keys(keys_file, limit) if keys_file else [])]
        if not batch:
            raise InvalidQueryError("give the keys to check: KEY... or --keys FILE")
        if members and overlap:
            raise InvalidQueryError("ask either --members or --overlap, not both")
        if amount and not overlap:
            raise InvalidQueryError("--amount sums a watchlist's overlap: give --overlap too")
    with reporting_errors(), client_from_env(gateway, pki, identity) as client:
        if national_ids:
            batch = client.pseudonyms(batch, purpose=purpose or None)
            key_column = key_column or "person_pseudonym"
        explain_or_run(
            client,
            "check",
            dataset,
            where=alert_filter(kind, days, where),
            purpose=purpose,
            explain=explain,
            as_json=as_json,
            keys=batch,
            key_column=key_column,
            question="members" if members else "overlap" if overlap else "",
            amount=amount,
        )
