"""exchangelib calendar items map onto the port values (xesync.adapters.exchange_items), offline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from exchangelib import Body, CalendarItem, EWSDate, EWSDateTime, EWSTimeZone, HTMLBody
from exchangelib.properties import Attendee, Mailbox
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    DeletedOccurrence,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from xesync.adapters.exchange_items import (
    iana_zone,
    response_of,
    to_occurrences,
    to_recurrence,
    to_room_item,
    utc,
)
from xesync.meetings import Frequency, Response

OSLO = EWSTimeZone("Europe/Oslo")
ROOM = "Room-Oslo@Lab.Example"


def attendee(address):
    """An exchangelib attendee with ``address``."""
    return Attendee(mailbox=Mailbox(email_address=address), response_type="Unknown")


def single(**fields):
    """A room's single meeting as GetItem returns it (ITEM_FIELDS), with ``fields`` overriding."""
    values = {
        "id": "AAMk1",
        "changekey": "CK1",
        "uid": "040000008200E00074C5B7101A82E008ABC",
        "type": "Single",
        "subject": "Planning",
        "start": EWSDateTime(2027, 1, 11, 8, tzinfo=EWSTimeZone("UTC")),
        "end": EWSDateTime(2027, 1, 11, 9, tzinfo=EWSTimeZone("UTC")),
        "_start_timezone": OSLO,
        "_end_timezone": OSLO,
        "is_all_day": False,
        "sensitivity": "Normal",
        "is_cancelled": False,
        "my_response_type": "Accept",
        "organizer": Mailbox(name="Alice Example", email_address="Alice@Lab.Example"),
        "required_attendees": [attendee("Bob@Lab.Example")],
        "optional_attendees": None,
        "resources": [attendee("Room-Oslo@Lab.Example")],
        "location": "Oslo",
        "body": Body("hello"),
        "appointment_sequence_number": 3,
    }
    values.update(fields)
    return CalendarItem(**values)


def test_single_meeting_maps_every_field():
    """A single meeting keeps UID, UTC times, zone, organiser and attendees (lower case), body, sequence."""
    item = to_room_item(ROOM, single())
    assert item.room == "room-oslo@lab.example"
    assert item.uid == "040000008200E00074C5B7101A82E008ABC"
    assert (item.item_id, item.change_key) == ("AAMk1", "CK1")
    assert item.start == datetime(2027, 1, 11, 8, tzinfo=UTC)
    assert item.end == datetime(2027, 1, 11, 9, tzinfo=UTC)
    assert type(item.start) is datetime
    assert item.time_zone == "Europe/Oslo"
    assert (item.organiser, item.organiser_name) == ("alice@lab.example", "Alice Example")
    assert item.attendees == frozenset({"bob@lab.example", "room-oslo@lab.example"})
    assert item.response is Response.ACCEPT
    assert (item.body, item.body_is_html) == ("hello", False)
    assert (item.location, item.sequence, item.private, item.cancelled) == ("Oslo", 3, False, False)
    assert item.recurrence is None
    assert item.occurrences == ()


def test_html_body_is_flagged_as_html():
    """An HTMLBody comes back with body_is_html set."""
    item = to_room_item(ROOM, single(body=HTMLBody("<p>x</p>")))
    assert (item.body, item.body_is_html) == ("<p>x</p>", True)


@pytest.mark.parametrize(
    ("sensitivity", "private"), [("Private", True), ("Confidential", True), ("Personal", False)]
)
def test_private_and_confidential_are_private(sensitivity, private):
    """Sensitivity Private and Confidential mark the item private; Personal does not."""
    assert to_room_item(ROOM, single(sensitivity=sensitivity)).private is private


def test_cancelled_item_is_cancelled():
    """IsCancelled carries over as cancelled."""
    assert to_room_item(ROOM, single(is_cancelled=True)).cancelled is True


