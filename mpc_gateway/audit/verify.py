"""What an auditor (or a node acting as witness) runs to check the gateway's log.

Inputs are untrusted raw material: the entry bytes, the signed tree heads, and
optionally the last head the auditor verified on an earlier visit. Only the
log's public key is trusted. :func:`verify_log` recomputes the RFC 9162 tree
from the entries and checks that

* every entry decodes as a canonical :class:`~mpc_gateway.audit.log.AuditEvent`;
* every tree head carries a valid signature by the log key, and its root is the
  recomputed root at its size (a mismatch is narrowed to the entries between
  the last head that still matches and the first that does not);
* no entry lies beyond the last signed head (such an entry is unauthenticated);
* the log is consistent with the last head the auditor saw.

:func:`compare_views` puts the heads the gateway shows next to the heads the
nodes recorded and reports a split view: two validly signed heads of the same
size with different roots, or a node's head the gateway's entries do not
reproduce. Each conflict carries the signed notes that prove it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from mpc_gateway.audit.checkpoint import Checkpoint, verify_checkpoint
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.merkle import MerkleTree, leaf_hash, verify_consistency
from mpc_gateway.canonical import from_canonical
from mpc_gateway.errors import IntegrityError

__all__ = ["Conflict", "VerificationReport", "ViewComparison", "compare_views", "verify_log"]


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of :func:`verify_log`: empty ``problems`` means the log verified."""

    size: int
    root_hash: bytes
    heads_verified: int
    latest: Checkpoint | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self) -> None:
        """Raise :class:`IntegrityError` listing every problem, if there is any."""
        if self.problems:
            raise IntegrityError("audit log does not verify: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Conflict:
    """One piece of evidence of a split view, with the signed notes that show it."""

    message: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ViewComparison:
    """The outcome of :func:`compare_views`."""

    conflicts: tuple[Conflict, ...]
    unverifiable: tuple[str, ...]

    @property
    def split_view(self) -> bool:
        return bool(self.conflicts)


def verify_log(
    entries: Sequence[bytes],
    tree_heads: Sequence[str],
    public_key: Ed25519PublicKey,
    key_name: str,
    last_seen: Checkpoint | None = None,
    *,
    origin: str | None = None,
    allow_unsigned_tail: bool = False,
) -> VerificationReport:
    """Check a log's raw entries against its signed tree heads; report every problem found.

    ``origin`` pins the log identity (default: that of the first valid head).
    ``allow_unsigned_tail`` accepts entries appended after the last signed head.
    """
    tree = MerkleTree(leaf_hash(data) for data in entries)
    problems = _check_entries(entries)
    heads = _verified_heads(tree_heads, public_key, key_name, origin, problems)
    problems += _check_roots(tree, heads)
    if last_seen is not None:
        expected_origin = origin or (heads[0].origin if heads else last_seen.origin)
        problems += _check_last_seen(tree, heads, last_seen, expected_origin)
    if not allow_unsigned_tail:
        problems += _check_signed_tail(tree.size, heads)
    latest = max((h for h in heads if _matches(tree, h)), key=lambda h: h.size, default=None)
    return VerificationReport(tree.size, tree.root(), len(heads), latest, tuple(problems))


def _span(lo: int, hi: int) -> str:
    """Entries ``lo <= i < hi`` in words."""
    return f"entry {lo}" if hi - lo == 1 else f"entries {lo}..{hi - 1}"


def _short(root: bytes) -> str:
    return root.hex()[:16]


def _matches(tree: MerkleTree, head: Checkpoint) -> bool:
    return head.size <= tree.size and tree.root(head.size) == head.root_hash


def _check_entries(entries: Sequence[bytes]) -> list[str]:
    problems = []
    for index, data in enumerate(entries):
        try:
            value = from_canonical(data)
        except (ValueError, TypeError):  # bad UTF-8 or JSON, non-canonical form, a float
            problems.append(f"entry {index} is not canonical JSON")
            continue
        try:
            AuditEvent.model_validate(value)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problems.append(f"entry {index} is not a valid audit event ({where}: {first['msg']})")
    return problems


def _verified_heads(
    notes: Sequence[str],
    public_key: Ed25519PublicKey,
    key_name: str,
    origin: str | None,
    problems: list[str],
) -> list[Checkpoint]:
    heads: list[Checkpoint] = []
    runs: list[tuple[int, int, str]] = []  # (first, last, reason): heads in a row, rejected alike
    for number, note in enumerate(notes):
        try:
            head = verify_checkpoint(note, key_name, public_key, origin=origin)
        except IntegrityError as err:
            reason = err.public_message
            if runs and runs[-1][1:] == (number - 1, reason):
                runs[-1] = (runs[-1][0], number, reason)
            else:
                runs.append((number, number, reason))
            continue
        origin = head.origin
        heads.append(head)
    for first, last, reason in runs:
        which = f"tree head #{first} is" if first == last else f"tree heads #{first}..#{last} are"
        problems.append(f"{which} rejected: {reason}")
    return heads


def _check_roots(tree: MerkleTree, heads: Sequence[Checkpoint]) -> list[str]:
    good = sorted({h.size for h in heads if _matches(tree, h)})
    problems: list[str] = []
    groups: dict[int, list[Checkpoint]] = {}
    beyond = sorted((h for h in heads if h.size > tree.size), key=lambda h: h.size)
    if beyond:
        problems.append(
            f"tree head at size {beyond[0].size} covers more entries than the log holds "
            f"({tree.size}): entries were deleted or the log was truncated"
            + (f" ({len(beyond) - 1} later head(s) too)" if len(beyond) > 1 else "")
        )
    for head in sorted(heads, key=lambda h: h.size):
        if head.size > tree.size or _matches(tree, head):
            continue
        if head.size in good:
            problems.append(
                f"the log signed two different roots at size {head.size}; root "
                f"{_short(head.root_hash)}... does not match the entries: a split view"
            )
            continue
        groups.setdefault(max((s for s in good if s < head.size), default=0), []).append(head)
    return problems + [_mismatch(lo, group) for lo, group in groups.items()]


def _mismatch(lo: int, group: list[Checkpoint]) -> str:
    first = group[0]
    verb = "does" if first.size - lo == 1 else "do"
    message = f"{_span(lo, first.size)} {verb} not match the root signed at size {first.size}"
    if lo:
        message += f" (the root signed at size {lo} still matches)"
    if len(group) > 1:
        message += f"; {len(group) - 1} later head(s), up to size {group[-1].size}, fail too"
    return message


def _check_signed_tail(size: int, heads: Sequence[Checkpoint]) -> list[str]:
    # A head that does not match still covers its entries: that mismatch is reported apart.
    covered = max((h.size for h in heads if h.size <= size), default=0)
    if size <= covered:
        return []
    return [
        f"{_span(covered, size)} {'is' if size - covered == 1 else 'are'} not covered by any "
        "signed tree head: appended after the last head was signed, or forged"
    ]


def _check_last_seen(
    tree: MerkleTree, heads: Sequence[Checkpoint], last: Checkpoint, origin: str
) -> list[str]:
    if last.origin != origin:
        return [f"the last head you saw is for log {last.origin!r}, not {origin!r}"]
    problems = []
    if last.size > tree.size:
        problems.append(
            f"the log holds {tree.size} entries, fewer than the size {last.size} of the last "
            "head you saw: entries were removed"
        )
    elif tree.root(last.size) != last.root_hash:
        problems.append(
            f"the log's first {last.size} entries do not reproduce the root of the last head "
            "you saw: history was rewritten"
        )
    for head in heads:
        if not _provably_consistent(tree, head, last):
            problems.append(
                f"tree head at size {head.size} is not consistent with the last head you saw "
                f"(size {last.size})"
            )
    return problems


def _provably_consistent(tree: MerkleTree, a: Checkpoint, b: Checkpoint) -> bool:
    """False only when the recomputed tree proves ``a`` and ``b`` cannot both be honest.

    The proof is taken from the recomputed tree, which is authoritative only up
    to the larger head's size if it reproduces that head's root; otherwise
    nothing can be concluded here (and the mismatch is reported elsewhere).
    """
    old, new = sorted((a, b), key=lambda h: h.size)
    if old.size == new.size:
        return old.root_hash == new.root_hash
    if not _matches(tree, new):
        return True
    proof = tree.consistency_proof(old.size, new.size)
    return verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)


