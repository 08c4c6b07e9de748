"""TMS recurrence expansion, value formats, knobs and directory GUIDs (units of the TMS simulator)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xesync.lab.fixture import DirectoryLink, FixtureError, load_fixture
from xesync.lab.tms.directory import directory_guids, guid_map
from xesync.lab.tms.knobs import TmsKnobs, parse_knobs
from xesync.lab.tms.recurrence import MAX_OCCURRENCES, Pattern, RecurrenceError
from xesync.lab.tms.values import default_title, fmt_time, parse_time, status_matches

TUE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_weekly_on_several_days_by_instances():
    """Weekly on Tuesday and Thursday gives alternating days, counted from the first occurrence."""
    starts = Pattern(
        frequency="Weekly", days=["Tuesday", "Thursday"], end_type="EndByInstances", instances=4
    ).starts(TUE)
    assert starts == [TUE, TUE + timedelta(days=2), TUE + timedelta(days=7), TUE + timedelta(days=9)]


def test_biweekly_interval_and_end_date():
    """Interval 2 skips a week; EndByDate includes the end day."""
    pattern = Pattern(frequency="Weekly", interval=2, end_type="EndByDate", end_date=TUE + timedelta(days=28))
    assert pattern.starts(TUE) == [TUE, TUE + timedelta(days=14), TUE + timedelta(days=28)]


def test_daily_weekday_skips_weekends():
    """DailyWeekday gives Monday to Friday only."""
    starts = Pattern(frequency="DailyWeekday", end_type="EndByInstances", instances=5).starts(TUE)
    assert [s.strftime("%a") for s in starts] == ["Tue", "Wed", "Thu", "Fri", "Mon"]


def test_monthly_last_weekday_and_day_of_month():
    """BySetPosition -1 is the last given weekday; 0 keeps the meeting's day of month."""
    last_tuesday = Pattern(
        frequency="Monthly", days=["Tuesday"], by_set_position=-1, end_type="EndByInstances", instances=3
    )
    assert [s.date().isoformat() for s in last_tuesday.starts(TUE)] == [
        "2026-12-29",
        "2027-01-26",
        "2027-02-23",
    ]
    same_day = Pattern(frequency="Monthly", by_set_position=0, end_type="EndByInstances", instances=2)
    assert [s.date().isoformat() for s in same_day.starts(TUE)] == ["2026-12-01", "2027-01-01"]


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        (Pattern(end_type="EndNever"), "never_ending"),
        (Pattern(end_type="Default"), "never_ending"),
        (Pattern(end_type="EndByInstances", instances=101), "too_many"),
        (Pattern(frequency="Daily", end_type="EndByDate", end_date=TUE + timedelta(days=200)), "too_many"),
        (Pattern(frequency="Yearly", end_type="EndByInstances", instances=2), "unsupported"),
        (Pattern(frequency="Hourly", end_type="EndByInstances", instances=2), "unsupported"),
    ],
)
def test_declined_patterns(pattern, kind):
    """Never-ending, over-100 and yearly/sub-daily series are declined with their kind."""
    with pytest.raises(RecurrenceError) as info:
        pattern.starts(TUE)
    assert info.value.kind == kind


@given(
    frequency=st.sampled_from(["Daily", "DailyWeekday", "Weekly", "Monthly"]),
    interval=st.integers(1, 4),
    count=st.integers(1, MAX_OCCURRENCES),
)
def test_expansion_is_ordered_starts_at_first_and_has_the_count(frequency, interval, count):
    """Any supported pattern by instances yields exactly that many increasing starts from the first."""
    starts = Pattern(
        frequency=frequency, interval=interval, end_type="EndByInstances", instances=count
    ).starts(TUE)
    assert len(starts) == count
    assert starts[0] == TUE
    assert all(a < b for a, b in itertools.pairwise(starts))


def test_time_formats():
    """Both the space and T forms parse; the space form is emitted; bad input is refused."""
    assert parse_time("2025-03-04 09:00:00Z") == datetime(2025, 3, 4, 9, tzinfo=UTC)
    assert parse_time("2025-03-04T09:00:00Z") == datetime(2025, 3, 4, 9, tzinfo=UTC)
    assert parse_time("2014-07-31T23:59:59") == datetime(2014, 7, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_time("2025-03-04T10:00:00+01:00") == datetime(2025, 3, 4, 9, tzinfo=UTC)
    assert fmt_time(datetime(2021, 1, 29, 13, 9, 18, tzinfo=UTC)) == "2021-01-29 13:09:18Z"
    with pytest.raises(ValueError):
        parse_time("tomorrow")


def test_status_filters_and_default_title():
    """ConferenceStatus filters group statuses; the default title is TMS's US format."""
    assert status_matches("PendingAndOngoing", "Ongoing")
    assert not status_matches("AllExceptDeleted", "Deleted")
    assert status_matches("All", "Deleted")
    assert default_title(datetime(2021, 1, 29, 14, 9, tzinfo=UTC)) == "Meeting 1/29/2021 2:09 PM"


def test_knobs_parse_from_the_fixture_table_and_refuse_bad_values():
    """The [tms] table sets knobs; unknown keys and bad values name the key."""
    knobs = parse_knobs({"port": 0, "owner_to_cms": "none", "booking_window_days": 30})
    assert knobs.owner_to_cms == "none"
    assert knobs.booking_window_days == 30
    with pytest.raises(FixtureError, match="unknown"):
        parse_knobs({"no_such_knob": 1})
    with pytest.raises(FixtureError, match="owner_to_cms"):
        parse_knobs({"owner_to_cms": "ownerEmail"})
    with pytest.raises(ValueError, match="session_lifetime_s"):
        TmsKnobs().updated({"session_lifetime_s": "47m"})
    assert TmsKnobs().updated({"codes": {"stale_version": -1}}).code("stale_version") == -1
    assert TmsKnobs().needs_session("SaveConferenceWithMode")
    assert not TmsKnobs().needs_session("GetDefaultConference")


def test_directory_guids_by_uid_account_and_mail():
    """entryUUID and binary objectGUID values map uid, sAMAccountName and mail to the GUID."""
    guid = uuid.uuid4()
    entries = [
        {"uid": ["alice"], "mail": ["alice@lab.example"], "entryUUID": "1234-abcd"},
        {"sAMAccountName": "bob", "objectGUID": guid.bytes_le},
        {"uid": ["dave"]},
    ]
    guids = guid_map(entries)
    assert guids == {"alice": "1234-abcd", "alice@lab.example": "1234-abcd", "bob": str(guid)}


def test_directory_guids_from_the_lab_ldif_match_the_cms_import():
    """TMS reads the same stable entryUUIDs from the lab directory that the CMS simulator imports."""
    fixture = load_fixture()
    spec = fixture.directory
    link = DirectoryLink(
        url=spec.ldif.as_uri().replace("file://", "ldif://", 1),
        bind_dn=spec.bind_dn,
        password=spec.password,
        base_dn=spec.base_dn,
        pmp_group_dn=spec.pmp_group_dn,
    )
    guids = directory_guids(link)
    assert {"alice", "alice@lab.example", "bob", "carol", "dave"} <= set(guids)
    assert guids["alice"] == guids["alice@lab.example"]
    assert "erin@partner.example" not in guids
    assert directory_guids(None) == {}


def test_unreachable_directory_gives_no_guids():
    """A directory that cannot be reached leaves TMS without GUIDs instead of failing the lab."""
    link = DirectoryLink(
        url="ldap://127.0.0.1:1", bind_dn="cn=x", password="y", base_dn="dc=x", pmp_group_dn="cn=g"
    )
    assert directory_guids(link) == {}