def test_item_without_organiser_has_an_empty_organiser():
    """An appointment without an organiser maps to an empty organiser, not a crash."""
    item = to_room_item(ROOM, single(organizer=None))
    assert (item.organiser, item.organiser_name) == ("", "")


def test_item_without_start_is_refused():
    """A start exchangelib could not parse (None, ews.md trap 1) raises ValueError, not a made-up time."""
    with pytest.raises(ValueError, match="no start or end"):
        to_room_item(ROOM, single(start=None))


def test_all_day_dates_become_local_midnights():
    """An all-day item (dates, end inclusive, in exchangelib) spans local midnight to local midnight."""
    item = to_room_item(ROOM, single(is_all_day=True, start=EWSDate(2027, 7, 1), end=EWSDate(2027, 7, 1)))
    assert item.all_day is True
    assert item.start == datetime(2027, 6, 30, 22, tzinfo=UTC)
    assert item.end == datetime(2027, 7, 1, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wire", "response"),
    [
        ("Accept", Response.ACCEPT),
        ("Decline", Response.DECLINE),
        ("Tentative", Response.TENTATIVE),
        ("NoResponseReceived", Response.NO_RESPONSE),
        ("Organizer", Response.ORGANIZER),
        ("Unknown", Response.UNKNOWN),
        (None, Response.UNKNOWN),
    ],
)
def test_my_response_type_maps_to_response(wire, response):
    """Every MyResponseType value maps to its Response."""
    assert response_of(wire) is response


@pytest.mark.parametrize(
    ("tz", "name"),
    [
        (EWSTimeZone.from_ms_id("W. Europe Standard Time"), "Europe/Berlin"),
        (EWSTimeZone.from_ms_id("UTC"), "UTC"),
        (EWSTimeZone("Europe/Oslo"), "Europe/Oslo"),
        (None, "UTC"),
    ],
)
def test_windows_zone_ids_become_iana_names(tz, name):
    """Windows zone ids arrive as exchangelib zones whose IANA key is used; UTC aliases and none give UTC."""
    assert iana_zone(tz) == name


def test_naive_datetime_is_refused():
    """utc() refuses a naive datetime instead of guessing its zone."""
    with pytest.raises(ValueError, match="naive"):
        utc(datetime(2027, 1, 1))  # noqa: DTZ001 - the naive value is the point


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (DailyPattern(interval=2), {"frequency": Frequency.DAILY, "interval": 2}),
        (
            WeeklyPattern(interval=1, weekdays=[1, 3], first_day_of_week=7),
            {"frequency": Frequency.WEEKLY, "weekdays": (1, 3), "first_day_of_week": 7},
        ),
        (
            AbsoluteMonthlyPattern(interval=3, day_of_month=15),
            {"frequency": Frequency.MONTHLY, "interval": 3, "day_of_month": 15},
        ),
        (
            RelativeMonthlyPattern(interval=1, weekday=2, week_number=5),
            {"frequency": Frequency.MONTHLY, "weekdays": (2,), "week_of_month": -1},
        ),
        (
            RelativeMonthlyPattern(interval=1, weekday=9, week_number=1),
            {"frequency": Frequency.MONTHLY, "weekdays": (1, 2, 3, 4, 5), "week_of_month": 1},
        ),
        (
            AbsoluteYearlyPattern(day_of_month=24, month=12),
            {"frequency": Frequency.YEARLY, "day_of_month": 24, "month": 12},
        ),
        (
            RelativeYearlyPattern(weekday=10, week_number=2, month=3),
            {"frequency": Frequency.YEARLY, "weekdays": (6, 7), "week_of_month": 2, "month": 3},
        ),
    ],
)
def test_recurrence_patterns_map(pattern, expected):
    """Each EWS pattern maps to the Recurrence fields TMS needs (weekday groups and 'Last' expanded)."""
    rec = to_recurrence(Recurrence(pattern=pattern, boundary=NoEndPattern(start=EWSDate(2027, 1, 4))))
    assert rec is not None
    for name, value in expected.items():
        assert getattr(rec, name) == value
    assert rec.start_date == date(2027, 1, 4)
    assert type(rec.start_date) is date
    assert not rec.has_end


