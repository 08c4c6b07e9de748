"""The engine bugs the state machine (test_engine_machine.py) found, each pinned as its smallest example.

Each runs the engine over the port fakes with rooms synced one after another, as the machine does.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from engine_kit import BERGEN, NOW, OSLO, Crash, Kit, meeting
from engine_machine_kit import POLICY, SYSTEM

from xesync.meetings import Response, external_key
from xesync.model import BookingStatus


@pytest.fixture
def kit(tmp_path):
    k = Kit(tmp_path)
    k.engine = k.make_engine(max_workers=1)  # rooms in configuration order: each example replays alike
    yield k
    k.close()


def test_the_pass_after_a_room_is_declined_alone_writes_nothing(kit):
    """When TMS refuses one room of a two-room meeting, the pass reading back the decline writes nothing."""
    kit.sink.busy = {SYSTEM[OSLO]}
    kit.source.put(meeting("X1", room=OSLO))
    kit.source.put(meeting("X1", room=BERGEN))
    kit.sync()
    [conf] = kit.sink.conferences.values()
    assert conf.saved.system_ids == (SYSTEM[BERGEN],)
    assert kit.source.copy(OSLO, "X1") is None  # declined
    tms, ews = kit.sink.writes, kit.source.writes
    kit.sync()
    assert (kit.sink.writes, kit.source.writes) == (tms, ews)


def test_a_cancelled_copy_read_again_stays_cancelled_and_out_of_the_conference(kit):
    """A cancelled room copy read again keeps its record cancelled, and the room does not rejoin."""
    kit.source.put(meeting("X2", room=OSLO))
    kit.sync(OSLO)
    kit.source.put(dataclasses.replace(kit.source.copy(OSLO, "X2"), cancelled=True))
    kit.sync(OSLO)
    assert kit.sink.conferences == {}
    kit.source.put(kit.source.copy(OSLO, "X2"))  # a changekey bump on the cancelled copy
    kit.sync(OSLO)
    assert kit.store.record(OSLO, "X2").status is BookingStatus.CANCELLED
    kit.source.put(meeting("X2", room=BERGEN))
    kit.sync(BERGEN)
    [conf] = kit.sink.conferences.values()
    assert conf.saved.system_ids == (SYSTEM[BERGEN],)


def test_a_cancel_after_a_crash_between_the_tms_save_and_the_store_write_deletes_the_conference(kit):
    """Killed right after the TMS save, then the meeting is cancelled: the next run deletes the conference."""
    kit.source.put(meeting("X3"))
    crash = Crash(kit, after=1)
    with pytest.raises(KeyboardInterrupt):
        kit.sync(OSLO)
    crash.undo()
    assert len(kit.sink.conferences) == 1
    kit.engine = kit.make_engine()
    kit.source.put(dataclasses.replace(kit.source.copy(OSLO, "X3"), cancelled=True))
    kit.sync(OSLO)
    assert kit.sink.conferences == {}


def test_declining_one_room_does_not_mail_the_confirmation_of_another_again(kit):
    """A room TMS refuses is declined without the other room's next pass mailing its confirmation again."""
    kit.sink.busy = {SYSTEM[BERGEN]}
    kit.source.put(meeting("X4", room=OSLO))
    kit.source.put(meeting("X4", room=BERGEN))
    kit.sync()
    assert kit.source.copy(OSLO, "X4").response is Response.ACCEPT
    assert kit.source.copy(BERGEN, "X4") is None  # declined alone
    ews = kit.source.writes
    kit.sync()
    assert kit.source.writes == ews
    assert kit.source.outbox == []  # the confirmation rode on Oslo's accept


def test_cancellations_the_fuse_refused_wait_for_force_cancel_on_the_next_pass(tmp_path):
    """Cancellations the fuse refused stay refused on the next pass, though the held pass booked new ones."""
    kit = Kit(tmp_path, policy=POLICY)
    kit.engine = kit.make_engine(max_workers=1)
    for day, uid in enumerate(("F1", "F2"), start=1):
        kit.source.put(meeting(uid, room=OSLO, start=NOW + timedelta(days=day)))
    kit.sync(OSLO)
    for uid in ("F1", "F2"):
        kit.source.put(dataclasses.replace(kit.source.copy(OSLO, uid), cancelled=True))
    for day, uid in enumerate(("F3", "F4"), start=3):
        kit.source.put(meeting(uid, room=OSLO, start=NOW + timedelta(days=day)))
    assert kit.sync(OSLO).failed_rooms == [OSLO]  # 2 of 2 future bookings: refused
    assert len(kit.sink.conferences) == 4
    assert kit.sync(OSLO).failed_rooms == [OSLO]  # nothing changed: still refused
    assert {external_key("F1"), external_key("F2")} <= set(kit.sink.conferences)
    kit.close()
