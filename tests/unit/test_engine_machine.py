"""The sync engine as a Hypothesis state machine over the port fakes (STYLE.md §10, vdirsyncer SyncMachine).

Organisers change room calendars (create, move, cancel, add or remove a room, move or cancel one
occurrence of a series, a changekey bump), TMS refuses rooms, the process dies after a TMS or EWS
call, and the engine syncs every room or one. After each pass over every room the invariants hold:

- exactly one TMS conference per meeting that should be booked, none for cancelled or declined ones,
  and no conference whose external key is not a meeting's;
- the conference is owned by the organiser's TMS user whenever the directory knows them;
- its participants are the rooms whose copy is live (a copy TMS refused is declined, and the fake
  Exchange removes a declined copy), plus the rooms whose cancellation the data-loss fuse held;
- every live copy is accepted and carries exactly one dial-in block, with the conference's details;
- the records and the booking row say what TMS holds;
- a series' exceptions in TMS are the organiser's moved and cancelled occurrences;
- a second pass with nothing changed in between writes nothing to TMS or Exchange;
- the fuse trips exactly when a room's pass would cancel too many of its bookings, and a room it
  trips for stays in every conference whose cancellation it refused, until ``--force-cancel``.

Rooms are synced one after another (``max_workers=1``) so that every example replays the same way;
two rooms of one meeting still meet in one pass, the second joining the first's conference.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from engine_kit import NOW, ROOMS, Crash, Kit, cancelled_occurrence, meeting, moved
from engine_machine_kit import POLICY, SYSTEM, CalendarSink, Meeting, series_at, shift_series
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from xesync import dialin
from xesync.actions import Policy
from xesync.config.model import UnknownOrganiser
from xesync.meetings import Response, external_key
from xesync.model import BookingStatus, TmsState

ROOM_KEYS = tuple(r.key for r in ROOMS)
ORGANISERS = ("alice@lab.example", "bob@lab.example", "carol@partner.example")
TMS_USER = {"alice@lab.example": "LAB\\alice", "bob@lab.example": "LAB\\bob"}
SERVICE_USER = "LAB\\svc-tms"
_FUTURE = (BookingStatus.BOOKED, BookingStatus.DEFECTIVE, BookingStatus.PENDING)


class EngineMachine(RuleBasedStateMachine):
    """Organisers, TMS and crashes against the engine; invariants after every pass over all rooms."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.kit = Kit(Path(self._tmp.name), policy=POLICY)
        self.kit.sink = CalendarSink()
        self.meetings: dict[str, Meeting] = {}
        self.held: set[str] = set()  # rooms whose last pass the fuse held
        self.kept: dict[str, set[str]] = {}  # held room -> external keys it had when it was held
        self.next_uid = 0
        self.kit.engine = self._engine()

    def teardown(self) -> None:
        self.kit.close()
        self._tmp.cleanup()

    # -- the engine, watched room by room ------------------------------------------------------------

    def _engine(self, **changes):
        engine = self.kit.make_engine(max_workers=1, **changes)
        original = engine.sync_room

        def watched(room: str, **kwargs):
            room = room.lower()
            expected = self._fuse_should_trip(room, engine.policy, full=kwargs.get("full", False))
            before = self._cancellations(room)
            report = original(room, **kwargs)
            tripped = report.held and report.error is not None and "--force-cancel" in report.error
            assert tripped == expected, (room, report.error, expected)
            if tripped:
                for key in before:
                    conf = self.kit.sink.conferences.get(key)
                    assert conf is not None, f"{room} held by the fuse, yet {key} was deleted"
                    assert SYSTEM[room] in conf.saved.system_ids, f"{room} held, yet it left {key}"
                self.held.add(room)
                self.kept[room] = before
            else:
                self.held.discard(room)
                self.kept.pop(room, None)
            return report

        engine.sync_room = watched
        return engine

    def _cancellations(self, room: str) -> set[str]:
        """The external keys of conferences that book ``room`` although its copy is cancelled or gone."""
        out = set()
        for uid in self.meetings:
            key, copy = external_key(uid), self.kit.source.copy(room, uid)
            conf = self.kit.sink.conferences.get(key)
            if (
                conf is not None
                and SYSTEM[room] in conf.saved.system_ids
                and (copy is None or copy.cancelled)
            ):
                out.add(key)
        return out

    def _fuse_should_trip(self, room: str, policy: Policy, *, full: bool) -> bool:
        """The fuse's rule, from what xesync believes booked and what the room's calendar now holds."""
        if not policy.mass_cancel_guard or policy.force_cancel:
            return False
        store, source = self.kit.store, self.kit.source
        future = [r for r in store.records(room) if r.status in _FUTURE and r.end > NOW]
        state = store.room_state(room)
        if (full or state is None or state.sync_state is None) and future and not source.items.get(room):
            return True  # "suddenly nothing": not one item, cancelled ones counting as something

        # What this room's future bookings lose: a conference booking the room whose copy is gone (or
        # may book it: a PENDING booking is a save whose answer a crash kept from the store, and so is
        # the room's PENDING record while its booking is in doubt: a save adding the room).
        def leaving(uid: str) -> bool:
            booking = store.booking(uid)
            copy = source.copy(room, uid)
            record = store.record(room, uid)
            joining = record is not None and record.status is BookingStatus.PENDING
            return (
                booking is not None
                and (booking.live or booking.state is TmsState.PENDING)
                and (room in booking.rooms or (joining and booking.in_doubt))
                and (copy is None or copy.cancelled)
            )

        # Cancellations refused on an earlier pass stay refused while they are still asked for.
        if state is not None and any(leaving(uid) for uid in set(state.fuse_held) & set(self.meetings)):
            return True
        booked_here = {r.uid for r in future}
        cancelling = sum(1 for uid in booked_here & set(self.meetings) if leaving(uid))
        return (
            bool(future)
            and cancelling >= policy.mass_cancel_min
            and cancelling > policy.mass_cancel_max_share * len(future)
        )

    # -- what organisers do ----------------------------------------------------------------------------

    def _live(self) -> list[str]:
        return sorted(u for u, m in self.meetings.items() if not m.cancelled)

    def _put(self, m: Meeting, room: str, *, fresh: bool, **changes) -> None:
        """Exchange delivers the organiser's version to the room: a fresh request, or an in-place update."""
        current = self.kit.source.copy(room, m.uid)
        item = dataclasses.replace(
            m.base, room=room, item_id=f"{room}:{m.uid}", attendees=frozenset({m.organiser, room}), **changes
        )
        if current is not None and not current.cancelled and not fresh:
            item = dataclasses.replace(
                item, body=current.body, body_is_html=current.body_is_html, response=current.response
            )
        self.kit.source.put(item)

    @initialize(unknown=st.sampled_from(UnknownOrganiser))
    def choose_policy(self, unknown):
        """The policy for organisers outside the directory: decline, or book as the service user."""
        self.kit.policy = dataclasses.replace(POLICY, unknown_organiser=unknown)
        self.kit.engine = self._engine()

    @rule(
        organiser=st.sampled_from(ORGANISERS),
        series=st.booleans(),
        rooms=st.sets(st.sampled_from(ROOM_KEYS), min_size=1, max_size=2),
        day=st.integers(1, 20),
        hour=st.integers(6, 18),
    )
    def add_meeting(self, organiser, series, rooms, day, hour):
        """The organiser books a single meeting or a weekly series in one or two rooms."""
        self.next_uid += 1
        uid = f"M{self.next_uid:03d}"
        if series:
            base = series_at(uid, organiser, hour, weeks=4)
        else:
            start = NOW.replace(hour=hour) + timedelta(days=day)
            base = meeting(uid, organiser=organiser, start=start)
        m = Meeting(uid=uid, organiser=organiser, base=base, rooms=set(rooms))
        self.meetings[uid] = m
        for room in sorted(rooms):
            self._put(m, room, fresh=True)

    @precondition(lambda self: self._live())
    @rule(data=st.data(), hour=st.integers(6, 18), fresh=st.booleans())
    def move_meeting(self, data, hour, fresh):
        """The organiser moves the meeting (a series to another hour, its exceptions dropped)."""
        m = self.meetings[data.draw(st.sampled_from(self._live()))]
        if m.base.recurrence is not None:
            m.base = shift_series(m.base, hour)
        else:
            start = m.base.start.replace(hour=hour)
            m.base = dataclasses.replace(m.base, start=start, end=start + (m.base.end - m.base.start))
        for room in sorted(m.rooms):
            self._put(m, room, fresh=fresh)

    @precondition(lambda self: self._live())
    @rule(data=st.data(), remove=st.booleans())
    def cancel_meeting(self, data, remove):
        """The organiser cancels: every room's copy is marked cancelled, or removed."""
        m = self.meetings[data.draw(st.sampled_from(self._live()))]
        m.cancelled = True
        for room in sorted(m.rooms):
            copy = self.kit.source.copy(room, m.uid)
            if copy is None:
                continue
            if remove:
                self.kit.source.remove(room, copy.item_id)
            else:
                self.kit.source.put(dataclasses.replace(copy, cancelled=True))

    @precondition(lambda self: any(len(self.meetings[u].rooms) < len(ROOM_KEYS) for u in self._live()))
    @rule(data=st.data())
    def add_room(self, data):
        """The organiser adds a room; the room gets its copy."""
        uids = [u for u in self._live() if len(self.meetings[u].rooms) < len(ROOM_KEYS)]
        m = self.meetings[data.draw(st.sampled_from(uids))]
        room = data.draw(st.sampled_from(sorted(set(ROOM_KEYS) - m.rooms)))
        m.rooms.add(room)
        self._put(m, room, fresh=True)

    @precondition(lambda self: any(self.meetings[u].rooms for u in self._live()))
    @rule(data=st.data())
    def remove_room(self, data):
        """The organiser removes a room; the room's copy is cancelled (a declined room has none left)."""
        m = self.meetings[data.draw(st.sampled_from([u for u in self._live() if self.meetings[u].rooms]))]
        room = data.draw(st.sampled_from(sorted(m.rooms)))
        m.rooms.discard(room)
        copy = self.kit.source.copy(room, m.uid)
        if copy is not None:
            self.kit.source.put(dataclasses.replace(copy, cancelled=True))

    @precondition(lambda self: any(self.meetings[u].base.recurrence is not None for u in self._live()))
    @rule(data=st.data(), cancel=st.booleans(), hours=st.integers(1, 3))
    def edit_occurrence(self, data, cancel, hours):
        """The organiser moves or cancels one occurrence of a series."""
        uids = [u for u in self._live() if self.meetings[u].base.recurrence is not None]
        m = self.meetings[data.draw(st.sampled_from(uids))]
        if len(m.base.occurrences) < 2:
            return
        index = data.draw(st.integers(0, len(m.base.occurrences) - 1))
        if cancel:
            m.base = cancelled_occurrence(m.base, index)
        else:
            m.base = moved(m.base, index, timedelta(hours=hours))
        for room in sorted(m.rooms):
            self._put(m, room, fresh=False)

    @precondition(lambda self: any(self.kit.source.items.get(r) for r in ROOM_KEYS))
    @rule(data=st.data())
    def changekey_bump_only(self, data):
        """Something xesync does not map changes in a room copy (a category): only the changekey moves."""
        copies = sorted(
            (i.room, i.item_id) for r in ROOM_KEYS for i in self.kit.source.items.get(r, {}).values()
        )
        room, item_id = data.draw(st.sampled_from(copies))
        self.kit.source.put(self.kit.source.items[room][item_id])

    @rule(room=st.sampled_from(ROOM_KEYS))
    def tms_rejects(self, room):
        """Another booking takes the room's system in TMS: the next save adding it there conflicts."""
        self.kit.sink.busy.add(SYSTEM[room])

    @precondition(lambda self: self.kit.sink.busy)
    @rule(data=st.data())
    def tms_frees(self, data):
        """The other booking goes: the room's system is free again."""
        self.kit.sink.busy.discard(data.draw(st.sampled_from(sorted(self.kit.sink.busy))))

    # -- what the daemon does --------------------------------------------------------------------------

    @rule()
    def sync(self):
        """A pass over every room; then a second pass, with nothing changed, writes nothing."""
        self._converged_pass()

    @rule(room=st.sampled_from(ROOM_KEYS))
    def sync_room(self, room):
        """`xesync sync --room R`: a pass over one room (the fuse is checked as it runs)."""
        report = self.kit.sync(room)
        assert report.failed_rooms in ([], [room] if room in self.held else [])

    @rule(after=st.integers(1, 6))
    def crash_between_actions(self, after):
        """The process dies right after a TMS or EWS write; the next run starts from a fresh engine."""
        crash = Crash(self.kit, after)
        try:
            self.kit.sync()
        except KeyboardInterrupt:
            assert crash.dead
        finally:
            crash.undo()
        self.kit.engine = self._engine()

    @precondition(lambda self: self.held)
    @rule()
    def force_cancel(self):
        """`xesync sync --force-cancel`: the cancellations the fuse held are applied."""
        self.kit.engine = self._engine(policy=dataclasses.replace(self.kit.policy, force_cancel=True))
        report = self.kit.sync()
        assert report.failed_rooms == []
        assert not self.held
        self.kit.engine = self._engine()
        self._converged_pass()

    def _converged_pass(self) -> None:
        report = self.kit.sync()
        assert set(report.failed_rooms) <= self.held, [r.error for r in report.rooms]
        self.check_state()
        tms, ews = self.kit.sink.writes, self.kit.source.writes
        report = self.kit.sync()
        assert set(report.failed_rooms) <= self.held, [r.error for r in report.rooms]
        assert (self.kit.sink.writes, self.kit.source.writes) == (tms, ews), "a pass with no change wrote"
        self.check_state()

    # -- the invariants --------------------------------------------------------------------------------

    def check_state(self) -> None:
        """What TMS, the room copies and the store hold after a complete pass over every room."""
        sink, source, store = self.kit.sink, self.kit.source, self.kit.store
        keys = {external_key(uid): uid for uid in self.meetings}
        stray = set(sink.conferences) - set(keys)
        assert not stray, f"conferences for no meeting: {stray}"
        for uid, m in self.meetings.items():
            key = external_key(uid)
            live = {r: c for r in ROOM_KEYS if (c := source.copy(r, uid)) is not None and not c.cancelled}
            kept = {r for r in self.held if key in self.kept.get(r, set())}
            rooms = [r for r in ROOM_KEYS if r in live or r in kept]
            conf = sink.conferences.get(key)
            bookable = (
                m.organiser in TMS_USER
                or self.kit.policy.unknown_organiser is UnknownOrganiser.BOOK_AS_SERVICE
            )
            if not bookable:
                assert not live, (
                    f"{uid}: an organiser outside the directory was not declined in {sorted(live)}"
                )
            if not rooms:
                assert conf is None, f"{uid}: no live room copy, yet TMS holds {conf.saved.system_ids}"
                booking = store.booking(uid)
                if not (self.held - set(live)):
                    assert booking is None or not booking.live, f"{uid}: the store thinks it is booked"
                continue
            assert conf is not None, f"{uid}: live in {rooms} but not in TMS"
            assert conf.saved.system_ids == tuple(SYSTEM[r] for r in rooms), (
                uid,
                conf.saved.system_ids,
                rooms,
            )
            assert conf.saved.owner_username == TMS_USER.get(m.organiser, SERVICE_USER)
            booking = store.booking(uid)
            assert booking is not None, f"{uid}: TMS holds it, the store has no booking"
            assert booking.live, f"{uid}: TMS holds it, the store's booking is {booking.state}"
            assert booking.conference_id == conf.saved.conference_id
            assert booking.rooms == tuple(rooms)
            dial_in = f"{conf.saved.conference_id}@video.lab.example"
            for room, copy in live.items():
                assert copy.response is Response.ACCEPT, f"{uid} in {room}: {copy.response}"
                blocks = dialin.find(copy.body, is_html=copy.body_is_html)
                assert len(blocks) == 1, f"{uid} in {room}: {len(blocks)} dial-in blocks"
                assert dial_in in blocks[0]
                record = store.record(room, uid)
                assert record is not None, (uid, room)
                assert record.status is BookingStatus.BOOKED, (uid, room, record)
                assert record.conference_id == conf.saved.conference_id
            if m.base.recurrence is not None and not kept:
                want = {o.recurrence_id: (o.start, o.end) for o in m.base.occurrences if o.moved}
                want.update(dict.fromkeys(m.base.deleted_occurrences))
                assert sink.effective_exceptions(key) == want, uid


# Sized for about 10 s under the "dev" profile (50 examples) and 20 s under "ci" (100) on two cores.
# `make soak` runs 2,000 examples of 40 steps: the crash faults of test_engine_doubt.py needed 20 to 40
# steps, more than CI's 20 find in a run.
EngineMachine.TestCase.settings = settings(
    max_examples=settings.default.max_examples,
    stateful_step_count=40 if os.environ.get("HYPOTHESIS_PROFILE") == "soak" else 20,
    deadline=None,
)
TestEngineMachine = EngineMachine.TestCase
