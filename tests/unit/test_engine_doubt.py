"""A TMS write whose answer was lost (a crash, a timeout): the booking is in doubt until a save settles it.

Each test is a counterexample the engine state machine (test_engine_machine.py) found or would find:
the write lands in TMS, the answer never reaches the store, and the organiser changes the meeting
back or drops a room before the next pass, so the copies alone no longer show that TMS differs. When
the data-loss fuse then holds the room, the booking is read back from TMS: a cancellation found done
already is not held.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from engine_kit import BERGEN, NOW, OSLO, TROMSO, Crash, Kit, meeting, moved, weekly

from xesync.actions import Policy
from xesync.errors import ServiceUnavailableError
from xesync.meetings import Response, external_key
from xesync.model import IN_DOUBT, BookingStatus, TmsState

SYSTEM = {OSLO: 11, BERGEN: 12, TROMSO: 13}


@pytest.fixture
def kit(tmp_path):
    k = Kit(tmp_path)
    k.engine = k.make_engine(max_workers=1)  # rooms in configuration order: Oslo, Bergen, Tromsø
    yield k
    k.close()


def crash_after(kit, writes):
    """Run a pass that dies right after its ``writes``-th write to TMS or Exchange; then restart."""
    crash = Crash(kit, after=writes)
    with pytest.raises(KeyboardInterrupt):
        kit.sync()
    crash.undo()
    kit.engine = kit.make_engine(max_workers=1)


def move(kit, uid, start):
    """The organiser moves Oslo's copy to ``start`` (an hour long)."""
    copy = kit.source.copy(OSLO, uid)
    kit.source.put(dataclasses.replace(copy, start=start, end=start + timedelta(hours=1)))


def conference(kit, uid):
    return kit.sink.conferences[external_key(uid)].saved


def test_a_room_dropped_after_its_join_was_lost_leaves_the_conference(kit):
    """The save adding Tromsø lands, the process dies, Tromsø is removed: TMS loses Tromsø again."""
    kit.source.put(meeting("D1", room=OSLO))
    kit.source.put(meeting("D1", room=TROMSO))
    crash_after(kit, 4)  # Oslo: save, accept, body; Tromsø: the save adding it
    assert conference(kit, "D1").system_ids == (SYSTEM[OSLO], SYSTEM[TROMSO])
    booking = kit.store.booking("D1")
    assert (booking.rooms, booking.content_hash) == ((OSLO,), IN_DOUBT)
    kit.source.put(dataclasses.replace(kit.source.copy(TROMSO, "D1"), cancelled=True))
    kit.sync()
    assert conference(kit, "D1").system_ids == (SYSTEM[OSLO],)
    booking = kit.store.booking("D1")
    assert booking.rooms == (OSLO,)
    assert booking.content_hash != IN_DOUBT
    assert kit.store.record(TROMSO, "D1").status is BookingStatus.CANCELLED


def test_a_room_whose_copy_vanished_after_its_join_was_lost_leaves_the_conference(kit):
    """The save adding Tromsø lands, the process dies, Tromsø's copy is deleted: TMS loses Tromsø.

    Tromsø's pass learns of a deleted item only through a record: the join wrote a pending one first.
    """
    kit.source.put(meeting("D1b", room=OSLO))
    kit.source.put(meeting("D1b", room=TROMSO))
    crash_after(kit, 4)
    assert kit.store.record(TROMSO, "D1b").status is BookingStatus.PENDING
    kit.source.remove(TROMSO, kit.source.copy(TROMSO, "D1b").item_id)
    # Another meeting keeps Tromsø's calendar from looking suddenly empty to the fuse.
    kit.source.put(meeting("D1c", room=TROMSO, start=NOW + timedelta(days=2)))
    kit.sync()
    assert conference(kit, "D1b").system_ids == (SYSTEM[OSLO],)
    assert kit.store.booking("D1b").rooms == (OSLO,)


def test_a_room_added_back_after_its_leave_was_lost_joins_again(kit):
    """The save dropping Tromsø lands, the process dies, Tromsø is invited again: TMS books it again."""
    kit.source.put(meeting("D2", room=OSLO))
    kit.source.put(meeting("D2", room=TROMSO))
    kit.sync()
    kit.source.put(dataclasses.replace(kit.source.copy(TROMSO, "D2"), cancelled=True))
    crash_after(kit, 1)  # Tromsø's pass: the save without it
    assert conference(kit, "D2").system_ids == (SYSTEM[OSLO],)
    assert kit.store.booking("D2").rooms == (OSLO, TROMSO)  # what the store still believes
    kit.source.put(meeting("D2", room=TROMSO))  # a fresh request to Tromsø
    kit.sync()
    assert conference(kit, "D2").system_ids == (SYSTEM[OSLO], SYSTEM[TROMSO])
    assert kit.store.record(TROMSO, "D2").status is BookingStatus.BOOKED


