"""Lab helpers for the Exchange contract tests: a lab user as organiser, through unmodified exchangelib."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from exchangelib import (
    CalendarItem,
    EWSDateTime,
    EWSTimeZone,
)
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern

from xesync.adapters.exchange import ExchangeCalendarSource
from xesync.adapters.exchange_items import response_of
from xesync.lab.outlook import OutlookUser
from xesync.meetings import Response


class LabOrganiser(OutlookUser):
    """The :class:`CalendarDriver` for the lab: the product's Outlook user, with the hooks the
    contract tests drive (the organiser's side of moves, cancellations and responses)."""

    def __init__(self, lab: Any, room: str, organiser: str = "alice@lab.example") -> None:
        super().__init__(lab.describe()["ews"], organiser)
        self.lab = lab
        self.room = room
        self.organiser = organiser

    def now(self) -> datetime:
        """The lab clock."""
        return self.lab.clock.now()

    def book(self, subject: str, start: datetime, end: datetime, *, weekly: int | None = None) -> str:
        """Alice sends the meeting with the room as a resource and Bob as a required attendee."""
        tz = EWSTimeZone(str(start.tzinfo))
        item = CalendarItem(
            account=self.account,
            folder=self.account.calendar,
            subject=subject,
            start=EWSDateTime.from_datetime(start).astimezone(tz),
            end=EWSDateTime.from_datetime(end).astimezone(tz),
            resources=[self.room],
            required_attendees=["bob@lab.example"],
        )
        if weekly is not None:
            item.recurrence = Recurrence(
                pattern=WeeklyPattern(interval=1, weekdays=[start.isoweekday()]),
                boundary=NumberedPattern(start=start.date(), number=weekly),
            )
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        item.refresh()
        self._sent[item.uid] = item
        return str(item.uid)

    def book_rooms(self, subject: str, start: datetime, end: datetime, rooms: list[str]) -> str:
        """Send a meeting to several rooms at once."""
        tz = EWSTimeZone(str(start.tzinfo))
        item = CalendarItem(
            account=self.account, folder=self.account.calendar, subject=subject,
            start=EWSDateTime.from_datetime(start).astimezone(tz),
            end=EWSDateTime.from_datetime(end).astimezone(tz),
            resources=rooms,
        )  # fmt: skip
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        item.refresh()
        self._sent[item.uid] = item
        return str(item.uid)

    def move(self, uid: str, start: datetime, end: datetime) -> None:
        """Alice moves the meeting and sends the update."""
        item = self._sent[uid]
        item.refresh()
        item.start, item.end = EWSDateTime.from_datetime(start), EWSDateTime.from_datetime(end)
        item.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)

    def move_occurrence(self, uid: str, index: int, start: datetime, end: datetime) -> None:
        """Alice moves one occurrence of her series."""
        occurrence = self._sent[uid].occurrence(index)
        occurrence.refresh()
        occurrence.start, occurrence.end = EWSDateTime.from_datetime(start), EWSDateTime.from_datetime(end)
        occurrence.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)

    def cancel_occurrence(self, uid: str, index: int) -> None:
        """Alice cancels one occurrence of her series."""
        occurrence = self._sent[uid].occurrence(index)
        occurrence.refresh()
        occurrence.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)

    def cancel(self, uid: str) -> None:
        """Alice cancels the meeting."""
        item = self._sent[uid]
        item.refresh()
        item.cancel()

    def response_seen(self, uid: str) -> Response:
        """The room's response on Alice's copy."""
        item = self._sent[uid]
        item.refresh()
        attendees = [*(item.resources or ()), *(item.required_attendees or ())]
        (room,) = [a for a in attendees if a.mailbox.email_address.lower() == self.room]
        return response_of(room.response_type)

    def inbox(self) -> list[tuple[str, str]]:
        """Alice's inbox."""
        return [(m.subject, str(m.body or "")) for m in self.account.inbox.all().only("subject", "body")]


LAB_NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
# The lab room whose calendar processing leaves meetings tentative (AutomateProcessing AutoUpdate).
LAB_ROOM = "room-tromso@lab.example"


@pytest.fixture
def lab_at(lab) -> Iterator[Any]:
    """The lab with its clock on LAB_NOW (so the DST case does not depend on today), restored after."""
    lab.clock.set(LAB_NOW)
    yield lab
    lab.clock.set(datetime.now(UTC))


@pytest.fixture
def exchange_source(lab_at, lab_config) -> Iterator[ExchangeCalendarSource]:
    """The Exchange adapter on the lab, as `xesync lab serve --write-config` configures it."""
    source = ExchangeCalendarSource(lab_config.exchange, lab_config.rooms, lab_config.sync.lookahead)
    yield source
    source.close()


@pytest.fixture
def organiser(lab_at) -> Iterator[LabOrganiser]:
    """Alice, booking the tentative lab room."""
    driver = LabOrganiser(lab_at, LAB_ROOM)
    yield driver
    driver.close()
