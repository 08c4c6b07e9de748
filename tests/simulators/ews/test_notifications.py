"""Pull and streaming notifications on a room calendar (ews.md §1.8, §2.8.7, §2.8.8)."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pytest
from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorInvalidSubscription
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.properties import CreatedEvent, ModifiedEvent, StatusEvent

ROOM = "room-oslo@lab.example"
UTC_TZ = EWSTimeZone("UTC")


def book(account, day, subject="Note"):
    """Alice sends a meeting with the room."""
    start = EWSDateTime(2026, 3, day, 9, tzinfo=UTC_TZ)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject=subject,
        start=start,
        end=start + timedelta(hours=1),
        resources=[ROOM],
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def wait_until(predicate, timeout=5.0):
    """Poll ``predicate`` briefly; bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_pull_subscription_reports_status_when_idle_and_events_after_changes(organiser, service):
    """GetEvents answers a StatusEvent when idle, then the room's Created/Modified events with watermarks."""
    cal = service(ROOM).calendar
    sid, watermark = cal.subscribe_to_pull()
    idle = list(cal.get_events(sid, watermark))
    assert [type(e) for n in idle for e in n.events] == [StatusEvent]
    book(organiser(), 2)
    notes = list(cal.get_events(sid, watermark))
    events = [e for n in notes for e in n.events]
    assert CreatedEvent in {type(e) for e in events}
    assert ModifiedEvent in {type(e) for e in events}
    assert all(e.watermark for e in events)
    room_item_ids = {i.id for i in cal.all().only("id")}
    assert {e.item_id.id for e in events} == room_item_ids
    assert cal.unsubscribe(sid) is True


def test_pull_pages_with_more_events(organiser, service):
    """More than 50 waiting events come back over several GetEvents calls (MoreEvents)."""
    cal = service(ROOM).calendar
    sid, watermark = cal.subscribe_to_pull(event_types=["CreatedEvent", "ModifiedEvent"])
    alice = organiser()
    for day in range(2, 30):
        book(alice, day, subject=f"M{day}")
    notes = list(cal.get_events(sid, watermark))
    assert len(notes) >= 2
    assert notes[0].more_events is True
    assert sum(len(n.events) for n in notes) == 28 * 2


def test_streaming_delivers_events_and_ends_with_closed(ews, organiser, service):
    """A stream yields notifications as changes happen and returns when the server sends Closed."""
    room = service(ROOM, max_connections=3)
    cal = room.calendar
    sid = cal.subscribe_to_streaming()
    received = []
    done = threading.Event()

    def listen():
        for note in cal.get_streaming_events(sid, connection_timeout=1):
            received.extend(note.events)
        done.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert wait_until(lambda: ews.ews.hub.open_streams == 1)
    book(organiser(), 2)
    assert wait_until(lambda: any(isinstance(e, CreatedEvent) for e in received))
    ews.clock.advance(61)  # past ConnectionTimeout: the server closes the stream
    assert done.wait(5)
    assert {type(e) for e in received} >= {CreatedEvent, ModifiedEvent}
    assert all(e.watermark is None for e in received)
    cal.unsubscribe(sid)


def test_streaming_with_a_bad_subscription_id_raises(service):
    """An unknown subscription id answers ErrorInvalidSubscription with ConnectionStatus Closed."""
    cal = service(ROOM).calendar
    with pytest.raises(ErrorInvalidSubscription):
        list(cal.get_streaming_events("SUBdoesnotexist", connection_timeout=1))


def _stream_after_a_gap(ews, organiser, cal, sid):
    """Open a stream on ``sid`` after a change made while none was open, close it; its events."""
    book(organiser(), 2)  # nobody is listening
    received = []
    done = threading.Event()

    def listen():
        for note in cal.get_streaming_events(sid, connection_timeout=1):
            received.extend(note.events)
        done.set()

    threading.Thread(target=listen, daemon=True).start()
    assert wait_until(lambda: ews.ews.hub.open_streams == 1)
    # Closing is safe at once: the lab sends what is queued before its Closed envelope.
    ews.ews.control("streams/close", "POST", None)
    assert done.wait(5)
    return received


def test_a_live_subscription_keeps_its_events_for_the_next_stream_by_default(ews, organiser, service):
    """By default a change made between two streams of one subscription is delivered by the next stream."""
    cal = service(ROOM, max_connections=3).calendar
    list(cal.sync_items(only_fields=["uid"]))
    sid = cal.subscribe_to_streaming()
    received = _stream_after_a_gap(ews, organiser, cal, sid)
    assert CreatedEvent in {type(e) for e in received}
    assert [c for c, _ in cal.sync_items(only_fields=["uid"])] == ["create"]


def test_with_the_knob_off_streams_do_not_replay_missed_events_but_sync_recovers_them(
    ews, organiser, service
):
    """With streaming_keeps_events off, changes made while no stream is open are not streamed later;
    sync_items still sees them."""
    ews.ews.settings = dataclasses.replace(ews.ews.settings, streaming_keeps_events=False)
    cal = service(ROOM, max_connections=3).calendar
    list(cal.sync_items(only_fields=["uid"]))
    sid = cal.subscribe_to_streaming()
    assert _stream_after_a_gap(ews, organiser, cal, sid) == []
    assert [c for c, _ in cal.sync_items(only_fields=["uid"])] == ["create"]
