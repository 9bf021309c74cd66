"""AuditEvent: strict fields, no floats, one canonical encoding."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mpc_gateway.audit.log import AuditEvent
from tests.audit.helpers import make_event


@pytest.mark.parametrize(
    "details",
    [{"ratio": 0.5}, {"nested": [1, {"x": 2.0}]}, {"obj": object()}],
    ids=["float", "nested-float", "object"],
)
def test_details_without_a_canonical_encoding_are_refused(details: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="details"):
        make_event(1, details=details)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "Query Submitted"),
        ("kind", ""),
        ("actor", ""),
        ("timestamp_ms", -1),
        ("timestamp_ms", True),
        ("timestamp_ms", "1750000000000"),
        ("query_id", 12),
    ],
)
def test_fields_are_strict(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        make_event(1, **{field: value})


def test_unknown_fields_are_refused_and_events_are_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        make_event(1, colour="red")
    event = make_event(1)
    with pytest.raises(ValidationError, match="frozen"):
        event.kind = "dispatch"  # type: ignore[misc]


def test_kinds_may_be_dotted_or_single_words() -> None:
    for kind in ("dispatch", "query.failed", "admin.identity_registered", "order.received"):
        assert make_event(1, kind=kind).kind == kind


def test_entry_bytes_are_sorted_compact_json_and_round_trip() -> None:
    event = make_event(4, details={"b": 1, "a": [True, None, "x"]})
    data = event.entry_bytes()
    assert data.startswith(b'{"actor":"analyst-1","dataset":"loans","decision":null,"details":')
    assert b'"details":{"a":[true,null,"x"],"b":1}' in data
    assert AuditEvent.from_entry(data) == event


def test_non_canonical_entry_bytes_are_refused() -> None:
    data = make_event(4).entry_bytes().replace(b'"actor":', b'"actor": ')
    with pytest.raises(ValueError, match="canonical"):
        AuditEvent.from_entry(data)


def test_the_event_keeps_its_own_copy_of_the_details() -> None:
    groups = ["region"]
    event = make_event(1, details={"groups": groups})
    before = event.entry_bytes()
    groups.append("age")
    assert event.entry_bytes() == before
