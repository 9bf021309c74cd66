"""An audit log kept in memory: for tests and for tools that verify a copy.

Nothing survives the process. Same behaviour as every other backend; the
contract suite in ``tests/audit`` runs against each of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.audit.log import AuditLog, Clock

__all__ = ["InMemoryAuditLog"]


class InMemoryAuditLog(AuditLog):
    """:class:`~mpc_gateway.audit.log.AuditLog` over Python lists."""

    def __init__(
        self,
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        clock: Clock,
        key_name: str | None = None,
    ) -> None:
        self._leaves: list[bytes] = []
        self._data: list[bytes] = []
        self._heads: list[str] = []
        super().__init__(origin=origin, signing_key=signing_key, clock=clock, key_name=key_name)

    def close(self) -> None:
        """Nothing to release: the entries live as long as this object."""

    def _stored_entries(self) -> Iterable[tuple[int, bytes, bytes]]:
        return [
            (i, leaf, data)
            for i, (leaf, data) in enumerate(zip(self._leaves, self._data, strict=True))
        ]

    def _write_entry(self, index: int, leaf: bytes, data: bytes) -> None:
        if index != len(self._data):
            raise AssertionError(f"entry {index} written out of order")
        self._leaves.append(leaf)
        self._data.append(data)

    def _read_entries(self, start: int, end: int) -> list[bytes]:
        return self._data[start:end]

    def _write_tree_head(self, size: int, timestamp_ms: int, note: str) -> None:
        self._heads.append(note)

    def _read_tree_heads(self) -> list[str]:
        return list(self._heads)

    def _replace_tree_head(self, size: int, stored: str, note: str) -> bool:
        matches = [i for i, head in enumerate(self._heads) if head == stored]
        for i in matches:
            self._heads[i] = note
        return bool(matches)
