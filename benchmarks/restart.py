"""What a gateway start costs on a long audit log: opening it, and finding what it left open.

Run: ``python -m benchmarks.restart [--entries 100000]``. It writes a log of
``--entries`` query entries (submitted, dispatched, released, a few left open as a
crash leaves them) in a temporary directory, with a signed tree head after each
query's submission and after its release (as the gateway signs them: 2 heads per 3
entries), then times, each on a fresh open:

* opening the audit log (it re-hashes every stored entry and re-checks every stored
  head against them, verifying the signature of the largest);
* the scan for open queries with no earlier scan kept (a first start, or a crash before
  the gateway ever stopped cleanly): every entry is read;
* the same scan after a clean stop kept where it ended: no entry is read.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.sqlite import SqliteAuditLog
from mpc_gateway.gateway.pending import QueryStore
from mpc_gateway.gateway.recovery import keep_scan, scan_open

_ORIGIN = "mpcgw.local/gateway/gateway"


def _event(kind: str, query_id: str, at: int) -> AuditEvent:
    return AuditEvent(
        kind=kind,
        actor="analyst/alice",
        query_id=query_id,
        dataset="loans",
        decision="allowed",
        timestamp_ms=at,
        details={"plan_hash": "0" * 64, "reason": "", "nodes": ["bank-a", "bank-b", "broker-c"]},
    )


def write_log(path: Path, entries: int, key: Ed25519PrivateKey, left_open: int = 3) -> None:
    """About ``entries`` entries: queries of three each, the last ``left_open`` only submitted."""
    queries = entries // 3
    with SqliteAuditLog(path, origin=_ORIGIN, signing_key=key, clock=lambda: 1) as log:
        with log.batch():
            for number in range(queries):
                kinds = ["query.submitted", "query.dispatched", "result.released"]
                if number >= queries - left_open:
                    kinds = kinds[:1]  # as a crash leaves it
                for kind in kinds:
                    log.append(_event(kind, f"q{number}", number))
                    if kind != "query.dispatched":  # the submission's head, the release's
                        log.signed_tree_head()


def _timed(label: str, work: object) -> float:
    started = time.perf_counter()
    result = work() if callable(work) else None
    seconds = time.perf_counter() - started
    print(f"{label:<48} {seconds * 1000:9.1f} ms  {result if result is not None else ''}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        log_path, store_path = Path(tmp) / "audit.sqlite", Path(tmp) / "queries.sqlite"
        write_log(log_path, args.entries, key)
        with SqliteAuditLog(log_path, origin=_ORIGIN, signing_key=key, clock=lambda: 1) as log:
            heads = len(log.tree_heads())
        print(f"audit log of {args.entries} entries, {heads} signed tree heads")

        def opened() -> SqliteAuditLog:
            return SqliteAuditLog(log_path, origin=_ORIGIN, signing_key=key, clock=lambda: 1)

        _timed("open the audit log (re-checks entries and heads)", lambda: opened().close())
        log = opened()
        store = QueryStore(store_path, "mpcgw.local")
        _timed(
            "scan for open queries, no scan kept (crash)",
            lambda: f"{len(scan_open(log, store)[2])} open",
        )
        keep_scan(log, store)
        _timed(
            "scan for open queries after a clean stop",
            lambda: f"{scan_open(log, store)[1]} entries read",
        )
        store.close()
        log.close()


if __name__ == "__main__":
    main()
