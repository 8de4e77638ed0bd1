"""The fast canonical encoder equals the RFC 8785 library on every JSON value the ledger stores."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json

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


def test_control_characters_are_escaped_in_lowercase_hex() -> None:
    assert canonical_json("\x01\x1f\n\u2028") == b'"\\u0001\\u001f\\n\xe2\x80\xa8"'