def compare_views(
    gateway_heads: Sequence[str],
    node_heads: Mapping[str, Sequence[str]],
    public_key: Ed25519PublicKey,
    key_name: str,
    gateway_entries: Sequence[bytes] | None = None,
) -> ViewComparison:
    """Look for a split view between the gateway's heads and those each node recorded.

    ``node_heads`` maps a node's name to the checkpoint notes it kept (e.g. the
    ones it cosigned). With ``gateway_entries``, every node head must also be
    reproduced by the gateway's entries. Heads without a valid log signature
    prove nothing; they are listed in ``unverifiable``.
    """
    sources = [("the gateway", note) for note in gateway_heads]
    sources += [(f"node {name!r}", note) for name, notes in node_heads.items() for note in notes]
    seen: list[tuple[str, str, Checkpoint]] = []
    unverifiable = []
    for source, note in sources:
        try:
            seen.append((source, note, verify_checkpoint(note, key_name, public_key)))
        except IntegrityError as err:
            unverifiable.append(f"a head held by {source} is not validly signed: {err}")
    conflicts = _same_size_conflicts(seen)
    if gateway_entries is not None:
        tree = MerkleTree(leaf_hash(data) for data in gateway_entries)
        conflicts += _entries_conflicts(tree, [s for s in seen if s[0] != "the gateway"])
    return ViewComparison(tuple(conflicts), tuple(unverifiable))


def _same_size_conflicts(seen: Sequence[tuple[str, str, Checkpoint]]) -> list[Conflict]:
    by_size: dict[int, dict[bytes, list[tuple[str, str]]]] = {}
    for source, note, head in seen:
        by_size.setdefault(head.size, {}).setdefault(head.root_hash, []).append((source, note))
    conflicts = []
    for size, roots in sorted(by_size.items()):
        if len(roots) < 2:
            continue
        views = [
            f"root {_short(root)}... shown to {', '.join(sorted({s for s, _ in held}))}"
            for root, held in roots.items()
        ]
        evidence = tuple(held[0][1] for held in roots.values())
        message = f"the log signed {len(roots)} different roots at size {size}: "
        conflicts.append(Conflict(message + "; ".join(views), evidence))
    return conflicts


def _entries_conflicts(
    tree: MerkleTree, node_seen: Sequence[tuple[str, str, Checkpoint]]
) -> list[Conflict]:
    conflicts = []
    for source, note, head in node_seen:
        if head.size > tree.size:
            message = (
                f"{source} holds a head at size {head.size}, but the gateway's log has only "
                f"{tree.size} entries: entries were hidden or the log truncated"
            )
        elif tree.root(head.size) != head.root_hash:
            message = (
                f"{source} holds a head at size {head.size} that is not consistent with the "
                "gateway's log: the gateway's entries do not reproduce its root"
            )
        else:
            continue
        conflicts.append(Conflict(message, (note,)))
    return conflicts
