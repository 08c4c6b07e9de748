"""A room the data-loss fuse holds stays in the conference whose cancellation it refused.

When one room's fuse trips, its refused cancellations wait for ``--force-cancel``. Another room's
pass must not take the conference away behind the fuse's back: where a change cannot be booked (TMS
refuses it, or a limit refuses the meeting), the conference is normally deleted so that it does not
keep rooms busy at a time the meeting left; with a held room in it, it falls back to that room as
booked, and the other room declines. The first test is the engine state machine's counterexample.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from engine_kit import BERGEN, NOW, OSLO, Kit, meeting

from xesync.actions import Policy
from xesync.meetings import external_key
from xesync.model import BookingStatus

SYSTEM = {OSLO: 11, BERGEN: 12}


@pytest.fixture
def kit(tmp_path):
    policy = Policy(mass_cancel_min=2, mass_cancel_max_share=0.5, max_duration=timedelta(hours=4))
    k = Kit(tmp_path, policy=policy)
    k.engine = k.make_engine(max_workers=1)  # rooms in configuration order: Oslo, then Bergen
    yield k
    k.close()


def hold_oslo(kit):
    """Book R1 and R2 in Oslo, cancel both and invite Bergen to R1 instead: Oslo's fuse trips."""
    kit.source.put(meeting("R1", room=OSLO, start=NOW + timedelta(days=1, hours=1)))
    kit.source.put(meeting("R2", room=OSLO, start=NOW + timedelta(days=1, hours=5)))
    kit.sync()
    for uid in ("R1", "R2"):
        kit.source.put(dataclasses.replace(kit.source.copy(OSLO, uid), cancelled=True))


def test_a_change_tms_refuses_keeps_the_conference_for_the_room_the_fuse_holds(kit):
    """Bergen's copy moves where Oslo's system is busy: TMS refuses; Oslo keeps R1 as booked."""
    hold_oslo(kit)
    booked = kit.sink.conferences[external_key("R1")].saved
    moved = booked.start - timedelta(hours=1)
    kit.source.put(meeting("R1", room=BERGEN, start=moved))
    kit.sink.busy = {SYSTEM[OSLO]}
    assert kit.sync().failed_rooms == [OSLO]
    conference = kit.sink.conferences[external_key("R1")].saved
    assert conference.system_ids == (SYSTEM[OSLO],)
    assert conference.start == booked.start
    booking = kit.store.booking("R1")
    assert booking.live
    assert booking.rooms == (OSLO,)
    assert kit.source.copy(BERGEN, "R1") is None  # declined (the fake removes a declined copy)
    assert kit.store.record(BERGEN, "R1").status is BookingStatus.DECLINED


def test_a_meeting_a_limit_refuses_keeps_the_conference_for_the_room_the_fuse_holds(kit):
    """Bergen joins R1, then the organiser makes it longer than TMS may book: Oslo keeps R1, alone."""
    hold_oslo(kit)
    oslo = kit.store.record(OSLO, "R1")
    kit.source.put(meeting("R1", room=BERGEN, start=oslo.start))
    assert kit.sync().failed_rooms == [OSLO]
    assert kit.sink.conferences[external_key("R1")].saved.system_ids == (SYSTEM[OSLO], SYSTEM[BERGEN])
    kit.source.put(dataclasses.replace(kit.source.copy(BERGEN, "R1"), end=oslo.start + timedelta(hours=6)))
    assert kit.sync().failed_rooms == [OSLO]
    conference = kit.sink.conferences[external_key("R1")].saved
    assert conference.system_ids == (SYSTEM[OSLO],)
    assert conference.end == oslo.end
    assert kit.store.booking("R1").rooms == (OSLO,)
    assert kit.source.copy(BERGEN, "R1") is None
    kit.engine = kit.make_engine(max_workers=1, policy=dataclasses.replace(kit.policy, force_cancel=True))
    assert kit.sync().failed_rooms == []
    assert kit.sink.conferences == {}  # forced: Oslo's cancellations go, R1 with them
