"""Safe XML parsing: no DTDs, no entities, clear errors."""

from __future__ import annotations

import pytest

from xesync.xmlsafe import UnsafeXmlError, parse


def test_parses_plain_xml():
    """Well-formed XML without a DTD parses."""
    assert parse(b"<a xmlns='urn:x'><b>1</b></a>").tag == "{urn:x}a"


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        b'<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;">]><a>&l2;</a>',
        b'<!DOCTYPE a SYSTEM "http://127.0.0.1:1/evil.dtd"><a/>',
    ],
)
def test_refuses_dtds_and_entities(doc):
    """External entities, entity expansion and external DTDs are refused, never resolved."""
    with pytest.raises(UnsafeXmlError, match="DOCTYPE"):
        parse(doc)


@pytest.mark.parametrize("doc", [b"", b"<a>", b"not xml", b"<a></b>"])
def test_malformed_is_a_clear_error(doc):
    """Malformed input raises UnsafeXmlError, not an lxml exception."""
    with pytest.raises(UnsafeXmlError, match="malformed"):
        parse(doc)
