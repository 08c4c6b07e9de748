"""CMS simulator pieces without HTTP: mappings, paging, form bodies, times and knobs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xesync.lab.cms.knobs import CmsKnobs, parse_knobs
from xesync.lab.cms.wire import CmsFailure, expand_mapping, paging, parse_form, parse_time
from xesync.lab.fixture import FixtureError


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("TMS_Scheduled_Meeting_$index$", "TMS_Scheduled_Meeting_7"),
        ("$cn$'s Meeting Space", "Alice's Meeting Space"),
        (r"price \$5 for $uid$", "price $5 for alice"),
        (r"back\\slash", "back\\slash"),
        ("$missing$.space", ".space"),
        ("dangling $", "dangling $"),
    ],
)
def test_expand_mapping(template, expected):
    """$name$ placeholders expand, a backslash escapes, unknown names expand to nothing."""
    values = {"index": "7", "cn": "Alice", "uid": "alice"}
    assert expand_mapping(template, lambda name: values.get(name, "")) == expected


def test_paging_applies_the_cap_below_limit():
    """limit above the cap gives the cap; no limit gives the cap; offset is kept."""
    assert (paging({"limit": ["50"], "offset": ["3"]}, 10).offset, paging({"limit": ["50"]}, 10).count) == (
        3,
        10,
    )
    assert paging({}, 8).count == 8
    assert paging({"limit": ["2"]}, 8).count == 2


def test_paging_rejects_garbage():
    """A non-numeric limit is a parameterError naming limit."""
    with pytest.raises(CmsFailure) as caught:
        paging({"limit": ["x"]}, 10)
    assert (caught.value.code, caught.value.attrs) == (
        "parameterError",
        {"parameter": "limit", "error": "invalidValue"},
    )


def test_parse_form_keeps_empty_values_and_last_wins():
    """name= is kept as an empty value (it unsets on PUT); a repeated parameter keeps its last value."""
    assert parse_form(b"name=&uri=a&uri=b") == {"name": "", "uri": "b"}
    assert parse_form(b"") == {}


def test_parse_time_needs_an_offset():
    """RFC 3339 UTC parses; a time without offset is a parameterError."""
    assert parse_time("startTime", "2019-05-16T14:44:52Z") == datetime(2019, 5, 16, 14, 44, 52, tzinfo=UTC)
    with pytest.raises(CmsFailure):
        parse_time("startTime", "2019-05-16T14:44:52")


def test_knobs_default_and_version_compare():
    """Defaults follow the spec's likeliest behaviour; at_least compares dotted versions numerically."""
    knobs = CmsKnobs()
    assert (knobs.reevaluate_on_owner_change, knobs.active_licenses_user_attr, knobs.page_cap) == (
        False,
        "id",
        10,
    )
    assert knobs.at_least("2.2")
    assert not knobs.at_least("3.0")
    assert CmsKnobs(page_caps={"coSpaces": 3}).cap("cospaces") == 3


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"cms_version": "9.9"}, "cms_version"),
        ({"page_cap": 0}, "page_cap"),
        ({"reevaluate_on_owner_change": "yes"}, "reevaluate_on_owner_change"),
        ({"active_licenses_user_attr": "guid"}, "active_licenses_user_attr"),
        ({"page_caps": {"coSpaces": 0}}, "page_caps"),
        ({"bogus": 1}, "bogus"),
        ({"ldap": {"nope": "x"}}, "ldap"),
    ],
)
def test_bad_fixture_knobs_are_named(table, fragment):
    """A bad [cms] value raises FixtureError naming the key."""
    with pytest.raises(FixtureError, match=fragment):
        parse_knobs(table)


def test_knobs_mask_the_password():
    """The control API never shows the API password."""
    assert CmsKnobs().as_dict()["password"] == "***"
