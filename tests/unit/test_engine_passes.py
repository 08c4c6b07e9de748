"""The engine's cost across passes (port fakes): own writes not read back, multi-room copies written once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_kit import BERGEN, NOW, OSLO, TROMSO, meeting, weekly

from xesync import dialin
from xesync.meetings import Response


def rooms_in_dial_in(kit):
    """Make the fake TMS name the conference's systems in its dial-in text, as ConferenceInfoText does."""
    save = kit.sink.save

    def naming_rooms(request):
        kit.sink.info_override[request.external_key] = f"Rooms: {sorted(request.system_ids)}"
        return save(request)

    kit.sink.save = naming_rooms


def block(kit, room, uid):
    """The one dial-in block in the room's copy."""
    copy = kit.source.copy(room, uid)
    (found,) = dialin.find(copy.body, is_html=copy.body_is_html)
    return found


def three_kinds(kit, *, response=Response.NO_RESPONSE):
    """A single meeting in Oslo, a meeting booking Oslo and Bergen, and a weekly series in Tromsø."""
    kit.source.put(meeting("SOLO", room=OSLO, start=NOW + timedelta(days=2), response=response))
    both = frozenset({"alice@lab.example", OSLO, BERGEN})
    for room in (OSLO, BERGEN):
        kit.source.put(meeting("PAIR", room=room, attendees=both, response=response))
    kit.source.put(weekly("SERIES", room=TROMSO, response=response))


@pytest.mark.parametrize(
    "response", [Response.NO_RESPONSE, Response.ACCEPT], ids=["tentative", "auto_accept"]
)
def test_the_pass_after_an_import_reads_and_writes_nothing(kit, response):
    """Our own body writes and accepts come back as updates with the changekey we stored: not read again."""
    rooms_in_dial_in(kit)
    three_kinds(kit, response=response)
    kit.sync()
    tms, ews = kit.sink.writes, kit.source.writes
    report = kit.sync()
    assert [m.facts.uid for r in report.rooms for m in r.meetings] == []
    assert (kit.sink.writes, kit.source.writes) == (tms, ews)
    assert kit.source.calls["item"] == 0


def test_a_multi_room_import_writes_each_copy_once_with_the_final_dial_in(kit):
    """Both rooms' copies get the block naming both rooms, one body write each, none on the next pass."""
    rooms_in_dial_in(kit)
    three_kinds(kit, response=Response.ACCEPT)
    kit.sync()
    assert kit.store.booking("PAIR").rooms == (OSLO, BERGEN)
    assert "Rooms: [11, 12]" in block(kit, OSLO, "PAIR")
    assert "Rooms: [11, 12]" in block(kit, BERGEN, "PAIR")
    assert kit.source.calls["set_body"] == 4  # SOLO, SERIES, and PAIR once in each room
    for room in (OSLO, BERGEN):
        record = kit.store.record(room, "PAIR")
        assert record.recheck_at is None
        assert record.change_key == kit.source.copy(room, "PAIR").change_key


def test_the_organiser_gets_one_confirmation_per_booking_naming_every_room(kit):
    """An auto-accepting room pair mails Alice once for their shared booking, naming Oslo and Bergen."""
    rooms_in_dial_in(kit)
    three_kinds(kit, response=Response.ACCEPT)
    kit.sync()
    mails = [m for m in kit.source.outbox if "Rooms: [11, 12]" in m.text]
    assert len(mails) == 1
    assert "Oslo" in mails[0].text
    assert "Bergen" in mails[0].text
    assert len(kit.source.outbox) == 3  # SOLO, PAIR, SERIES


def test_a_tentative_room_pair_sends_one_confirmation_on_one_accept(kit):
    """Rooms that leave meetings tentative accept each copy; only one accept carries the confirmation."""
    rooms_in_dial_in(kit)
    three_kinds(kit)
    kit.sync()
    answers = [message for room, uid, kind, message in kit.source.responses if uid == "PAIR"]
    assert len(answers) == 2
    assert sorted(bool(m) for m in answers) == [False, True]
    assert kit.source.copy(OSLO, "PAIR").response is Response.ACCEPT
    assert kit.source.copy(BERGEN, "PAIR").response is Response.ACCEPT


def test_a_room_joining_in_a_later_pass_marks_the_first_copy_and_its_next_pass_rewrites_it(kit):
    """Oslo's copy shows an old dial-in once Bergen joins; Oslo's record falls due, and its pass fixes it."""
    rooms_in_dial_in(kit)
    both = frozenset({"alice@lab.example", OSLO, BERGEN})
    kit.source.put(meeting("PAIR", room=OSLO, attendees=both))
    kit.sync(OSLO)
    assert "Rooms: [11]" in block(kit, OSLO, "PAIR")
    kit.source.put(meeting("PAIR", room=BERGEN, attendees=both))
    kit.sync(BERGEN)
    assert "Rooms: [11, 12]" in block(kit, BERGEN, "PAIR")
    assert kit.store.record(OSLO, "PAIR").recheck_at == kit.clock()
    kit.sync(OSLO)
    assert "Rooms: [11, 12]" in block(kit, OSLO, "PAIR")
    assert kit.store.record(OSLO, "PAIR").recheck_at is None
    ews = kit.source.writes
    kit.sync()
    assert kit.source.writes == ews


def test_a_held_room_stage_that_never_ran_is_replayed_by_the_next_pass(kit, monkeypatch):
    """A crash before the end of the pass leaves the held copy's record due; the next pass writes the copy."""
    rooms_in_dial_in(kit)
    three_kinds(kit, response=Response.ACCEPT)
    monkeypatch.setattr(kit.engine, "_held_stage", lambda _stage: None)
    kit.sync()
    held = [
        room for room in (OSLO, BERGEN) if not dialin.find(kit.source.copy(room, "PAIR").body, is_html=False)
    ]
    assert len(held) == 1
    assert kit.store.record(held[0], "PAIR").recheck_at == kit.clock()
    monkeypatch.undo()
    kit.sync()
    assert "Rooms: [11, 12]" in block(kit, held[0], "PAIR")
    assert kit.store.record(held[0], "PAIR").recheck_at is None


def test_a_crash_after_the_first_tms_save_reads_the_copy_again_at_once(kit):
    """A pending record keeps the changekey it read: after a crash the copy, reported again, is read."""
    kit.sync(OSLO)  # a stored sync state: the passes below are incremental
    kit.source.put(meeting("M1", room=OSLO))
    save = kit.sink.save

    def crash(request):
        save(request)
        raise KeyboardInterrupt

    kit.sink.save = crash
    with pytest.raises(KeyboardInterrupt):
        kit.sync(OSLO)
    kit.sink.save = save
    kit.sync(OSLO)
    assert kit.source.copy(OSLO, "M1").response is Response.ACCEPT
    assert kit.store.record(OSLO, "M1").recheck_at is None
