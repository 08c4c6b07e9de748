"""The sync engine over the port fakes: what a pass books, tells and remembers, branch by branch.

A port that fails, the data-loss fuse, --dry-run and the full pass are in test_engine_failures.py.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from engine_kit import ALICE, BERGEN, NOW, OSLO, Kit, cancelled_occurrence, meeting, moved, weekly
from structlog.testing import capture_logs

from xesync import dialin, events
from xesync.actions import Policy
from xesync.config.model import UnknownOrganiser
from xesync.meetings import Frequency, Recurrence, Response, external_key
from xesync.model import BookingStatus, RoomResponse, TmsState
from xesync.ports import LicencePrediction


def only_conference(kit):
    assert len(kit.sink.conferences) == 1
    return next(iter(kit.sink.conferences.values()))


def test_new_meeting_is_booked_for_the_organiser_accepted_and_given_the_dial_in_once(kit):
    """A new meeting is one conference owned by the organiser; the room accepts and shows the dial-in once."""
    item = kit.source.put(meeting("M1"))
    report = kit.sync(OSLO)
    assert report.failed_rooms == []
    conf = only_conference(kit)
    assert conf.saved.owner_username == "LAB\\alice"
    assert conf.request.system_ids == (11,)
    assert conf.request.external_key == external_key("M1")
    copy = kit.source.copy(OSLO, "M1")
    assert copy.response is Response.ACCEPT
    assert len(dialin.find(copy.body, is_html=False)) == 1
    assert "Agenda: numbers." in copy.body
    [(room, uid, kind, message)] = kit.source.responses
    assert (room, uid, kind) == (OSLO, "M1", "accept")
    assert f"{conf.saved.conference_id}@video.lab.example" in message  # the confirmation rides on the accept
    assert kit.source.outbox == []
    record = kit.store.record(OSLO, "M1")
    assert record.status is BookingStatus.BOOKED
    assert record.response is RoomResponse.ACCEPTED
    booking = kit.store.booking("M1")
    assert booking.state is TmsState.SAVED
    assert booking.conference_id == conf.saved.conference_id
    assert booking.notified_hash is not None
    assert item.item_id == record.item_id


def test_a_pass_after_the_write_back_plans_nothing(kit):
    """Our own accept and body write come back as updates, and plan no TMS or Exchange call."""
    kit.source.put(meeting("M1"))
    kit.sync(OSLO)
    tms, ews = kit.sink.writes, kit.source.writes
    for _ in range(2):
        kit.sync(OSLO)
    assert (kit.sink.writes, kit.source.writes) == (tms, ews)
    assert kit.sink.calls["find"] == 0


def test_a_changekey_bump_alone_plans_nothing(kit):
    """An update that changes nothing xesync maps (a category, a reminder) costs no write."""
    kit.source.put(meeting("M1"))
    kit.sync(OSLO)
    tms, ews = kit.sink.writes, kit.source.writes
    kit.source.put(kit.source.copy(OSLO, "M1"))  # same content, new changekey
    with capture_logs() as logs:
        kit.sync(OSLO)
    assert (kit.sink.writes, kit.source.writes) == (tms, ews)
    assert not [e for e in logs if e["event"] in (events.BOOKING_UPDATED, events.MEETING_ACCEPTED)]


def test_moving_a_meeting_updates_the_same_conference_and_replaces_the_block(kit):
    """A moved meeting keeps its conference; the room copy still has exactly one dial-in block."""
    kit.source.put(meeting("M1"))
    kit.sync(OSLO)
    first = only_conference(kit).saved
    copy = kit.source.copy(OSLO, "M1")
    kit.source.put(
        dataclasses.replace(copy, start=copy.start + timedelta(hours=2), end=copy.end + timedelta(hours=2))
    )
    kit.sync(OSLO)
    conf = only_conference(kit)
    assert conf.saved.conference_id == first.conference_id
    assert conf.saved.start == first.start + timedelta(hours=2)
    assert len(dialin.find(kit.source.copy(OSLO, "M1").body, is_html=False)) == 1
    assert kit.source.outbox == []  # the details did not change: no second mail


def test_a_second_room_joins_then_leaves_then_the_meeting_is_cancelled(kit):
    """Two rooms share one conference; removing one updates it; cancelling deletes it, with no duplicate."""
    oslo = kit.source.put(meeting("M2", room=OSLO))
    kit.sync(OSLO)
    kit.source.put(meeting("M2", room=BERGEN))
    kit.sync(BERGEN)
    conf = only_conference(kit)
    assert conf.request.system_ids == (11, 12)
    assert kit.source.copy(BERGEN, "M2").response is Response.ACCEPT
    kit.source.put(dataclasses.replace(kit.source.copy(BERGEN, "M2"), cancelled=True))  # Bergen removed
    kit.sync(BERGEN)
    assert only_conference(kit).request.system_ids == (11,)
    kit.source.remove(OSLO, oslo.item_id)  # the meeting cancelled (the room deletes its copy)
    kit.sync(OSLO)
    assert kit.sink.conferences == {}
    assert kit.store.booking("M2").state is TmsState.DELETED
    assert kit.store.record(OSLO, "M2").status is BookingStatus.CANCELLED


def test_rooms_synced_in_parallel_join_one_conference(kit):
    """Two rooms' copies synced in the same pass end in one conference with both rooms."""
    kit.source.put(meeting("M3", room=OSLO))
    kit.source.put(meeting("M3", room=BERGEN))
    kit.sync()
    kit.sync()
    assert only_conference(kit).request.system_ids == (11, 12)
    assert kit.store.booking("M3").rooms == (OSLO, BERGEN)


