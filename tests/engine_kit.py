"""A small kit for engine tests: rooms, people, meetings and an engine over the in-memory fakes."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, timedelta

from fakes import FakeBookingSink, FakeCalendarSource, FakeDirectory, person

from xesync.actions import Policy, RoomInfo
from xesync.engine import Engine
from xesync.meetings import Frequency, Occurrence, Recurrence, Response, RoomItem
from xesync.notify import Templates
from xesync.store import Store

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OSLO = "room-oslo@lab.example"
BERGEN = "room-bergen@lab.example"
TROMSO = "room-tromso@lab.example"
ROOMS = (RoomInfo(OSLO, "Oslo", 11), RoomInfo(BERGEN, "Bergen", 12), RoomInfo(TROMSO, "Tromsø", 13))
ALICE = person("alice")
BOB = person("bob")
_ids = itertools.count(1)
_SINK_WRITES = ("save", "save_occurrence", "delete", "delete_occurrence")
_SOURCE_WRITES = ("set_body", "accept", "decline", "send_mail")
_SOURCE_READS = ("changes", "item")


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Kit:
    """Fakes, a store and an engine, wired like production."""

    def __init__(self, tmp_path, *, policy: Policy | None = None, directory=True, dry_run=False) -> None:
        self.source = FakeCalendarSource()
        self.sink = FakeBookingSink()
        self.directory = FakeDirectory(ALICE, BOB) if directory else None
        self.clock = Clock()
        self.store = Store.open(tmp_path / "state" / "xesync.db")
        self.policy = policy or Policy()
        self.templates = Templates.load()
        self.dry_run = dry_run
        self.engine = self.make_engine()

    def make_engine(self, **changes) -> Engine:
        args = {
            "source": self.source, "sink": self.sink, "store": self.store, "rooms": ROOMS,
            "policy": self.policy, "templates": self.templates, "clock": self.clock,
            "directory": self.directory, "dry_run": self.dry_run, "max_workers": 2,
        }  # fmt: skip
        args.update(changes)
        return Engine(**args)

    def sync(self, *rooms: str):
        return self.engine.sync(list(rooms) or None)

    def close(self) -> None:
        self.store.close()


class Crash:
    """Kills the "process" right after the ``after``-th write reaches TMS or Exchange.

    The call is carried out, then ``KeyboardInterrupt`` stands in for SIGKILL; from then on every port
    call dies before doing anything, so no later room's pass runs either.
    """

    def __init__(self, kit: Kit, after: int) -> None:
        self.kit, self.left, self.dead = kit, after, False
        self.patched: list[tuple[object, str]] = []
        for target, names in (
            (kit.sink, (*_SINK_WRITES, "find")),
            (kit.source, (*_SOURCE_WRITES, *_SOURCE_READS)),
            (kit.directory, ("resolve",)),
        ):
            for name in names:
                self._wrap(target, name, write=name in _SINK_WRITES or name in _SOURCE_WRITES)

    def _wrap(self, target: object, name: str, *, write: bool) -> None:
        call = getattr(target, name)

        def wrapper(*args, **kwargs):
            if self.dead:
                raise KeyboardInterrupt
            out = call(*args, **kwargs)
            if write:
                self.left -= 1
                if self.left == 0:
                    self.dead = True
                    raise KeyboardInterrupt
            return out

        setattr(target, name, wrapper)
        self.patched.append((target, name))

    def undo(self) -> None:
        for target, name in self.patched:
            delattr(target, name)


def meeting(
    uid: str | None = None,
    *,
    room: str = OSLO,
    start: datetime | None = None,
    hours: float = 1,
    organiser: str = "alice@lab.example",
    subject: str = "Project review",
    **changes,
) -> RoomItem:
    """A room's copy of a single meeting tomorrow at 09:00 UTC unless told otherwise."""
    uid = uid or f"UID{next(_ids):04d}"
    start = start or NOW + timedelta(days=1, hours=1)
    base = {
        "room": room, "uid": uid, "item_id": f"{room}:{uid}", "change_key": "ck0", "subject": subject,
        "organiser": organiser, "organiser_name": organiser.split("@", maxsplit=1)[0].title(), "start": start,
        "end": start + timedelta(hours=hours), "time_zone": "Europe/Oslo",
        "attendees": frozenset({organiser, room}),
        "body": "Agenda: numbers.", "response": Response.NO_RESPONSE,
    }  # fmt: skip
    base.update(changes)
    return RoomItem(**base)


def weekly(uid: str | None = None, *, room: str = OSLO, weeks: int = 6, **changes) -> RoomItem:
    """A weekly series of ``weeks`` occurrences starting tomorrow at 09:00 UTC, expanded."""
    first = NOW + timedelta(days=1, hours=1)
    occurrences = tuple(
        Occurrence(recurrence_id=first + timedelta(weeks=i), start=first + timedelta(weeks=i),
                   end=first + timedelta(weeks=i, hours=1))
        for i in range(weeks)
    )  # fmt: skip
    recurrence = Recurrence(
        frequency=Frequency.WEEKLY,
        interval=1,
        weekdays=(first.isoweekday(),),
        start_date=first.date(),
        count=weeks,
    )
    return meeting(uid, room=room, start=first, recurrence=recurrence, occurrences=occurrences, **changes)


def moved(item: RoomItem, index: int, by: timedelta) -> RoomItem:
    """The series with occurrence ``index`` moved by ``by``."""
    occ = list(item.occurrences)
    o = occ[index]
    occ[index] = Occurrence(recurrence_id=o.recurrence_id, start=o.start + by, end=o.end + by)
    return dataclasses.replace(item, occurrences=tuple(occ))


def cancelled_occurrence(item: RoomItem, index: int) -> RoomItem:
    """The series with occurrence ``index`` cancelled."""
    occ = list(item.occurrences)
    gone = occ.pop(index)
    return dataclasses.replace(
        item, occurrences=tuple(occ), deleted_occurrences=(*item.deleted_occurrences, gone.recurrence_id)
    )


def today() -> date:
    """The kit's date."""
    return NOW.date()
