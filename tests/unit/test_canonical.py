"""The fast canonical encoders equal the RFC 8785 library on every JSON value the ledger stores."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json
from ledger.entry import HASHED_FIELDS, canonical_entry

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=25,
)


@given(values)
@settings(max_examples=400)
def test_canonical_json_equals_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+FF61 sorts before U+1F600 by code point but after it in UTF-16 (surrogate D83D).
    value = {"\uff61": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U0001f600".encode()) < canonical_json(value).index(
        "\uff61".encode()
    )


def test_floats_and_big_integers_take_the_library_path() -> None:
    assert canonical_json({"x": 1.5}) == b'{"x":1.5}'
    assert canonical_json([2**53 - 1]) == b"[9007199254740991]"


@pytest.mark.parametrize("sign", [1, -1])
def test_rfc8785_integers_at_the_safe_integer_edge(sign: int) -> None:
    """RFC 8785 3.2.2.3: integers are IEEE 754 doubles, so +-(2**53 - 1) is the last exact
    one; one further is refused (the library's IntegerDomainError), in any position."""
    edge = sign * (2**53 - 1)
    assert canonical_json(edge) == str(edge).encode()
    assert canonical_json({"x": [edge]}) == f'{{"x":[{edge}]}}'.encode()
    for beyond in (sign * 2**53, [sign * 2**53], {"x": sign * 2**53}):
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(beyond)


def test_control_characters_are_escaped_in_lowercase_hex() -> None:
    assert canonical_json("\x01\x1f\n\u2028") == b'"\\u0001\\u001f\\n\xe2\x80\xa8"'


hashed_keys = st.sampled_from(HASHED_FIELDS)
odd = scalars | st.floats(allow_nan=False, allow_infinity=False) | st.integers()
entry_fields = st.fixed_dictionaries(
    {
        "stream_id": text,
        "stream_version": st.integers(1, 10**6),
        "type": st.just("PlanSet"),
        "occurred_on": st.just("2024-10-15"),
        "recorded_at": st.just("2024-10-15T14:02:11.123456Z"),
        "actor": text,
        "submitted_by": text,
        "policy": st.none() | text,
        "data": st.dictionaries(st.text(st.characters(max_codepoint=127)), values, max_size=4),
        "prev_hash": st.none() | st.just("ab" * 32),
    }
)


@given(entry_fields)
@settings(max_examples=300)
def test_canonical_entry_equals_rfc8785(hashed: dict[str, object]) -> None:
    assert canonical_entry(hashed) == rfc8785.dumps(hashed)


@given(
    entry_fields,
    st.dictionaries(hashed_keys, odd, max_size=2),
    st.lists(hashed_keys, max_size=1),
    st.dictionaries(text, scalars, max_size=1),
)
@settings(max_examples=300)
def test_canonical_entry_falls_back_on_anything_odd(
    hashed: dict[str, object],
    odd_values: dict[str, object],
    drop: list[str],
    extra: dict[str, object],
) -> None:
    hashed.update(odd_values)
    for key in drop:
        hashed.pop(key, None)
    hashed.update(extra)
    try:
        expected = rfc8785.dumps(hashed)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_entry(hashed)
        return
    assert canonical_entry(hashed) == expected


def test_canonical_entry_of_a_typical_entry() -> None:
    hashed = {
        "stream_id": "A-2024-E1",
        "stream_version": 3,
        "type": "ProgressReviewed",
        "occurred_on": "2024-03-15",
        "recorded_at": "2024-03-15T14:02:11.123456Z",
        "actor": 'R1 \u00e9\U0001f600"\\\x01',
        "submitted_by": "hr-app-1",
        "policy": None,
        "data": {"notes": "Mid-year\n", "reviewed_on": "2024-03-15", "z": [1, {"b": 2, "a": None}]},
        "prev_hash": None,
    }
    assert canonical_entry(hashed) == rfc8785.dumps(hashed)
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_entry({**hashed, "actor": "\ud800"})


@pytest.mark.parametrize("sign", [1, -1])
def test_rfc8785_canonical_entry_stream_version_at_the_safe_integer_edge(sign: int) -> None:
    """The hand-assembled entry takes the same integer edge as the library: a stream_version
    of +-(2**53 - 1) is encoded, one further is refused, not written past the library."""
    hashed: dict[str, Any] = {
        "stream_id": "E1",
        "stream_version": sign * (2**53 - 1),
        "type": "ExecutiveRegistered",
        "occurred_on": "2024-03-15",
        "recorded_at": "2024-03-15T14:02:11.123456Z",
        "actor": "hr",
        "submitted_by": "hr-app-1",
        "policy": None,
        "data": {},
        "prev_hash": None,
    }
    assert canonical_entry(hashed) == rfc8785.dumps(hashed)
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_entry({**hashed, "stream_version": sign * 2**53})
