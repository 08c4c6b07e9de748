"""The store's bookings: rows round-trip, per-meeting savepoints, the engine's look-ups, and v3."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Owner, Recurrence
from xesync.model import Booking, BookingStatus, RoomResponse, SyncRecord, TmsState
from xesync.store import Store
from xesync.store_bookings import request_from_json, request_to_json

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)


def make_request(**changes):
    base = {
        "external_key": "xs1-abc",
        "title": "Weekly",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "time_zone": "Europe/Oslo",
        "owner": Owner(
            username="LAB\\alice", first_name="Alice", last_name="Example", email="alice@lab.example"
        ),
        "system_ids": (11, 12),
        "recurrence": Recurrence(
            frequency=Frequency.WEEKLY, interval=1, weekdays=(1,), start_date=date(2026, 12, 7), count=10
        ),
        "occurrence_limit": 10,
        "exceptions": (
            OccurrenceChange(recurrence_id=T0 + timedelta(days=7)),
            OccurrenceChange(
                recurrence_id=T0 + timedelta(days=14),
                start=T0 + timedelta(days=14, hours=2),
                end=T0 + timedelta(days=14, hours=3),
            ),
        ),
        "conference_id": 42,
        "version": 7,
    }
    base.update(changes)
    return ConferenceRequest(**base)


def make_booking(**changes):
    base = {
        "uid": "UID-1",
        "external_key": "xs1-abc",
        "conference_id": 42,
        "version": 7,
        "owner": "LAB\\alice",
        "organiser": "alice@lab.example",
        "rooms": ("Room-Oslo@Lab.Example", "room-bergen@lab.example"),
        "subject": "Weekly",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "content_hash": "h1",
        "request": make_request(),
        "state": TmsState.SAVED,
        "info_text": "Dial 990042@video.lab.example",
        "updated_at": T0,
    }
    base.update(changes)
    return Booking(**base)


def make_record(room="room-oslo@lab.example", **changes):
    base = {
        "room": room,
        "uid": "UID-1",
        "item_id": f"item-{room}",
        "change_key": "ck1",
        "content_hash": "ih1",
        "status": BookingStatus.BOOKED,
        "organiser": "alice@lab.example",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "subject": "Weekly",
        "updated_at": T0,
        "response": RoomResponse.ACCEPTED,
        "dial_in_hash": "d1",
    }
    base.update(changes)
    return SyncRecord(**base)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "state" / "xesync.db") as opened:
        yield opened


def test_request_json_round_trips():
    """A request with owner, series, limit and both kinds of exception reads back equal."""
    request = make_request()
    assert request_from_json(request_to_json(request)) == request
    single = make_request(
        recurrence=None, occurrence_limit=None, exceptions=(), owner=None, conference_id=None
    )
    assert request_from_json(request_to_json(single)) == single


def test_booking_round_trips_with_lower_cased_rooms(store):
    """A booking is stored and read back whole; its room keys are lower case."""
    with store.transaction() as tx:
        tx.upsert_booking(make_booking())
    got = store.booking("UID-1")
    assert got == make_booking()
    assert got.rooms == ("room-oslo@lab.example", "room-bergen@lab.example")
    assert store.bookings(live_only=True) == [got]


def test_booking_upsert_replaces_by_key(store):
    """Saving a booking again with the same (uid, occurrence) replaces it instead of adding one."""
    with store.transaction() as tx:
        tx.upsert_booking(make_booking())
        tx.upsert_booking(make_booking(version=8, state=TmsState.DELETED))
    assert store.bookings() == [make_booking(version=8, state=TmsState.DELETED)]
    assert store.bookings(live_only=True) == []


def test_records_for_uid_item_and_due(store):
    """The engine finds a meeting's records in every room, a record by item id, and due rechecks."""
    due = make_record("room-bergen@lab.example", recheck_at=T0)
    with store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.upsert_record(due)
    assert [r.room for r in store.records_for_uid("UID-1")] == [
        "room-bergen@lab.example",
        "room-oslo@lab.example",
    ]
    assert store.record_by_item("room-oslo@lab.example", "item-room-oslo@lab.example") == make_record()
    assert store.record_by_item("room-oslo@lab.example", "nope") is None
    assert store.due("room-bergen@lab.example", T0 - timedelta(seconds=1)) == []
    assert store.due("room-bergen@lab.example", T0) == [due]


def test_next_recheck_is_the_rooms_earliest_due_or_not(store):
    """The dispatcher's question: the room's earliest recheck, past or future; none without one."""
    with store.transaction() as tx:
        tx.upsert_record(make_record(recheck_at=T0 + timedelta(hours=2)))
        tx.upsert_record(make_record(uid="UID-2", item_id="item-2", recheck_at=T0 - timedelta(minutes=5)))
        tx.upsert_record(make_record(uid="UID-3", item_id="item-3"))
        tx.upsert_record(make_record("room-bergen@lab.example", uid="UID-4", recheck_at=T0))
    assert store.next_recheck("room-oslo@lab.example") == T0 - timedelta(minutes=5)
    assert store.next_recheck("room-bergen@lab.example") == T0
    assert store.next_recheck("room-tromso@lab.example") is None


def test_record_room_key_is_lower_cased_when_built():
    """A record built from a mixed-case room address keys on the lower-case address."""
    assert make_record("Room-Oslo@LAB.example").room == "room-oslo@lab.example"


def write_then_fail(tx):
    with tx.savepoint("second"):
        tx.upsert_booking(make_booking())
        raise ValueError("boom")


def test_savepoint_undoes_one_meeting_and_keeps_the_others(store):
    """A failing savepoint rolls back only its own writes; the transaction still commits the rest."""
    with store.transaction() as tx:
        with tx.savepoint("first"):
            tx.upsert_record(make_record())
        with pytest.raises(ValueError, match="boom"):
            write_then_fail(tx)
    assert store.booking("UID-1") is None
    assert store.record("room-oslo@lab.example", "UID-1") == make_record()
