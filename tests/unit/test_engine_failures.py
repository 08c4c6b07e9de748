"""The sync engine over the port fakes when something fails or holds: a port down, the data-loss fuse,
--dry-run, a room that is not configured, and the full pass that finds what no change announced.

What a pass books, tells and remembers when everything answers is in test_engine.py.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from engine_kit import BERGEN, NOW, OSLO, TROMSO, Kit, meeting
from structlog.testing import capture_logs

from xesync import events
from xesync.model import AuditOutcome, BookingStatus, RoomSyncState


def test_tms_down_leaves_a_recheck_and_the_next_pass_books_without_a_change(kit):
    """A transient TMS failure keeps the meeting due; the next pass books it with no change from Exchange."""
    kit.sink.down = True
    kit.source.put(meeting("M8"))
    with capture_logs() as logs:
        kit.sync(OSLO)
    assert next(e for e in logs if e["event"] == events.MEETING_FAILED)["uid"] == "M8"
    record = kit.store.record(OSLO, "M8")
    assert record.status is BookingStatus.FAILED
    assert record.recheck_at is not None
    kit.sink.down = False
    kit.clock.now = record.recheck_at
    kit.sync(OSLO)
    assert len(kit.sink.conferences) == 1
    assert kit.store.record(OSLO, "M8").status is BookingStatus.BOOKED
    assert kit.store.record(OSLO, "M8").recheck_at is None


def test_exchange_down_fails_the_room_and_keeps_its_state(kit):
    """When Exchange cannot be asked, the room fails, its sync state stays, and other rooms go on."""
    kit.source.put(meeting("M9"))
    kit.sync(OSLO)
    state = kit.store.room_state(OSLO)
    kit.source.down = True
    report = kit.sync(OSLO, BERGEN)
    assert set(report.failed_rooms) == {OSLO, BERGEN}
    assert kit.store.room_state(OSLO) == state


def test_the_fuse_refuses_to_cancel_a_room_that_suddenly_returns_nothing(kit):
    """A full sync with no meetings for a room with future bookings cancels nothing until forced."""
    for n in range(3):
        kit.source.put(meeting(f"F{n}", start=NOW + timedelta(days=n + 1)))
    kit.sync(OSLO)
    kit.source.items[OSLO].clear()  # Exchange suddenly returns nothing, without delete events
    with kit.store.transaction() as tx:
        tx.put_room_state(RoomSyncState(room=OSLO, sync_state=None, updated_at=NOW))
    with capture_logs() as logs:
        report = kit.sync(OSLO)
    assert report.failed_rooms == [OSLO]
    assert len(kit.sink.conferences) == 3
    assert [e for e in logs if e["event"] == events.GUARD_MASS_CANCEL_REFUSED]
    assert kit.store.room_state(OSLO).sync_state is None  # the state did not advance
    assert any(e.outcome is AuditOutcome.REFUSED for e in kit.store.audit(room=OSLO))
    kit.engine = kit.make_engine(policy=dataclasses.replace(kit.policy, force_cancel=True))
    kit.sync(OSLO)
    assert kit.sink.conferences == {}


def test_dry_run_writes_nothing_but_the_audit(tmp_path):
    """--dry-run plans and audits 'planned', and writes nothing to TMS, Exchange or the records."""
    kit = Kit(tmp_path, dry_run=True)
    kit.source.put(meeting("D1"))
    kit.sync(OSLO)
    assert kit.sink.writes == 0
    assert kit.source.writes == 0
    assert kit.store.record(OSLO, "D1") is None
    assert kit.store.room_state(OSLO) is None
    planned = [e.action for e in kit.store.audit(uid="D1") if e.outcome is AuditOutcome.PLANNED]
    assert planned[:2] == ["create_booking", "accept_meeting"] or "create_booking" in planned
    kit.close()


def test_directory_down_fails_the_meeting_not_the_room(kit):
    """An unreachable directory fails that meeting with a recheck; the room's pass completes."""
    kit.directory.down = True
    kit.source.put(meeting("L1"))
    report = kit.sync(OSLO)
    assert report.failed_rooms == []
    assert kit.store.record(OSLO, "L1").status is BookingStatus.FAILED
    kit.directory.down = False
    kit.clock.now = kit.store.record(OSLO, "L1").recheck_at
    kit.sync(OSLO)
    assert kit.store.record(OSLO, "L1").status is BookingStatus.BOOKED


def test_unconfigured_room_is_refused_with_the_choices(kit):
    """Syncing a room that is not configured names the configured rooms."""
    report = kit.sync("room-nowhere@lab.example")
    assert report.failed_rooms == ["room-nowhere@lab.example"]
    assert OSLO in report.rooms[0].error
    assert TROMSO in report.rooms[0].error


def test_a_full_pass_finds_a_meeting_the_incremental_pass_missed(kit):
    """The nightly full pass re-reads the calendar and books what no change event announced."""
    kit.sync(OSLO)
    kit.source.items.setdefault(OSLO, {})["lost"] = meeting("G1", item_id="lost")  # no change logged
    kit.sync(OSLO)
    assert kit.sink.conferences == {}
    kit.engine.sync([OSLO], full=True)
    assert len(kit.sink.conferences) == 1
