"""The CalendarSource contract (ports.CalendarSource), run against the Exchange adapter over the lab's EWS.

:class:`CalendarSourceContract` holds the behaviour every calendar source must have, after vdirsyncer's
``StorageTests``. How a meeting comes to exist (an organiser sending it, a fake inserting it) is
source-specific, so it sits behind the small :class:`CalendarDriver` hooks that a subclass provides
with the ``source`` and ``driver`` fixtures. :class:`TestExchangeCalendarSource` drives the lab with
unmodified exchangelib as the organiser; the in-memory fake subclasses the contract the same way
(test_calendar_source_fake.py).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

import pytest

# ews_lab lives beside this module; pytest's importlib mode does not put this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))
import ews_lab

from xesync.errors import ExchangeItemError
from xesync.meetings import Frequency, ItemRef, Mail, Response, RoomChanges, RoomItem

if TYPE_CHECKING:
    from xesync.ports import CalendarSource

LOOKAHEAD = timedelta(days=180)
OSLO = "Europe/Oslo"


class CalendarDriver(Protocol):
    """What a contract test needs to make happen on the source's side, as an organiser would."""

    room: str  # a room that leaves meetings unanswered, so the answers are the source's user's
    organiser: str  # the organiser's address, lower case

    def now(self) -> datetime:
        """The source's notion of now."""
        ...

    def book(self, subject: str, start: datetime, end: datetime, *, weekly: int | None = None) -> str:
        """Send a meeting (``weekly``: a weekly series of that many occurrences) to the room; its UID."""
        ...

    def move(self, uid: str, start: datetime, end: datetime) -> None:
        """Move the whole (single) meeting."""
        ...

    def move_occurrence(self, uid: str, index: int, start: datetime, end: datetime) -> None:
        """Move the ``index``-th (1-based) occurrence of a series."""
        ...

    def cancel_occurrence(self, uid: str, index: int) -> None:
        """Cancel the ``index``-th (1-based) occurrence of a series."""
        ...

    def cancel(self, uid: str) -> None:
        """Cancel the whole meeting."""
        ...

    def response_seen(self, uid: str) -> Response:
        """The room's response as the organiser's copy shows it."""
        ...

    def inbox(self) -> list[tuple[str, str]]:
        """``(subject, body)`` of every mail in the organiser's inbox."""
        ...


def local(day: datetime, hour: int, zone: str) -> datetime:
    """``day``'s date at ``hour``:00 in ``zone``."""
    return datetime.combine(day.date(), time(hour), tzinfo=ZoneInfo(zone))