def test_a_move_undone_after_the_moves_answer_was_lost_moves_tms_back(kit):
    """The move lands, the process dies, the organiser moves the meeting back: TMS follows."""
    item = meeting("D3")
    kit.source.put(item)
    kit.sync()
    later = item.start + timedelta(hours=3)
    move(kit, "D3", later)
    crash_after(kit, 1)
    assert conference(kit, "D3").start == later
    move(kit, "D3", item.start)
    kit.sync()
    assert conference(kit, "D3").start == item.start
    writes = kit.sink.writes
    kit.sync()
    assert kit.sink.writes == writes  # settled: the next pass saves nothing


def test_a_save_that_timed_out_after_landing_is_settled_by_the_next_pass(kit):
    """TMS applies the move but the answer times out; the move is undone: the next pass saves again."""
    item = meeting("D4")
    kit.source.put(item)
    kit.sync()
    save = kit.sink.save

    def lost_answer(request):
        save(request)
        raise ServiceUnavailableError("tms", "read timed out")

    kit.sink.save = lost_answer
    later = item.start + timedelta(hours=2)
    move(kit, "D4", later)
    kit.sync()
    assert kit.store.booking("D4").content_hash == IN_DOUBT
    kit.sink.save = save
    move(kit, "D4", item.start)
    kit.sync()
    assert conference(kit, "D4").start == item.start
    assert kit.store.booking("D4").content_hash != IN_DOUBT


def test_a_booking_in_doubt_that_the_fuse_keeps_is_read_back_from_tms(tmp_path):
    """Killed after a first save, then both of the room's meetings cancelled: the fuse holds both
    cancellations, and the pending booking is stored as TMS holds it (the machine's counterexample)."""
    kit = Kit(tmp_path, policy=Policy(mass_cancel_min=2, mass_cancel_max_share=0.5))
    kit.engine = kit.make_engine(max_workers=1)
    kit.source.put(meeting("D5", start=NOW + timedelta(days=1, hours=1)))
    kit.sync()
    kit.source.put(meeting("D6", start=NOW + timedelta(days=1, hours=3)))
    crash_after(kit, 1)  # D6 saved in TMS, its answer lost
    assert kit.store.booking("D6").state is TmsState.PENDING
    for uid in ("D5", "D6"):
        kit.source.put(dataclasses.replace(kit.source.copy(OSLO, uid), cancelled=True))
    finds = kit.sink.calls["find"]
    assert kit.sync().failed_rooms == [OSLO]  # 2 of 2 future bookings: the fuse holds the room
    assert kit.sink.calls["find"] == finds + 1  # D6 only: D5 is not in doubt
    assert len(kit.sink.conferences) == 2
    booking = kit.store.booking("D6")
    assert booking.live
    assert booking.conference_id == conference(kit, "D6").conference_id
    assert booking.rooms == (OSLO,)
    writes = kit.sink.writes
    assert kit.sync().failed_rooms == [OSLO]
    assert kit.sink.writes == writes
    kit.close()


def test_a_join_tms_refuses_again_leaves_nothing_in_doubt(kit):
    """Bergen refused twice the same way: the booking is stored as TMS holds it, and the next pass rests.

    The write-ahead marks the booking in doubt before the save; TMS's refusal settles it even when
    the booking it leaves is the one read before (same refusal, same clock): the machine's
    counterexample, a series moved one occurrence while Bergen stayed busy.
    """
    kit.sink.busy = {12}  # Bergen's system
    for room in (OSLO, BERGEN):
        kit.source.put(weekly("D7", room=room, weeks=4))
    kit.sync()
    for room in (OSLO, BERGEN):
        kit.source.put(moved(weekly("D7", room=room, weeks=4), 0, timedelta(hours=1)))
    kit.sync()
    assert kit.store.booking("D7").content_hash != IN_DOUBT
    tms, ews = kit.sink.writes, kit.source.writes
    kit.sync()
    assert (kit.sink.writes, kit.source.writes) == (tms, ews)


def test_a_pending_booking_tms_refuses_is_deleted_by_key(kit):
    """A first save lands, its answer is lost; the next save is refused: the landed one goes too."""
    kit.sink.busy = {SYSTEM[OSLO]}
    for room in (OSLO, BERGEN):
        kit.source.put(meeting("D8", room=room))
    crash_after(kit, 2)  # Oslo refused and declined; Bergen's first save lands, then dead
    assert conference(kit, "D8").system_ids == (SYSTEM[BERGEN],)
    assert kit.store.booking("D8").state is TmsState.PENDING
    kit.source.put(dataclasses.replace(kit.source.copy(BERGEN, "D8"), cancelled=True))
    kit.source.put(meeting("D8", room=OSLO))  # Oslo invited again; still busy
    kit.sync()
    assert kit.sink.conferences == {}
    assert kit.source.copy(OSLO, "D8") is None  # declined again


