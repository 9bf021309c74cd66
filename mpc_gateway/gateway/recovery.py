"""On start, nothing left open: resume the queries waiting for approval, abandon the rest.

The audit log says which queries are open: a ``query.pending`` or
``query.submitted`` entry and no outcome (``result.released``,
``query.failed``, ``query.refused``, ``query.rejected``, ``query.abandoned``).
Reading the whole log at every start would grow with the log, so the
:class:`~mpc_gateway.gateway.pending.QueryStore` keeps where the last scan
stopped and what it left open; a start reads only the entries written since
(none after a clean stop, which scans on its way out; at most a minute's after a
crash, as :class:`LogScan` keeps the scan current while the gateway runs).

Every open query then gets an explicit end:

* one that waited for approval, and that the store still holds as waiting, is
  re-evaluated against the policies as they are now. It keeps waiting (with the
  approvals it already has) when the same plan, with the same plan hash, is
  still allowed and needs the same approvals; otherwise it is refused, with an
  audit entry saying the policies changed while it waited;
* every other one (it ran, or was starting, when the gateway stopped) gets
  ``query.abandoned`` with the reason, and the status call reports it so. Its
  privacy spend is not refunded: the nodes may have computed its result.

And the log must still hold what the nodes witnessed: every node says, when a
lane's session opens, which checkpoint of the gateway's log it cosigned last
(:func:`witnessed_by`). A log that lost or changed entries since (a restored
copy, a damaged write-ahead log) takes no query at all, instead of running each
one only to have every node refuse to witness its release.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from mpc_gateway.audit.log import AuditLog
from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.computations import Plan, Request
from mpc_gateway.errors import GatewayError, IntegrityError, PolicyDeniedError
from mpc_gateway.gateway.lifecycle import QueryBook, TrackedQuery
from mpc_gateway.gateway.pending import OpenQuery, QueryStore, StoredQuery
from mpc_gateway.gateway.record import QueryRecord
from mpc_gateway.pki import Identity
from mpc_gateway.policy import CombinedDecision

__all__ = [
    "ABANDONED",
    "OPENING",
    "CLOSING",
    "LogScan",
    "Recovered",
    "keep_scan",
    "recover",
    "scan_open",
    "witnessed_by",
]

log = logging.getLogger(__name__)

OPENING = frozenset({"query.pending", "query.submitted"})
CLOSING = frozenset(
    {"result.released", "query.failed", "query.refused", "query.rejected", "query.abandoned"}
)
ABANDONED = "the gateway stopped before the query finished; submit it again"
_KEEP_ENDED_MS = 7 * 24 * 3_600_000  # how long a status call can still say how a query ended
_CHUNK = 4096

Decide = Callable[[Identity, Request], CombinedDecision[Plan]]


@dataclass(frozen=True)
class Recovered:
    """What a start found open, and what it did with it."""

    resumed: tuple[str, ...]
    refused: tuple[str, ...]
    abandoned: tuple[str, ...]
    scanned: int  # audit entries read


def scan_open(log_: AuditLog, store: QueryStore) -> tuple[int, int, list[OpenQuery]]:
    """The log's size, how many entries were read, and the open queries.

    Only the entries the last scan did not read are read.
    """
    start, found = store.scanned()
    size = log_.size()
    if start > size:  # the log is shorter than when it was scanned: read it all again
        log.warning("the audit log has %d entries, %d were scanned before: rescanning", size, start)
        start, found = 0, []
    open_queries = {q.query_id: q for q in found}
    for first in range(start, size, _CHUNK):
        for data in log_.entries(first, min(first + _CHUNK, size)):
            event = json.loads(data)
            query_id, kind = event.get("query_id"), event["kind"]
            if query_id is None:
                continue
            if kind in OPENING and query_id not in open_queries:
                details = event.get("details") or {}
                open_queries[query_id] = OpenQuery(
                    query_id, event["actor"], event.get("dataset"), details.get("plan_hash"), kind
                )
            elif kind in CLOSING:
                open_queries.pop(query_id, None)
    return size, size - start, list(open_queries.values())


def keep_scan(log_: AuditLog, store: QueryStore) -> None:
    """Note how far the log has been read, so the next start reads nothing it has read."""
    size, _, open_queries = scan_open(log_, store)
    store.keep_scan(size, open_queries)


class LogScan:
    """Keeps the store's scan of the log current while the gateway runs, and once more at close.

    Every ``every_s`` it reads the entries written since, so a start after a crash reads
    at most that long's entries.
    """

    def __init__(self, log_: AuditLog, store: QueryStore, every_s: float = 60.0) -> None:
        self._log, self._store, self._every_s = log_, store, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                keep_scan(self._log, self._store)
            except Exception:  # a failed scan only means the next start reads more
                log.exception("could not keep the audit log's scan")

    def close(self) -> None:
        """Stop scanning, then scan up to the end (call before closing the log and store)."""
        self._stop.set()
        self._thread.join()
        keep_scan(self._log, self._store)


def recover(
    audit: AuditTrail,
    store: QueryStore,
    book: QueryBook,
    decide: Decide,
    ca: x509.Certificate,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> Recovered:
    """Give every query the log left open an end, or resume it (see the module docstring)."""
    size, read, open_queries = scan_open(audit.log, store)
    waiting = {q.query_id: q for q in store.waiting()}
    resumed, refused, abandoned = [], [], []
    for found in open_queries:
        record = QueryRecord(audit, found.query_id, found.dataset or "", found.actor)
        record.plan_hash = found.plan_hash
        stored = waiting.pop(found.query_id, None)
        if stored is not None and found.opened_by == "query.pending":
            outcome = _resume(stored, decide, ca, record)
            if isinstance(outcome, TrackedQuery):
                book.add(outcome)
                resumed.append(found.query_id)
                continue
            refused.append(found.query_id)
            store.ended(found.query_id, found.actor, "rejected", found.plan_hash, outcome, now_ms())
            continue
        record.abandoned(ABANDONED)
        store.ended(found.query_id, found.actor, "abandoned", found.plan_hash, ABANDONED, now_ms())
        abandoned.append(found.query_id)
    for stale in waiting:  # stored, but the log holds no open entry for it: the log decides
        store.drop(stale)
    still_open = [q for q in open_queries if q.query_id in resumed]
    store.keep_scan(audit.log.size(), still_open)  # with the ends just written: all closed
    store.forget_ended_before(now_ms() - _KEEP_ENDED_MS)
    if resumed or refused or abandoned:
        log.info(
            "restart: %d queries resumed, %d refused, %d abandoned",
            len(resumed),
            len(refused),
            len(abandoned),
        )
    return Recovered(tuple(resumed), tuple(refused), tuple(abandoned), read)


def _resume(
    stored: StoredQuery, decide: Decide, ca: x509.Certificate, record: QueryRecord
) -> TrackedQuery | str:
    """The waiting query as the policies now decide it; or, refused, the reason (logged).

    It resumes only if the same plan is still allowed, still needs approvals, and the
    decisions given so far still count under the approval rules as they are now.
    """
    reason = "its plan or the approvals it needs are no longer the same"
    try:
        decision = decide(stored.caller, stored.request)
        if decision.allowed and decision.plan.plan_hash == stored.plan_hash:
            query = TrackedQuery(
                stored.query_id,
                stored.caller,
                stored.request,
                stored.certificate,
                decision,
                stored.submitted_ms,
                stored.receiver,
                approvals=list(stored.approvals),
            )
            if query.waiting_for(ca) and not query.rejections(ca):
                return query
    except GatewayError as err:
        reason = err.public_message
    refusal = PolicyDeniedError(
        f"query {stored.query_id} was refused after the gateway restarted: the policies "
        f"changed while it waited for approval ({reason}); submit it again",
        query_id=stored.query_id,
    )
    record.refused(stored.request, refusal, stored.certificate, rule="policy.changed")
    return refusal.public_message


def witnessed_by(audit: AuditTrail) -> Callable[[str, str], None]:
    """The dispatcher's ``on_session``: the log must hold what each node cosigned last.

    One that does not is halted (:meth:`AuditTrail.check_witnessed`): health turns
    NOT_SERVING and every query is UNAVAILABLE, saying why (the first report). Each node
    answers once per lane: what it reports is logged once.
    """
    reported: set[str] = set()
    lock = threading.Lock()  # the lanes' sessions open side by side

    def check(node: str, cosigned: str) -> None:
        try:
            problem, level = audit.check_witnessed(f"node {node}", cosigned), logging.ERROR
        except IntegrityError as err:
            problem = f"node {node} reports a checkpoint the gateway did not sign: {err}"
            level = logging.WARNING
        with lock:
            if problem is None or problem in reported:
                return
            reported.add(problem)
        log.log(level, "%s", problem)

    return check
