"""RFC 4515 escaping of filter assertion values (xesync.adapters.ldap.escape_filter_value)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xesync.adapters.ldap import escape_filter_value


def unescape(value: str) -> str:
    return re.sub(r"\\([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("*", r"\2a"),
        ("(", r"\28"),
        (")", r"\29"),
        ("\\", r"\5c"),
        ("\x00", r"\00"),
        ("*)(uid=*", r"\2a\29\28uid=\2a"),
        (r"a\2a", r"a\5c2a"),
        ("alice@lab.example", "alice@lab.example"),
        ("Åse.Ødegård@lab.example", "Åse.Ødegård@lab.example"),
    ],
)
def test_escapes_exactly_the_five_specials(raw, escaped):
    """NUL, '*', '(', ')' and backslash become \\XX; everything else, non-ASCII included, is kept."""
    assert escape_filter_value(raw) == escaped


@given(st.text())
def test_escaped_values_hold_no_filter_syntax_and_round_trip(value):
    """An escaped value has no bare '*', '(', ')' or NUL, and every backslash starts an escape."""
    escaped = escape_filter_value(value)
    assert not set(escaped) & {"*", "(", ")", "\x00"}
    assert re.fullmatch(r"(?:[^\\]|\\[0-9a-f]{2})*", escaped, flags=re.DOTALL)
    assert unescape(escaped) == value
