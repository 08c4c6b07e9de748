"""The sync engine over the real wire: exchangelib organisers, the EWS and TMS simulators, slapd.

Unmodified exchangelib books as a lab user; xesync's own adapters (Exchange, TMS, LDAP) run the
engine as ``xesync sync`` would, with the configuration ``xesync lab serve --write-config`` writes.
Request counts come from the lab's request log (facts, not timings).
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from ews_lab import LabOrganiser

from xesync import config as config_mod
from xesync import dialin, wiring
from xesync.adapters.tms import TmsBookingSink
from xesync.cli import app
from xesync.config.model import UnknownOrganiser
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config
from xesync.meetings import ConferenceRequest, Response, external_key
from xesync.model import IN_DOUBT, BookingStatus, TmsState

pytestmark = pytest.mark.slow

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # four weeks before Europe/Oslo's DST change (2027-03-28)
OSLO_TZ = ZoneInfo("Europe/Oslo")
TROMSO = "room-tromso@lab.example"  # leaves meetings tentative: xesync answers
OSLO = "room-oslo@lab.example"
BERGEN = "room-bergen@lab.example"


class Organiser(LabOrganiser):
    """A lab user who can also change a meeting's rooms."""

    def set_rooms(self, uid: str, rooms: list[str]) -> None:
        """Change the rooms and send the update."""
        item = self._sent[uid]
        item.refresh()
        item.resources = rooms
        item.save(update_fields=["resources"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)


@pytest.fixture(scope="module")
def lab_module():
    """The whole lab for this module."""
    with Lab() as lab:
        yield lab


@pytest.fixture
def lab(lab_module):
    """The lab, reset, its clock on NOW."""
    lab_module.reset()
    lab_module.clock.set(NOW)
    yield lab_module
    lab_module.clock.set(datetime.now(UTC))


@pytest.fixture
def cfg(lab, tmp_path):
    """The configuration `xesync lab serve --write-config` writes, loaded by the production reader."""
    path = tmp_path / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=tmp_path / "state")
    return config_mod.load(path)


@pytest.fixture
def xesync(cfg, lab):
    """xesync's engine on the lab, its clock the lab's."""
    built = []

    def make(**changes):
        settings = dataclasses.replace(cfg, sync=dataclasses.replace(cfg.sync, **changes)) if changes else cfg
        wired = wiring.build(settings, clock=lab.clock.now)
        built.append(wired)
        return wired

    yield make
    for wired in built:
        wired.close()


@pytest.fixture
def alice(lab):
    """Alice, a PMP+ user in the directory, booking the tentative room."""
    driver = Organiser(lab, TROMSO)
    yield driver
    driver.close()


@pytest.fixture
def tms(cfg):
    """A TMS client of our own, to look at what TMS holds."""
    sink = TmsBookingSink(cfg.tms)
    yield sink
    sink.close()


def at(days: int, hour: int) -> datetime:
    """``days`` after NOW at ``hour``:00 Oslo time."""
    day = (NOW + timedelta(days=days)).astimezone(OSLO_TZ).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=OSLO_TZ)


def room_copy(wired, room: str, uid: str):
    """The room's copy as xesync's Exchange adapter reads it now."""
    record = wired.store.record(room, uid)
    now = wired.engine.clock()
    return wired.source.item(room, record.item_id, window=(now, now + timedelta(days=180)))


def test_a_meeting_is_booked_for_its_organiser_accepted_and_given_one_dial_in_block(xesync, alice, tms):
    """A directory user's meeting becomes one TMS conference owned by them; the room accepts, one block."""
    wired = xesync()
    uid = alice.book("Quarterly numbers", at(3, 10), at(3, 11))
    assert wired.engine.sync().failed_rooms == []
    conference = tms.find(external_key(uid))
    assert conference is not None
    assert conference.owner_username.lower() == "lab\\alice"
    assert conference.system_ids == (13,)
    assert alice.response_seen(uid) is Response.ACCEPT
    copy = room_copy(wired, TROMSO, uid)
    assert len(dialin.find(copy.body, is_html=copy.body_is_html)) == 1
    assert str(conference.conference_id) in " ".join(dialin.find(copy.body, is_html=copy.body_is_html)) or (
        conference.info_text.split()[0] in copy.body
    )
    alice.move(uid, at(3, 13), at(3, 14))
    wired.engine.sync()
    moved = tms.find(external_key(uid))
    assert moved.conference_id == conference.conference_id
    assert moved.start == at(3, 13)
    copy = room_copy(wired, TROMSO, uid)
    assert len(dialin.find(copy.body, is_html=copy.body_is_html)) == 1


