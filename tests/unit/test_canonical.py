"""The canonical JSON encoding that everything hashed or signed goes through."""

from __future__ import annotations

import hashlib
import json
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc_gateway.canonical import canonical_bytes, canonical_hash, from_canonical

# JSON-like values without floats (the only numbers the encoding admits are integers)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def test_encoding_is_sorted_compact_utf8_json() -> None:
    value = {"b": 1, "a": [True, None, "é"], "c": {"z": -2, "y": "x"}}

    assert canonical_bytes(value) == '{"a":[true,null,"é"],"b":1,"c":{"y":"x","z":-2}}'.encode()


def test_key_insertion_order_does_not_change_the_bytes() -> None:
    forward = {"alpha": 1, "beta": {"x": 1, "y": 2}, "gamma": [1, 2]}
    backward = {"gamma": [1, 2], "beta": {"y": 2, "x": 1}, "alpha": 1}

    assert canonical_bytes(forward) == canonical_bytes(backward)
    assert canonical_hash(forward) == canonical_hash(backward)


def test_non_ascii_text_is_written_as_utf8_not_escaped() -> None:
    encoded = canonical_bytes({"name": "Zürich 東京 🙂"})

    assert encoded == '{"name":"Zürich 東京 🙂"}'.encode()
    assert b"\\u" not in encoded


def test_hash_is_sha256_hex_of_the_canonical_bytes() -> None:
    value = {"k": [1, "two"]}

    assert canonical_hash(value) == hashlib.sha256(b'{"k":[1,"two"]}').hexdigest()


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (1.5, "$"),
        ({"a": 0.0}, "$.a"),
        ({"a": [1, {"b": 2.25}]}, "$.a[1].b"),
        ([[], [1, float("nan")]], "$[1][1]"),
    ],
)
def test_float_is_refused_with_its_path(value: object, path: str) -> None:
    with pytest.raises(TypeError) as excinfo:
        canonical_bytes(value)

    assert str(excinfo.value).startswith(f"float at {path} has no canonical encoding")


def test_non_string_key_is_refused() -> None:
    with pytest.raises(TypeError, match=r"non-string key at \$\.outer"):
        canonical_bytes({"outer": {1: "x"}})


def test_other_types_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"Decimal at \$\[0\] has no canonical encoding"):
        canonical_bytes([Decimal("1.5")])


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1}',  # space after the colon
        b'{"a":1, "b":2}',  # space after the comma
        b'{"b":1,"a":2}',  # unsorted keys
        b' {"a":1}',  # leading whitespace
        b'{"a":1}\n',  # trailing newline
        b'"\\u00e9"',  # escaped non-ASCII
        b'{"a":1,"a":1}',  # duplicate key
        b"-0",
        b"[1,2 ]",  # space before a bracket
    ],
)
def test_from_canonical_rejects_bytes_that_would_not_re_encode_identically(data: bytes) -> None:
    json.loads(data)  # valid JSON: the refusal is about form, not syntax

    with pytest.raises(ValueError, match="not in canonical form"):
        from_canonical(data)


def test_from_canonical_refuses_a_float() -> None:
    with pytest.raises((TypeError, ValueError)):
        from_canonical(b'{"a":1.0}')


def test_from_canonical_rejects_invalid_utf8() -> None:
    with pytest.raises(ValueError):
        from_canonical(b'"\xff"')


@given(json_values)
def test_round_trip_returns_the_value_and_the_same_bytes(value: object) -> None:
    encoded = canonical_bytes(value)

    assert from_canonical(encoded) == value
    assert canonical_bytes(from_canonical(encoded)) == encoded


@given(st.dictionaries(st.text(max_size=8), json_values, min_size=2, max_size=6), st.randoms())
def test_any_key_order_gives_the_same_bytes(value: dict[str, object], rnd: random.Random) -> None:
    keys = list(value)
    rnd.shuffle(keys)
    shuffled = {key: value[key] for key in keys}

    assert canonical_bytes(shuffled) == canonical_bytes(value)