def test_a_tms_conflict_declines_the_room_with_the_reason(kit):
    """When TMS refuses a conflicting booking, the room declines and the organiser is told why."""
    kit.sink.busy = {11}
    kit.source.put(meeting("M4"))
    kit.sync(OSLO)
    assert kit.sink.conferences == {}
    assert kit.source.copy(OSLO, "M4") is None  # a decline removes the room's copy
    [(_room, _uid, kind, message)] = kit.source.responses
    assert kind == "decline"
    assert "already booked" in message
    assert kit.store.booking("M4").state is TmsState.REJECTED
    assert kit.store.record(OSLO, "M4").status is BookingStatus.DECLINED


def test_a_room_refused_by_tms_is_declined_alone(kit):
    """A second room that conflicts is declined; the conference keeps the first room."""
    kit.source.put(meeting("M5", room=OSLO))
    kit.sync(OSLO)
    kit.sink.busy = {12}
    kit.source.put(meeting("M5", room=BERGEN))
    kit.sync(BERGEN)
    assert only_conference(kit).request.system_ids == (11,)
    assert kit.source.copy(OSLO, "M5").response is Response.ACCEPT
    assert kit.source.copy(BERGEN, "M5") is None
    assert kit.store.record(BERGEN, "M5").status is BookingStatus.DECLINED


def test_an_organiser_outside_the_directory_is_declined_by_default(kit):
    """sync.unknown_organiser = decline: the room declines, naming the address; TMS is not asked."""
    kit.source.put(meeting("M6", organiser="carol@partner.example"))
    kit.sync(OSLO)
    assert kit.sink.calls["save"] == 0
    [(_, _, kind, message)] = kit.source.responses
    assert kind == "decline"
    assert "carol@partner.example" in message


def test_an_organiser_outside_the_directory_can_be_booked_as_the_service_user(tmp_path):
    """sync.unknown_organiser = book_as_service: booked as the TMS service user, with a warning event."""
    kit = Kit(tmp_path, policy=Policy(unknown_organiser=UnknownOrganiser.BOOK_AS_SERVICE))
    kit.source.put(meeting("M7", organiser="carol@partner.example"))
    with capture_logs() as logs:
        kit.sync(OSLO)
    assert only_conference(kit).saved.owner_username == "LAB\\svc-tms"
    assert next(e for e in logs if e["event"] == events.BOOKING_OWNER_DEFAULTED)["uid"] == "M7"
    assert kit.source.copy(OSLO, "M7").response is Response.ACCEPT
    kit.close()


