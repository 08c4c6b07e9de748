"""The Resource Booking Attendant's verdicts on series with conflicting instances (ews.md §3.1, §3.5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from xesync.lab.ews.rba import Verdict, decide
from xesync.lab.ews.recurrence import Recurrence
from xesync.lab.ews.settings import RoomPolicy, room_policy
from xesync.lab.ews.store import Item, Person, Store
from xesync.lab.fixture import LabRoom

NOW = datetime(2026, 3, 1, 8, tzinfo=UTC)
ROOM = "room@lab.example"
MONDAYS = [datetime(2026, 3, 9, 9, tzinfo=UTC) + timedelta(weeks=n) for n in range(4)]


def booked(store: Store, start: datetime, uid: str) -> Item:
    """An accepted one-hour single meeting in the room."""
    item = Item(id=store.new_id(), mailbox=ROOM, folder="calendar", uid=uid, my_response="Accept")
    item.start, item.end = start, start + timedelta(hours=1)
    item.organizer = Person("bob@lab.example", "Bob")
    return store.add(item)


def series(store: Store) -> Item:
    """A tentative four-instance weekly series copy in the room."""
    item = Item(id=store.new_id(), mailbox=ROOM, folder="calendar", uid="series")
    item.start, item.end = MONDAYS[0], MONDAYS[0] + timedelta(hours=1)
    item.recurrence = Recurrence(
        pattern="WeeklyRecurrence",
        days_of_week=["Monday"],
        boundary="NumberedRecurrence",
        start_date=date(2026, 3, 9),
        count=4,
    )
    return store.add(item)


@pytest.fixture
def store() -> Store:
    """A store holding the room with Bob's booking on the second Monday."""
    s = Store(lambda: NOW)
    s.add_mailbox(ROOM, "Room", "room")
    booked(s, MONDAYS[1], "bob-1")
    return s


@pytest.mark.parametrize(
    ("percent", "count", "expected"),
    [
        (0, 0, Verdict("The room is already booked by Bob.")),
        (25, 0, Verdict("The room is already booked by Bob.")),
        (20, 1, Verdict("The room is already booked by Bob.")),
        (25, 1, Verdict(declined=(MONDAYS[1],))),
    ],
)
def test_conflicting_instance_is_declined_only_within_both_limits(store, percent, count, expected):
    """One conflict in four instances (25%) passes only when both limits allow it."""
    policy = RoomPolicy(conflict_percentage_allowed=percent, maximum_conflict_instances=count)
    assert decide(store, series(store), policy) == expected


def test_allow_conflicts_accepts_every_instance(store):
    """AllowConflicts accepts the series without declining any instance."""
    assert decide(store, series(store), RoomPolicy(allow_conflicts=True)) == Verdict()


def test_conflict_limits_default_to_zero_and_a_room_overrides_them():
    """Both limits default to 0 (ews.md §3.1); [ews.room_defaults] and a room's own keys set them."""
    plain = room_policy(LabRoom(email="r@x", name="R", tms_system_id=1), {})
    assert (plain.conflict_percentage_allowed, plain.maximum_conflict_instances) == (0, 0)
    room = LabRoom(email="r@x", name="R", tms_system_id=1, settings={"maximum_conflict_instances": 3})
    own = room_policy(room, {"conflict_percentage_allowed": 50, "maximum_conflict_instances": 1})
    assert (own.conflict_percentage_allowed, own.maximum_conflict_instances) == (50, 3)