def test_rooms_join_and_leave_one_conference_and_a_cancel_deletes_it(xesync, lab, tms):
    """Adding a second room, removing a room and cancelling are followed in TMS, never duplicating."""
    wired = xesync()
    bob = Organiser(lab, TROMSO, organiser="bob@lab.example")
    try:
        uid = bob.book_rooms("Design review", at(4, 9), at(4, 10), [TROMSO])
        wired.engine.sync()
        first = tms.find(external_key(uid))
        bob.set_rooms(uid, [TROMSO, OSLO])
        wired.engine.sync()
        both = tms.find(external_key(uid))
        assert both.conference_id == first.conference_id
        assert sorted(both.system_ids) == [11, 13]
        bob.set_rooms(uid, [OSLO])
        wired.engine.sync()
        assert tms.find(external_key(uid)).system_ids == (11,)
        bob.cancel(uid)
        wired.engine.sync()
        assert tms.find(external_key(uid)) is None
        assert wired.store.booking(uid).state is TmsState.DELETED
    finally:
        bob.close()


def test_a_weekly_series_across_dst_keeps_its_local_time_with_its_exceptions(xesync, alice, tms):
    """A weekly Oslo series over the DST change starts at 09:00 local on both sides; moved and cancelled
    occurrences are TMS exceptions."""
    wired = xesync()
    uid = alice.book("Stand-up", at(14, 9), at(14, 10), weekly=6)  # 2027-03-15 … 2027-04-19
    wired.engine.sync()
    alice.move_occurrence(uid, 2, at(21, 11), at(21, 12))
    alice.cancel_occurrence(uid, 4)
    wired.engine.sync()
    key = external_key(uid)
    series = tms.find(key)
    assert series is not None
    assert series.owner_username.lower() == "lab\\alice"
    for week in (0, 2, 4, 5):  # before and after 2027-03-28
        original = at(14 + 7 * week, 9)
        occurrence = tms.find_occurrence(key, original)
        assert occurrence is not None, week
        assert occurrence.start.astimezone(OSLO_TZ).hour == 9, week
    assert tms.find_occurrence(key, at(21, 9)).start == at(21, 11)  # moved
    assert tms.find_occurrence(key, at(35, 9)) is None  # cancelled


def test_a_tms_conflict_declines_the_room_and_tells_the_organiser(xesync, alice, tms, cfg):
    """When TMS has the room booked already, the room declines and Alice gets the reason by mail."""
    wired = xesync()
    other = ConferenceRequest(
        external_key="someone-else", title="Board", start=at(5, 10), end=at(5, 11), system_ids=(13,)
    )
    tms.save(other)
    uid = alice.book("Clashes", at(5, 10), at(5, 11))
    wired.engine.sync()
    assert tms.find(external_key(uid)) is None
    assert alice.response_seen(uid) is Response.DECLINE
    assert wired.store.record(TROMSO, uid).status is BookingStatus.DECLINED
    bodies = " ".join(body for _, body in alice.inbox())
    assert "already booked" in bodies


def test_an_organiser_outside_the_directory_is_handled_as_configured(xesync, lab, tms):
    """Erin, outside the directory, is declined by default, and booked as the service user when asked."""
    erin = Organiser(lab, TROMSO, organiser="erin@partner.example")
    try:
        uid = erin.book("Partner call", at(6, 10), at(6, 11))
        xesync().engine.sync()
        assert tms.find(external_key(uid)) is None
        assert erin.response_seen(uid) is Response.DECLINE
        uid2 = erin.book("Partner call 2", at(7, 10), at(7, 11))
        xesync(unknown_organiser=UnknownOrganiser.BOOK_AS_SERVICE).engine.sync()
        booked = tms.find(external_key(uid2))
        assert booked is not None
        assert booked.owner_username.lower() == "lab\\svc-tms"
    finally:
        erin.close()


def test_a_crash_between_the_tms_save_and_the_store_write_converges_to_one_conference(
    xesync, alice, tms, lab
):
    """Killed after TMS saved but before the store wrote, the next run finds the conference by key."""
    wired = xesync()
    uid = alice.book("Crash test", at(8, 10), at(8, 11))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    wired.engine._write = killed
    with pytest.raises(KeyboardInterrupt):
        wired.engine.sync([TROMSO])
    first = tms.find(external_key(uid))
    assert first is not None
    wired.close()
    again = xesync()
    assert again.engine.sync().failed_rooms == []
    again.engine.sync()
    assert tms.find(external_key(uid)).conference_id == first.conference_id
    assert lab.state()["tms"]["conferences"] == 1  # the lab was reset for this test: no second one
    assert alice.response_seen(uid) is Response.ACCEPT


