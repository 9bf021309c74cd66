"""The gateway's tamper-evident audit log, behind one interface for every store.

What it is for: every decision the gateway takes (a query received, the policy
decision on it, the dispatch to nodes, each node's participation, the release
of a result, administrative changes) is appended as an :class:`AuditEvent`.
Auditors and the nodes (as witnesses) later check, from the raw entries and the
signed tree heads alone, that nothing was altered, dropped, reordered or shown
differently to different parties.

What it assumes:

* an entry is ``canonical_bytes`` of the event's fields, stored and hashed
  exactly as is (RFC 9162 leaf hash), so any verifier can recompute the tree;
* the log's Ed25519 key signs tree heads as C2SP checkpoints whose key name
  defaults to the origin; each head carries a ``time-ms`` extension line (the
  signing time, from the injected clock, covered by the signature); every head
  ever signed is kept, in signing order;
* the process holding this object is the only writer of its store. A lock
  makes ``append`` and ``signed_tree_head`` safe from several threads.

:class:`AuditLog` holds the logic; a backend (:mod:`.memory`, :mod:`.sqlite`)
supplies its storage operations. On opening, the stored entries are re-hashed
and the stored heads re-checked against them (the largest one's signature too),
so the log refuses to sign heads inconsistent with ones it signed before.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpc_gateway.audit.checkpoint import (
    check_key_name,
    format_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
)
from mpc_gateway.audit.event import AppendedEntry, AuditEvent, LoggedEvent
from mpc_gateway.audit.merkle import MerkleTree, leaf_hash
from mpc_gateway.errors import ConfigurationError, IntegrityError, StorageUnavailableError

__all__ = ["AppendedEntry", "AuditEvent", "AuditLog", "Clock", "LoggedEvent"]

Clock = Callable[[], int]
"""Returns the current time in Unix milliseconds (injected so tests are deterministic)."""

_READ_CHUNK = 1024


class AuditLog(ABC):
    """An append-only, Merkle-hashed, signed log of :class:`AuditEvent` entries.

    Subclasses set up their store, then call ``super().__init__``, which loads
    and re-checks what the store already holds.
    """

    def __init__(
        self,
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        clock: Clock,
        key_name: str | None = None,
    ) -> None:
        self._origin = origin
        self._key_name = key_name if key_name is not None else origin
        try:
            check_key_name(self._key_name)
            format_checkpoint(origin, 0, bytes(32))
        except IntegrityError as err:
            raise ConfigurationError(f"unusable audit log identity: {err.public_message}") from err
        self._signing_key = signing_key
        self._public_key = signing_key.public_key()
        self._clock = clock
        self._lock = threading.RLock()
        self._tree = MerkleTree()
        self._storage_problem: str | None = None
        self._halted: str | None = None  # halt(): why this log takes no write any more
        self._storage_watchers: list[Callable[[str | None], None]] = []
        self._load_entries()
        self._check_stored_heads()

    def watch_storage(self, watcher: Callable[[str | None], None]) -> None:
        """Call ``watcher(problem)`` when writes start failing, ``watcher(None)`` on recovery."""
        self._storage_watchers.append(watcher)
        watcher(self._storage_problem)

    def recheck_storage(self) -> str | None:
        """Try a write that adds no entry; watchers hear if the storage recovered. The problem.

        Called while a problem stands, so health recovers once the operator fixed the
        disk, without waiting for a write that a NOT_SERVING server may never receive.
        """
        with self._lock:
            if self._halted is not None:
                return self._halted
            try:
                self._probe_write()
            except StorageUnavailableError:
                pass  # still failing: _storage_state already says why
            return self._storage_problem

    @property
    def storage_problem(self) -> str | None:
        """Why the last write failed (a full disk, ...), or None once writes succeed."""
        return self._storage_problem

    def halt(self, problem: str) -> str:
        """Take no entry and sign no head any more, for good: ``problem`` says why.

        For a log that lost what a witness holds: every later write is a
        :class:`StorageUnavailableError` with ``problem``, watchers hear it as a
        storage problem, and no recheck clears it; only a restart on a restored
        store does. A log halted already keeps its first reason; returns the reason kept.
        """
        with self._lock:
            self._halted = self._halted or problem
            self._storage_state(self._halted)
            return self._halted

    def _refuse_if_halted(self) -> None:
        if self._halted is not None:
            raise StorageUnavailableError(self._halted)

    def _storage_state(self, problem: str | None) -> None:
        """Backends report each write's result here; watchers hear of every change."""
        problem = self._halted or problem
        if problem != self._storage_problem:
            self._storage_problem = problem
            for watcher in self._storage_watchers:
                watcher(problem)

    # --- storage operations a backend provides (called with the lock held) ---------

    @abstractmethod
    def _stored_entries(self) -> Iterable[tuple[int, bytes, bytes]]:
        """Every stored ``(index, leaf_hash, data)``, in index order."""

    @abstractmethod
    def _write_entry(self, index: int, leaf: bytes, data: bytes) -> None:
        """Store one entry durably before returning."""

    @abstractmethod
    def _read_entries(self, start: int, end: int) -> list[bytes]:
        """The data of entries ``start <= index < end``."""

    @abstractmethod
    def _write_tree_head(self, size: int, timestamp_ms: int, note: str) -> None:
        """Store one signed tree head durably before returning."""

    @abstractmethod
    def _read_tree_heads(self) -> list[str]:
        """Every stored tree head note, in signing order."""

    @abstractmethod
    def _replace_tree_head(self, size: int, stored: str, note: str) -> bool:
        """Store ``note`` in place of the stored head ``stored`` of ``size``; False: none."""

    def _probe_write(self) -> None:
        """Write something that is no entry, reporting the result (a store that can fail)."""
        self._storage_state(None)

    @abstractmethod
    def close(self) -> None:
        """Release the store; the log is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- public surface ------------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def key_name(self) -> str:
        return self._key_name

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    @contextmanager
    def batch(self, durable: bool = True) -> Iterator[None]:
        """Make every append and tree head inside the block one durable write (one fsync).

        Either all of them are stored or, if storing fails, none is, and the tree
        is rebuilt from the store. ``durable=False`` stores them without the fsync:
        they become durable with the next durable write (a crash of the machine
        before it may lose them), for records of what has not left the writer yet.
        """
        with self._lock:
            try:
                with self._store_batch(durable):
                    yield
            except BaseException:
                self._tree = MerkleTree()
                self._load_entries()
                raise

    def _store_batch(self, durable: bool = True) -> AbstractContextManager[None]:
        """A backend's transaction spanning several writes (called with the lock held)."""
        return nullcontext()

    def append(self, event: AuditEvent) -> AppendedEntry:
        """Store ``event`` durably and add it to the tree; return its index and leaf hash."""
        data = event.entry_bytes()
        leaf = leaf_hash(data)
        with self._lock:
            self._refuse_if_halted()
            index = self._tree.size
            self._write_entry(index, leaf, data)
            self._tree.append(leaf)
        return AppendedEntry(index, leaf)

    def size(self) -> int:
        with self._lock:
            return self._tree.size

    def entry(self, index: int) -> bytes:
        """The stored bytes of entry ``index``."""
        with self._lock:
            if not 0 <= index < self._tree.size:
                raise IndexError(f"entry {index} is outside a log of {self._tree.size} entries")
            return self._read_entries(index, index + 1)[0]

    def entries(self, start: int = 0, end: int | None = None) -> list[bytes]:
        """The stored bytes of entries ``start <= index < end`` (default: to the end)."""
        with self._lock:
            end = self._tree.size if end is None else end
            if not 0 <= start <= end <= self._tree.size:
                raise IndexError(f"range [{start}, {end}) is outside a log of {self._tree.size}")
            return self._read_entries(start, end)

    def events(
        self,
        *,
        kind: str | None = None,
        actor: str | None = None,
        query_id: str | None = None,
        dataset: str | None = None,
        decision: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[LoggedEvent]:
        """Decoded events matching every given filter (``since_ms <= t < until_ms``)."""
        given = {"kind": kind, "actor": actor, "query_id": query_id, "dataset": dataset}
        given["decision"] = decision
        wanted = {k: v for k, v in given.items() if v is not None}
        found = []
        for logged in self._iter_events():
            event = logged.event
            if any(getattr(event, k) != v for k, v in wanted.items()):
                continue
            if since_ms is not None and event.timestamp_ms < since_ms:
                continue
            if until_ms is not None and event.timestamp_ms >= until_ms:
                continue
            found.append(logged)
        return found

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` entries (default: all)."""
        with self._lock:
            return self._tree.root(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: all)."""
        with self._lock:
            return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from ``old_size`` to ``new_size`` (default: all)."""
        with self._lock:
            return self._tree.consistency_proof(old_size, new_size)

    def signed_tree_head(self) -> str:
        """Sign, store and return a checkpoint of the whole log as it is now."""
        with self._lock:
            self._refuse_if_halted()
            timestamp = self._clock()
            size = self._tree.size
            body = format_checkpoint(self._origin, size, self._tree.root(), timestamp_ms=timestamp)
            note = sign_checkpoint(body, self._key_name, self._signing_key)
            self._write_tree_head(size, timestamp, note)
            return note

    def tree_heads(self) -> list[str]:
        """Every tree head this log has signed, oldest first."""
        with self._lock:
            return self._read_tree_heads()

    def add_cosignatures(self, checkpoint: str, note: str) -> None:
        """Keep ``note``, a head this log signed (``checkpoint``) with witnesses' cosignatures
        added, as that head: it is still the same head, now with the cosignatures it gathered.

        ``checkpoint`` must be stored as is; the lines added must be signature lines,
        but are not verified here (whoever relies on one checks it). Inside a
        non-durable :meth:`batch` this costs no fsync.
        """
        body, _ = parse_note(note)
        if not note.startswith(checkpoint) or parse_note(checkpoint)[0] != body:
            raise IntegrityError("a cosigned checkpoint must be the signed one with lines added")
        size = parse_checkpoint(body).size
        with self._lock:
            self._refuse_if_halted()
            if not self._replace_tree_head(size, checkpoint, note):
                raise IntegrityError(f"this log stores no such head at size {size}")

    # --- internals -----------------------------------------------------------------

    def _iter_events(self) -> Iterator[LoggedEvent]:
        start = 0
        while True:
            with self._lock:
                end = min(start + _READ_CHUNK, self._tree.size)
                chunk = self._read_entries(start, end)
            if not chunk:
                return
            for offset, data in enumerate(chunk):
                yield LoggedEvent(start + offset, AuditEvent.from_entry(data))
            start = end

    def _load_entries(self) -> None:
        for expected, (index, stored_leaf, data) in enumerate(self._stored_entries()):
            if index != expected:
                raise IntegrityError(
                    f"the log store skips from entry {expected} to {index}: it was modified"
                )
            if leaf_hash(data) != stored_leaf:
                raise IntegrityError(
                    f"stored entry {index} does not match its leaf hash: the store was modified"
                )
            self._tree.append(stored_leaf)

    def _check_stored_heads(self) -> None:
        """Every stored head is this log's and matches the stored entries; the largest is signed.

        One signature check covers them all: the largest head, signed with this log's
        key, fixes every entry up to its size, and every other head must reproduce the
        root of those entries. A smaller head with a damaged signature then still agrees
        with what was signed (``mpcgw audit verify`` reports it); verifying each one again
        would cost a signature check per head at every start.
        """
        largest: tuple[int, str] | None = None
        for note in self._read_tree_heads():
            head = parse_checkpoint(parse_note(note)[0])
            if head.origin != self._origin:
                raise ConfigurationError(
                    f"this log store belongs to log {head.origin!r}, not {self._origin!r}"
                )
            if head.size > self._tree.size or self._tree.root(head.size) != head.root_hash:
                raise IntegrityError(
                    f"the stored tree head at size {head.size} does not match the stored "
                    "entries; refusing to sign heads inconsistent with it"
                )
            if largest is None or head.size >= largest[0]:
                largest = (head.size, note)
        if largest is not None:
            verify_checkpoint(largest[1], self._key_name, self._public_key)