class CalendarSourceContract:
    """What every :class:`~xesync.ports.CalendarSource` does; subclasses give ``source`` and ``driver``."""

    @pytest.fixture
    def source(self) -> CalendarSource:
        """The source under test (subclasses override)."""
        raise NotImplementedError

    @pytest.fixture
    def driver(self) -> CalendarDriver:
        """The hooks that act as organiser (subclasses override)."""
        raise NotImplementedError

    # -- helpers

    @staticmethod
    def window(driver: CalendarDriver) -> tuple[datetime, datetime]:
        """Now to now plus the lookahead, as the engine passes it."""
        now = driver.now()
        return now, now + LOOKAHEAD

    def sync(self, source: CalendarSource, driver: CalendarDriver, state: str | None = None) -> RoomChanges:
        """One pass over the driver's room."""
        return source.changes(driver.room, state, window=self.window(driver))

    def booked(
        self, source: CalendarSource, driver: CalendarDriver, subject: str = "Planning", days: int = 2
    ) -> tuple[str, RoomItem, RoomChanges]:
        """A warm state, then one single meeting booked and read: (uid, the room item, that pass)."""
        first = self.sync(source, driver)
        start = local(driver.now() + timedelta(days=days), 10, OSLO)
        uid = driver.book(subject, start, start + timedelta(hours=1))
        changes = self.sync(source, driver, first.sync_state)
        (item,) = [i for i in changes.items if i.uid == uid]
        return uid, item, changes

    # -- reading

    def test_new_meeting_comes_with_its_fields(self, source, driver):
        """A meeting sent to the room arrives as one room item with organiser, times, zone and attendees."""
        first = self.sync(source, driver)
        start = local(driver.now() + timedelta(days=3), 10, OSLO)
        uid = driver.book("Planning", start, start + timedelta(minutes=45))
        changes = self.sync(source, driver, first.sync_state)
        (item,) = changes.items
        assert changes.full is False
        assert changes.deleted == ()
        assert item.uid == uid
        assert item.room == driver.room
        assert item.subject == "Planning"
        assert item.organiser == driver.organiser
        assert item.start == start.astimezone(UTC)
        assert item.end == start.astimezone(UTC) + timedelta(minutes=45)
        assert ZoneInfo(item.time_zone).utcoffset(start.replace(tzinfo=None)) == start.utcoffset()
        assert driver.room in item.attendees
        assert driver.organiser not in item.attendees  # the organiser is the organiser, not an attendee
        assert item.recurrence is None
        assert item.cancelled is False
        assert item.response in {Response.NO_RESPONSE, Response.TENTATIVE, Response.UNKNOWN}

    def test_full_sync_returns_every_meeting(self, source, driver):
        """A pass without a state is full and returns the meetings already there."""
        start = local(driver.now() + timedelta(days=2), 9, OSLO)
        uids = {
            driver.book(s, start + timedelta(days=n), start + timedelta(days=n, hours=1))
            for n, s in enumerate("AB")
        }
        changes = self.sync(source, driver)
        assert changes.full is True
        assert {i.uid for i in changes.items} == uids

    def test_pass_without_change_returns_nothing(self, source, driver):
        """A second pass with the stored state returns no items and no deletions."""
        _, _, changes = self.booked(source, driver)
        again = self.sync(source, driver, changes.sync_state)
        assert (again.items, again.deleted, again.full) == ((), (), False)

    def test_moved_meeting_comes_again_as_the_same_item(self, source, driver):
        """Moving a meeting brings the same item id with the new times and a new changekey."""
        uid, item, changes = self.booked(source, driver)
        start = item.start + timedelta(days=1)
        driver.move(uid, start, start + timedelta(hours=2))
        (moved,) = self.sync(source, driver, changes.sync_state).items
        assert (moved.uid, moved.item_id) == (uid, item.item_id)
        assert (moved.start, moved.end) == (start, start + timedelta(hours=2))
        assert moved.change_key != item.change_key

    def test_cancelled_meeting_comes_cancelled_or_deleted(self, source, driver):
        """Cancelling a meeting brings its item marked cancelled, or its id as deleted."""
        uid, item, changes = self.booked(source, driver)
        driver.cancel(uid)
        after = self.sync(source, driver, changes.sync_state)
        cancelled = [i for i in after.items if i.uid == uid]
        assert (cancelled and cancelled[0].cancelled) or item.item_id in after.deleted

    def test_invalid_sync_state_starts_over_with_a_full_pass(self, source, driver):
        """A state the source does not know makes it start over by itself and say so with full=True."""
        uid, _, _ = self.booked(source, driver)
        changes = self.sync(source, driver, "bm90LWEtc3RhdGU=")
        assert changes.full is True
        assert [i.uid for i in changes.items] == [uid]
        assert self.sync(source, driver, changes.sync_state).items == ()

    def test_weekly_series_keeps_local_time_across_dst_with_moved_and_cancelled_occurrences(
        self, source, driver
    ):
        """A weekly series keeps its local time across DST, with one moved and one cancelled occurrence."""
        now = driver.now()
        change = _next_dst_change(now + timedelta(days=14), OSLO)
        monday = change - timedelta(days=change.weekday() + 14)  # two Mondays before the change
        first = local(monday, 9, OSLO)
        uid = driver.book("Weekly", first, first + timedelta(hours=1), weekly=5)
        second = first + timedelta(days=7)
        driver.move_occurrence(uid, 2, second + timedelta(days=1), second + timedelta(days=1, hours=1))
        driver.cancel_occurrence(uid, 4)
        (series,) = self.sync(source, driver).items
        assert series.is_series
        assert series.recurrence is not None
        assert (series.recurrence.frequency, series.recurrence.weekdays) == (Frequency.WEEKLY, (1,))
        assert series.recurrence.count == 5
        zone = ZoneInfo(series.time_zone)
        starts = [o.start.astimezone(zone) for o in series.occurrences]
        assert [(s.date(), s.time()) for s in starts] == [
            (first.date(), time(9)),
            ((second + timedelta(days=1)).date(), time(9)),
            ((first + timedelta(days=14)).date(), time(9)),
            ((first + timedelta(days=28)).date(), time(9)),
        ]
        assert len({s.utcoffset() for s in starts}) == 2  # both sides of the change
        moved = series.occurrences[1]
        assert moved.moved
        assert moved.recurrence_id == local(second, 9, OSLO).astimezone(UTC)
        assert series.deleted_occurrences == (local(first + timedelta(days=21), 9, OSLO).astimezone(UTC),)

    def test_item_reads_one_meeting_again(self, source, driver):
        """item() returns the room item as changes() did."""
        _, item, _ = self.booked(source, driver)
        assert source.item(driver.room, item.item_id, window=self.window(driver)) == item

    # -- writing

    def test_set_body_returns_the_new_changekey(self, source, driver):
        """set_body replaces the body, returns the new changekey, and item() shows the new body."""
        _, item, _ = self.booked(source, driver)
        ref = source.set_body(
            ItemRef(driver.room, item.item_id, item.change_key), "<p>Dial 1234</p>", html=True
        )
        assert (ref.room, ref.item_id) == (driver.room, item.item_id)
        assert ref.change_key != item.change_key
        again = source.item(driver.room, item.item_id, window=self.window(driver))
        assert again is not None
        assert (again.body, again.body_is_html, again.change_key) == (
            "<p>Dial 1234</p>",
            True,
            ref.change_key,
        )

    def test_set_body_then_accept_reaches_the_organiser(self, source, driver):
        """Writing the body, then accepting with the new changekey, shows the organiser the room's Accept."""
        uid, item, _ = self.booked(source, driver)
        ref = source.set_body(ItemRef(driver.room, item.item_id, item.change_key), "Dial 1234", html=False)
        source.accept(ref, "Booked")
        assert driver.response_seen(uid) is Response.ACCEPT
        accepted = source.item(driver.room, item.item_id, window=self.window(driver))
        assert accepted is not None
        assert accepted.response is Response.ACCEPT
        assert accepted.body == "Dial 1234"

    def test_decline_sends_the_reason_and_removes_the_item(self, source, driver):
        """Declining tells the organiser the reason, and the item is gone from the room."""
        uid, item, changes = self.booked(source, driver, subject="Retro")
        source.decline(ItemRef(driver.room, item.item_id, item.change_key), "The room is busy in TMS")
        assert driver.response_seen(uid) is Response.DECLINE
        assert any("busy in TMS" in body for _, body in driver.inbox())
        assert source.item(driver.room, item.item_id, window=self.window(driver)) is None
        assert self.sync(source, driver, changes.sync_state).deleted == (item.item_id,)

    def test_answer_with_a_stale_changekey_is_an_item_error(self, source, driver):
        """Accepting with a changekey that is no longer current raises ExchangeItemError for that item."""
        _, item, _ = self.booked(source, driver)
        source.set_body(ItemRef(driver.room, item.item_id, item.change_key), "x", html=False)
        with pytest.raises(ExchangeItemError) as info:
            source.accept(ItemRef(driver.room, item.item_id, item.change_key))
        assert (info.value.room, info.value.item_id) == (driver.room, item.item_id)

    def test_mail_reaches_the_organiser(self, source, driver):
        """send_mail delivers the mail, as the room, to the organiser's inbox."""
        source.send_mail(
            Mail(
                room=driver.room,
                to=driver.organiser,
                subject="Booked",
                text="Dial 1234",
                html="<p>Dial 1234</p>",
            )
        )
        assert ("Booked", "<p>Dial 1234</p>") in driver.inbox()


def _next_dst_change(after: datetime, zone: str) -> datetime:
    """The first day on or after ``after`` whose UTC offset in ``zone`` differs from the day before."""
    tz = ZoneInfo(zone)
    day = after.astimezone(tz).replace(hour=12, minute=0, second=0, microsecond=0)
    for _ in range(400):
        if day.utcoffset() != (day - timedelta(days=1)).utcoffset():
            return day
        day += timedelta(days=1)
    raise AssertionError(f"{zone} has no DST change")


# ---------------------------------------------------------------------------------------- the lab


# The lab's fixtures, bound here so that pytest finds them for this module.
lab_at = ews_lab.lab_at
exchange_source = ews_lab.exchange_source
organiser = ews_lab.organiser


class TestExchangeCalendarSource(CalendarSourceContract):
    """The contract, for ExchangeCalendarSource against the lab's EWS simulator."""

    @pytest.fixture
    def source(self, exchange_source):
        """The Exchange adapter."""
        return exchange_source

    @pytest.fixture
    def driver(self, organiser):
        """Alice in the lab."""
        return organiser
