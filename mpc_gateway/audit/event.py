"""What an audit log holds: events, each stored as the canonical bytes it is hashed as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from mpc_gateway.canonical import canonical_bytes, from_canonical

__all__ = ["AppendedEntry", "AuditEvent", "DetailValue", "LoggedEvent"]

EventKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
DetailValue = str | int | bool | None | list[Any] | dict[str, Any]


class AuditEvent(BaseModel):
    """One thing the gateway did or decided. No floats anywhere: they have no canonical form.

    ``kind`` is a dotted lower-case name such as ``query.submitted``,
    ``policy.decision``, ``dispatch``, ``node.participation``, ``result.released``,
    ``query.failed``, ``admin.policy_loaded``, ``admin.identity_registered`` or
    ``order.received``. ``details`` never holds data values, only metadata.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: EventKind
    actor: Annotated[str, StringConstraints(min_length=1)]
    query_id: str | None = None
    dataset: str | None = None
    decision: str | None = None
    timestamp_ms: Annotated[int, Field(ge=0)]
    details: dict[str, DetailValue] = Field(default_factory=dict)

    @field_validator("details")
    @classmethod
    def _details_are_canonical(cls, value: dict[str, DetailValue]) -> dict[str, DetailValue]:
        try:
            encoded = canonical_bytes(value)
        except TypeError as err:
            raise ValueError(str(err).replace("$", "details", 1)) from err
        # A private copy: later changes to the caller's nested lists cannot reach the event.
        copy: dict[str, DetailValue] = from_canonical(encoded)
        return copy

    def entry_bytes(self) -> bytes:
        """The bytes stored in the log and hashed into its tree."""
        return canonical_bytes(self.model_dump())

    @classmethod
    def from_entry(cls, data: bytes) -> AuditEvent:
        """Decode stored entry bytes; refuses bytes that are not in canonical form."""
        return cls.model_validate(from_canonical(data))


@dataclass(frozen=True)
class AppendedEntry:
    """Where an appended event landed: its index and its RFC 9162 leaf hash."""

    index: int
    leaf_hash: bytes


@dataclass(frozen=True)
class LoggedEvent:
    """An event read back from the log, with its index (for inclusion proofs)."""

    index: int
    event: AuditEvent