@pytest.fixture
def fused(tmp_path):
    """A kit whose fuse trips when one pass would cancel two of a room's two bookings."""
    k = Kit(tmp_path, policy=Policy(mass_cancel_min=2, mass_cancel_max_share=0.5))
    k.engine = k.make_engine(max_workers=1)
    yield k
    k.close()


def cancel(kit, room, uid):
    kit.source.put(dataclasses.replace(kit.source.copy(room, uid), cancelled=True))


def test_a_lost_delete_is_not_held_by_the_fuse(fused):
    """A delete lands, its answer is lost, the room's other meeting is cancelled: the fuse trips on
    two cancellations, finds the first done in TMS, and holds only the second."""
    kit = fused
    kit.source.put(meeting("D9", start=NOW + timedelta(days=1, hours=1)))
    kit.source.put(meeting("D10", start=NOW + timedelta(days=1, hours=3)))
    kit.sync()
    cancel(kit, OSLO, "D10")
    crash_after(kit, 1)
    assert set(kit.sink.conferences) == {external_key("D9")}
    cancel(kit, OSLO, "D9")
    assert kit.sync().failed_rooms == [OSLO]
    assert kit.store.booking("D10").state is TmsState.DELETED
    assert kit.store.record(OSLO, "D10").status is BookingStatus.CANCELLED
    assert kit.store.room_state(OSLO).fuse_held == ("D9",)
    assert set(kit.sink.conferences) == {external_key("D9")}


def test_a_lost_leave_is_not_held_by_the_fuse(fused):
    """Oslo leaves a two-room meeting, the answer is lost, Oslo's other meeting is cancelled: the
    fuse finds Oslo out of the first conference already, and the meeting ends with Bergen's cancel."""
    kit = fused
    for room in (OSLO, BERGEN):
        kit.source.put(meeting("D11", room=room, start=NOW + timedelta(days=1, hours=1)))
    kit.source.put(meeting("D12", start=NOW + timedelta(days=1, hours=3)))
    kit.sync()
    cancel(kit, OSLO, "D11")
    crash_after(kit, 1)  # the save without Oslo lands
    assert conference(kit, "D11").system_ids == (SYSTEM[BERGEN],)
    cancel(kit, OSLO, "D12")
    assert kit.sync().failed_rooms == [OSLO]
    assert kit.store.booking("D11").rooms == (BERGEN,)
    assert kit.store.record(OSLO, "D11").status is BookingStatus.CANCELLED
    assert kit.store.room_state(OSLO).fuse_held == ("D12",)
    cancel(kit, BERGEN, "D11")
    kit.sync()
    assert set(kit.sink.conferences) == {external_key("D12")}  # D11 gone; D12 held for Oslo


def test_a_refused_join_of_a_room_in_doubt_leaves_the_booked_room_booked(kit):
    """Tromsø's join is refused and the process dies before storing it; Oslo's next save, which adds
    Tromsø again from its pending record, is refused too: Oslo stays booked and accepted."""
    kit.source.put(meeting("D14", room=OSLO))
    kit.source.put(meeting("D14", room=TROMSO))
    kit.sink.busy = {SYSTEM[TROMSO]}
    crash_after(kit, 4)  # Oslo: save, accept, body; Tromsø: the join refused, then its decline
    assert kit.store.record(TROMSO, "D14").status is BookingStatus.PENDING
    kit.source.put(kit.source.copy(OSLO, "D14"))  # Oslo's copy is read again (a changekey bump)
    kit.sync()
    assert conference(kit, "D14").system_ids == (SYSTEM[OSLO],)
    assert kit.source.copy(OSLO, "D14") is not None  # not declined
    assert kit.store.record(OSLO, "D14").status is BookingStatus.BOOKED


def test_a_room_refused_on_rejoining_after_a_lost_leave_is_declined_alone(kit):
    """Bergen's leave lands, its answer is lost; Bergen is invited again but TMS refuses it: the
    conference keeps Oslo and Tromsø (read back from TMS), and only Bergen declines."""
    for room in (OSLO, BERGEN, TROMSO):
        kit.source.put(meeting("D15", room=room))
    kit.sync()
    kit.source.put(dataclasses.replace(kit.source.copy(BERGEN, "D15"), cancelled=True))
    crash_after(kit, 1)  # Bergen's pass: the save without it lands
    kit.sink.busy = {SYSTEM[BERGEN]}
    kit.source.put(meeting("D15", room=BERGEN))
    kit.sync()
    assert conference(kit, "D15").system_ids == (SYSTEM[OSLO], SYSTEM[TROMSO])
    assert kit.store.booking("D15").rooms == (OSLO, TROMSO)
    assert kit.source.copy(BERGEN, "D15") is None  # declined
    assert kit.source.copy(OSLO, "D15").response is Response.ACCEPT