def test_a_move_whose_answer_was_lost_then_undone_leaves_tms_where_the_meeting_is(xesync, alice, tms, lab):
    """TMS applies a move but its answer never arrives; the organiser moves back: TMS follows them back."""
    wired = xesync()
    uid = alice.book("Lost answer", at(9, 10), at(9, 11))
    wired.engine.sync()
    alice.move(uid, at(9, 13), at(9, 14))
    lab.inject(service="tms", kind="drop_answer", count=1, operation="SaveConferenceWithMode")
    assert wired.engine.sync().failed_rooms == []  # the meeting failed on a transient error; the room did not
    assert tms.find(external_key(uid)).start == at(9, 13)  # TMS acted on it
    assert wired.store.booking(uid).content_hash == IN_DOUBT
    alice.move(uid, at(9, 10), at(9, 11))
    wired.engine.sync()
    assert tms.find(external_key(uid)).start == at(9, 10)
    assert wired.store.booking(uid).content_hash != IN_DOUBT
    copy = room_copy(wired, TROMSO, uid)
    assert len(dialin.find(copy.body, is_html=copy.body_is_html)) == 1


def test_request_costs_once_warm(xesync, alice, lab):
    """Warm: a pass with no change costs one EWS request and no TMS request; a new meeting at most 4 + 2."""
    wired = xesync()
    alice.book("Warm-up", at(9, 10), at(9, 11))
    wired.engine.sync()  # no settling pass: our own write-backs are not read again
    lab.requests.reset()
    wired.engine.sync([TROMSO])
    assert lab.requests.snapshot("ews")["ews"]["total"] == 1
    assert lab.requests.snapshot("tms").get("tms", {}).get("total", 0) == 0
    alice.book("Costed", at(10, 10), at(10, 11))
    lab.requests.reset()
    wired.engine.sync([TROMSO])
    ews = lab.requests.snapshot("ews")["ews"]
    assert ews["total"] <= 4, ews["operations"]
    assert lab.requests.snapshot("tms")["tms"]["total"] <= 2


def test_the_pass_after_an_import_is_one_sync_folder_items_a_room(xesync, alice, lab, tms):
    """After importing single, multi-room and series meetings, the next pass costs one SyncFolderItems per
    room and nothing else; every copy of the three-room meeting shows the final dial-in, and its organiser
    got one confirmation."""
    wired = xesync()
    bob = Organiser(lab, TROMSO, organiser="bob@lab.example")
    try:
        alice.book("Single", at(3, 10), at(3, 11))
        alice.book("Stand-up", at(4, 9), at(4, 10), weekly=4)
        uid = bob.book_rooms("All hands", at(5, 13), at(5, 14), [TROMSO, OSLO, BERGEN])
        lab.requests.reset()
        assert wired.engine.sync().failed_rooms == []
        assert (
            "GetFolder" not in lab.requests.snapshot("ews")["ews"]["operations"]
        )  # the calendar by its name
        conference = tms.find(external_key(uid))
        assert sorted(conference.system_ids) == [11, 12, 13]
        blocks = set()
        for room in (TROMSO, OSLO, BERGEN):
            copy = room_copy(wired, room, uid)
            (found,) = dialin.find(copy.body, is_html=copy.body_is_html)
            blocks.add(found)
        assert len(blocks) == 1
        assert "Oslo" in next(iter(blocks))
        assert "Bergen" in next(iter(blocks))
        assert "Tromso" in next(iter(blocks))
        told = [body for _, body in bob.inbox() if f"Conference ID: {conference.conference_id}" in body]
        assert len(told) == 1
        lab.requests.reset()
        report = wired.engine.sync()
        assert [m.facts.uid for room in report.rooms for m in room.meetings] == []
        assert lab.requests.snapshot("ews")["ews"]["operations"] == {"SyncFolderItems": 3}
        assert lab.requests.snapshot("tms").get("tms", {}).get("total", 0) == 0
    finally:
        bob.close()


def test_sync_and_plan_commands_work_with_the_lab_config(cfg, alice, lab):
    """`xesync plan` lists the booking it would make and writes nothing; `xesync sync` makes it, exit 0."""
    uid = alice.book("From the command line", at(11, 10), at(11, 11))
    path = str(cfg.source)
    planned = CliRunner().invoke(app, ["plan", "-c", path, "--room", "Tromso"])
    assert planned.exit_code == 0, planned.output
    assert "create_booking" in planned.output
    assert "accept_meeting" in planned.output
    assert lab.state()["tms"]["conferences"] == 0
    synced = CliRunner().invoke(app, ["sync", "-c", path])
    assert synced.exit_code == 0, synced.output
    assert f"{TROMSO}: ok" in synced.output
    assert lab.state()["tms"]["conferences"] == 1
    assert alice.response_seen(uid) is Response.ACCEPT
    again = CliRunner().invoke(app, ["plan", "-c", path])
    assert "Nothing to do." in again.output


def test_sync_command_names_the_rooms_that_failed(cfg, lab):
    """When Exchange refuses, `xesync sync` exits non-zero naming the rooms."""
    lab.inject(service="ews", kind="http_status", status=500)
    try:
        result = CliRunner().invoke(app, ["sync", "-c", str(cfg.source), "--room", "Oslo"])
    finally:
        lab.clear_faults()
    assert result.exit_code == 1
    assert "rooms not synced: room-oslo@lab.example" in result.output
