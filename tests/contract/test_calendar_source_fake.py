"""The CalendarSource contract (test_calendar_source.py) run against the in-memory fake the engine tests use.

:class:`FakeOrganiser` is the contract's :class:`CalendarDriver` for the fake: the organiser writes the
room's items directly, as Exchange would deliver them. Passing the same contract as the Exchange adapter
keeps the fake honest.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes import FakeCalendarSource

# The contract lives beside this module; pytest's importlib mode does not put this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))
from test_calendar_source import CalendarSourceContract

from xesync.meetings import Frequency, Occurrence, Recurrence, Response, RoomItem


class FakeOrganiser:
    """The :class:`CalendarDriver` for the in-memory fake: the organiser writes room items directly."""

    def __init__(self, source: FakeCalendarSource, room: str = "room-tromso@lab.example") -> None:
        self.source = source
        self.room = room
        self.organiser = "alice@lab.example"
        self.clock = datetime(2027, 3, 1, 8, tzinfo=UTC)
        self._n = 0

    def now(self) -> datetime:
        """A fixed now."""
        return self.clock

    def _copy(self, uid: str) -> RoomItem:
        copy = self.source.copy(self.room, uid)
        assert copy is not None
        return copy

    def book(self, subject: str, start: datetime, end: datetime, *, weekly: int | None = None) -> str:
        """Put the room's copy of a new meeting (a weekly series expanded in its own zone)."""
        self._n += 1
        uid = f"FAKE-UID-{self._n}"
        zone = str(start.tzinfo)
        occurrences: tuple[Occurrence, ...] = ()
        recurrence = None
        if weekly is not None:
            local_start = start.replace(tzinfo=None)
            occurrences = tuple(
                Occurrence(
                    recurrence_id=(s := (local_start + timedelta(weeks=i)).replace(tzinfo=start.tzinfo)),
                    start=s,
                    end=s + (end - start),
                )
                for i in range(weekly)
            )
            recurrence = Recurrence(
                frequency=Frequency.WEEKLY,
                weekdays=(start.isoweekday(),),
                start_date=start.date(),
                count=weekly,
            )
        self.source.put(
            RoomItem(
                room=self.room, uid=uid, item_id=f"item-{uid}", change_key="ck", subject=subject,
                organiser=self.organiser, start=start, end=end, time_zone=zone,
                attendees=frozenset({self.room, "bob@lab.example"}), response=Response.NO_RESPONSE,
                recurrence=recurrence, occurrences=occurrences,
            )
        )  # fmt: skip
        return uid

    def move(self, uid: str, start: datetime, end: datetime) -> None:
        """Move the meeting."""
        self.source.put(dataclasses.replace(self._copy(uid), start=start, end=end))

    def move_occurrence(self, uid: str, index: int, start: datetime, end: datetime) -> None:
        """Move the ``index``-th occurrence."""
        copy = self._copy(uid)
        occ = list(copy.occurrences)
        occ[index - 1] = Occurrence(recurrence_id=occ[index - 1].recurrence_id, start=start, end=end)
        self.source.put(dataclasses.replace(copy, occurrences=tuple(occ)))

    def cancel_occurrence(self, uid: str, index: int) -> None:
        """Cancel the ``index``-th occurrence."""
        copy = self._copy(uid)
        occ = list(copy.occurrences)
        gone = occ.pop(index - 1)
        self.source.put(
            dataclasses.replace(
                copy,
                occurrences=tuple(occ),
                deleted_occurrences=(*copy.deleted_occurrences, gone.recurrence_id),
            )
        )

    def cancel(self, uid: str) -> None:
        """Cancel the meeting: the room keeps it marked cancelled."""
        self.source.put(dataclasses.replace(self._copy(uid), cancelled=True))

    def response_seen(self, uid: str) -> Response:
        """The last response the room sent for ``uid``."""
        answers = [kind for _, u, kind, _ in self.source.responses if u == uid]
        return {"accept": Response.ACCEPT, "decline": Response.DECLINE}.get(
            answers[-1] if answers else "", Response.NO_RESPONSE
        )

    def inbox(self) -> list[tuple[str, str]]:
        """Responses and mails that reached the organiser."""
        answers = [(f"{kind}: {uid}", message) for _, uid, kind, message in self.source.responses]
        return answers + [(m.subject, m.html or m.text) for m in self.source.outbox]


class TestFakeCalendarSource(CalendarSourceContract):
    """The same contract against the in-memory fake the engine tests use, so the fake stays honest."""

    @pytest.fixture
    def source(self) -> FakeCalendarSource:
        """A fresh fake."""
        return FakeCalendarSource()

    @pytest.fixture
    def driver(self, source) -> FakeOrganiser:
        """The fake's organiser."""
        return FakeOrganiser(source)