def test_recurrence_boundaries_map():
    """EndDate and Numbered boundaries become end_date and count."""
    weekly = WeeklyPattern(interval=1, weekdays=[1])
    by_date = to_recurrence(
        Recurrence(
            pattern=weekly, boundary=EndDatePattern(start=EWSDate(2027, 1, 4), end=EWSDate(2027, 3, 1))
        )
    )
    by_count = to_recurrence(
        Recurrence(pattern=weekly, boundary=NumberedPattern(start=EWSDate(2027, 1, 4), number=6))
    )
    assert by_date is not None
    assert by_count is not None
    assert (by_date.end_date, by_date.count) == (date(2027, 3, 1), None)
    assert (by_count.end_date, by_count.count) == (None, 6)


def test_series_master_carries_pattern_occurrences_and_deleted_occurrences():
    """A RecurringMaster keeps its pattern, its occurrences and its DeletedOccurrences as recurrence ids."""
    first = datetime(2027, 1, 11, 8, tzinfo=UTC)
    rows = [occurrence_row(first + timedelta(weeks=n)) for n in (0, 2)]
    master = single(
        type="RecurringMaster",
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[1]),
            boundary=NumberedPattern(start=EWSDate(2027, 1, 11), number=3),
        ),
        deleted_occurrences=[DeletedOccurrence(start=EWSDateTime.from_datetime(first + timedelta(weeks=1)))],
    )
    window = (first - timedelta(days=1), first + timedelta(days=60))
    item = to_room_item(ROOM, master, to_occurrences(rows, window))
    assert item.is_series
    assert [o.start for o in item.occurrences] == [first, first + timedelta(weeks=2)]
    assert item.deleted_occurrences == (first + timedelta(weeks=1),)


def test_single_meeting_ignores_occurrence_data():
    """A Single item never carries occurrences, even if some were passed."""
    start = datetime(2027, 1, 11, 8, tzinfo=UTC)
    occurrences = to_occurrences(
        [occurrence_row(start)], (start - timedelta(days=1), start + timedelta(days=1))
    )
    assert to_room_item(ROOM, single(), occurrences).occurrences == ()


def occurrence_row(start, *, original=None, hours=1):
    """A CalendarView instance read with OCCURRENCE_FIELDS."""
    return CalendarItem(
        uid="U",
        start=EWSDateTime.from_datetime(start),
        end=EWSDateTime.from_datetime(start + timedelta(hours=hours)),
        original_start=EWSDateTime.from_datetime(original or start),
    )


def test_moved_occurrence_keeps_its_original_start_as_recurrence_id():
    """An Exception row maps to its current times with OriginalStart as the recurrence id, sorted by start."""
    base = datetime(2027, 1, 11, 8, tzinfo=UTC)
    moved = occurrence_row(base + timedelta(days=8), original=base + timedelta(days=7))
    plain = occurrence_row(base)
    (first, second) = to_occurrences([moved, plain], (base - timedelta(days=1), base + timedelta(days=30)))
    assert (first.recurrence_id, first.start, first.moved) == (base, base, False)
    assert second.recurrence_id == base + timedelta(days=7)
    assert second.start == base + timedelta(days=8)
    assert second.moved


def test_occurrences_outside_the_window_are_left_out():
    """Instances ending at or before the window start, or starting at or after its end, are not returned."""
    base = datetime(2027, 1, 11, 8, tzinfo=UTC)
    rows = [
        occurrence_row(base - timedelta(hours=1)),
        occurrence_row(base),
        occurrence_row(base + timedelta(days=7)),
    ]
    kept = to_occurrences(rows, (base, base + timedelta(days=7)))
    assert [o.start for o in kept] == [base]