def test_a_crash_between_the_tms_save_and_the_store_write_leaves_one_conference(kit, monkeypatch):
    """A process killed after TMS saved but before the store wrote books no second conference on restart."""
    kit.source.put(meeting("C1"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after the save runs

    monkeypatch.setattr(kit.engine, "_write", crash)
    with pytest.raises(KeyboardInterrupt):
        kit.sync(OSLO)
    assert len(kit.sink.conferences) == 1
    monkeypatch.undo()
    kit.engine = kit.make_engine()
    kit.sync(OSLO)
    kit.sync(OSLO)
    assert len(kit.sink.conferences) == 1
    assert kit.store.booking("C1").conference_id == only_conference(kit).saved.conference_id


def test_series_exceptions_use_occurrence_calls(kit):
    """A weekly series is one conference; a later moved or cancelled occurrence is one occurrence call."""
    series = kit.source.put(weekly("S1"))
    kit.sync(OSLO)
    conf = only_conference(kit)
    assert conf.request.recurrence.frequency is Frequency.WEEKLY
    assert conf.request.occurrence_limit == 6
    saves = kit.sink.calls["save"]
    kit.source.put(cancelled_occurrence(kit.source.copy(OSLO, "S1"), 2))
    kit.sync(OSLO)
    kit.source.put(moved(kit.source.copy(OSLO, "S1"), 3, timedelta(hours=2)))  # the 5th: the 3rd is gone
    kit.sync(OSLO)
    assert kit.sink.calls["save"] == saves
    assert kit.sink.calls["delete_occurrence"] == 1
    assert kit.sink.calls["save_occurrence"] == 1
    held = kit.sink.effective_exceptions(external_key("S1"))
    assert held[series.occurrences[2].recurrence_id] is None
    assert held[series.occurrences[4].recurrence_id][0] == series.occurrences[4].start + timedelta(hours=2)
    assert series.occurrences[3].recurrence_id not in held


@pytest.mark.parametrize(
    ("changes", "code_word"),
    [
        ({"all_day": True}, "all-day"),
        ({"hours": 30}, "longer than 24"),
        ({"hours": 0}, "ends before"),
    ],
)
def test_meetings_tms_would_refuse_are_declined_before_tms(kit, changes, code_word):
    """All-day, too long and zero-length meetings are declined with a plain reason, TMS unasked."""
    kit.source.put(meeting("R1", **changes))
    kit.sync(OSLO)
    assert kit.sink.calls["save"] == 0
    [(_, _, kind, message)] = kit.source.responses
    assert kind == "decline"
    assert code_word in message


def test_a_yearly_series_is_declined(kit):
    """TMS cannot book yearly series (L5): declined with the reason."""
    item = weekly("Y1")
    yearly = dataclasses.replace(
        item.recurrence, frequency=Frequency.YEARLY, weekdays=(), month=12, day_of_month=2
    )
    kit.source.put(dataclasses.replace(item, recurrence=yearly))
    kit.sync(OSLO)
    assert kit.sink.calls["save"] == 0
    assert "yearly" in kit.source.responses[0][3]


def test_past_and_far_future_meetings_are_skipped_not_declined(kit):
    """A past meeting is left alone (L1); one beyond the booking window waits, with a recheck (L2)."""
    kit.source.put(meeting("P1", start=NOW - timedelta(days=1)))
    kit.source.put(meeting("P2", start=NOW + timedelta(days=400)))
    kit.sync(OSLO)
    assert kit.sink.calls["save"] == 0
    assert kit.source.responses == []
    assert kit.store.record(OSLO, "P2").recheck_at == NOW + timedelta(days=400) - timedelta(days=365)
    kit.clock.now = kit.store.record(OSLO, "P2").recheck_at
    kit.sync(OSLO)
    assert len(kit.sink.conferences) == 1


def test_a_series_without_end_is_booked_as_a_rolling_window(kit):
    """A series with no end books the occurrences in the lookahead (at most 100) and asks for a recheck."""
    item = weekly("N1", weeks=30)
    open_ended = dataclasses.replace(item.recurrence, count=None)
    kit.source.put(dataclasses.replace(item, recurrence=open_ended))
    kit.sync(OSLO)
    inside = [o for o in item.occurrences if o.start <= NOW + kit.policy.lookahead]
    assert len(inside) == 26 < len(item.occurrences)
    assert only_conference(kit).request.occurrence_limit == len(inside)
    assert kit.store.record(OSLO, "N1").recheck_at == NOW + timedelta(days=1)


def test_private_meetings_get_a_neutral_title(kit):
    """A private meeting is booked as 'Private meeting' unless configured otherwise."""
    kit.source.put(meeting("V1", private=True, subject="Layoffs"))
    kit.sync(OSLO)
    assert only_conference(kit).request.title == "Private meeting"


def test_a_subject_replaced_by_the_organiser_name_names_the_room_setting(kit):
    """A room copy whose subject is the organiser's name raises an event naming AddOrganizerToSubject."""
    kit.source.put(meeting("A1", subject="Alice"))
    with capture_logs() as logs:
        kit.sync(OSLO)
    [event] = [e for e in logs if e["event"] == events.MEETING_SUBJECT_REPLACED]
    assert "AddOrganizerToSubject" in event["reason"]
    assert event["room"] == OSLO


def test_every_decision_event_names_the_meeting_and_room(kit):
    """Booking and response events carry room, uid, subject, organiser and conference id."""
    kit.source.put(meeting("E1"))
    with capture_logs() as logs:
        kit.sync(OSLO)
    created = next(e for e in logs if e["event"] == events.BOOKING_CREATED)
    for key in ("room", "uid", "occurrence", "subject", "organiser", "conference_id"):
        assert key in created
    assert created["organiser"] == "alice@lab.example"
    assert created["conference_id"] == only_conference(kit).saved.conference_id


def test_details_that_change_are_mailed_to_the_organiser_once(kit):
    """When TMS's dial-in details change after the accept, the organiser gets one mail, not one per pass."""
    kit.source.put(meeting("N2"))
    kit.sync(OSLO)
    kit.sink.info_override[external_key("N2")] = "Join by video: 777@video.lab.example"
    copy = kit.source.copy(OSLO, "N2")
    kit.source.put(dataclasses.replace(copy, subject="Project review (moved room)"))
    kit.sync(OSLO)
    kit.sync(OSLO)
    assert len(kit.source.outbox) == 1
    assert "777@video.lab.example" in kit.source.outbox[0].text
    assert len(dialin.find(kit.source.copy(OSLO, "N2").body, is_html=False)) == 1


def test_weekly_series_keeps_its_recurrence(kit):
    """The request carries the organiser's pattern as it is."""
    kit.source.put(weekly("S2"))
    kit.sync(OSLO)
    assert isinstance(only_conference(kit).request.recurrence, Recurrence)
    assert ALICE.tms_username == only_conference(kit).saved.owner_username


class SmpForBob:
    """A pre-flight that predicts SMP+ for bob and PMP+ for everyone else."""

    def predict(self, booking, _organiser):
        if booking.organiser.startswith("bob"):
            return LicencePrediction(
                "smp", "bob has no hasLicense profile on CMS", "Ask IT to add you to CMS-PMP."
            )
        return LicencePrediction("pmp", "in the PMP+ group, licensed on CMS")


def test_the_licence_preflight_is_stored_and_an_smp_prediction_reaches_the_organiser(kit):
    """A predicted SMP+ licence is stored with the booking, logged, and told the organiser on confirmation."""
    kit.engine = kit.make_engine(preflight=SmpForBob())
    kit.source.put(meeting("L2", organiser="bob@lab.example"))
    kit.source.put(meeting("L3", start=NOW + timedelta(days=2)))
    with capture_logs() as logs:
        kit.sync(OSLO)
    assert kit.store.booking("L2").predicted_licence == "smp"
    assert kit.store.booking("L3").predicted_licence == "pmp"
    assert [e["uid"] for e in logs if e["event"] == events.LICENCE_SMP_PREDICTED] == ["L2"]
    messages = {uid: message for _, uid, kind, message in kit.source.responses if kind == "accept"}
    assert "Ask IT to add you to CMS-PMP." in messages["L2"]
    assert "Ask IT" not in messages["L3"]


def test_a_series_that_becomes_one_meeting_is_rebooked_under_the_same_key(kit):
    """A series turned into a single meeting is deleted in TMS and booked anew; one conference remains."""
    kit.source.put(weekly("S3"))
    kit.sync(OSLO)
    copy = kit.source.copy(OSLO, "S3")
    kit.source.put(dataclasses.replace(copy, recurrence=None, occurrences=()))
    kit.sync(OSLO)
    conf = only_conference(kit)
    assert conf.request.recurrence is None
    assert kit.sink.calls["delete"] == 1
    assert kit.store.booking("S3").state is TmsState.SAVED
    assert kit.store.booking("S3").conference_id == conf.saved.conference_id
