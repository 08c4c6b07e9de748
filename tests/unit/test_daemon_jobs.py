"""The daemon's units of work without a scheduler: stream groups, the pass dispatcher, housekeeping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from xesync import events
from xesync.adapters.exchange_stream import GROUP_SIZE, StreamGroup, group_rooms
from xesync.config import StreamCatchUp
from xesync.daemon_jobs import Passes
from xesync.engine import RoomReport, SyncReport
from xesync.health import HealthBook
from xesync.metrics import Metrics
from xesync.model import AuditEntry, AuditOutcome
from xesync.store import Store


def test_rooms_are_streamed_in_groups_of_at_most_200_in_order():
    """401 rooms make three groups of 200, 200 and 1, each anchored on its first room."""
    rooms = [f"room-{i}@example.com" for i in range(401)]
    groups = group_rooms(rooms)
    assert [len(g) for g in groups] == [GROUP_SIZE, GROUP_SIZE, 1]
    assert [g[0] for g in groups] == [rooms[0], rooms[200], rooms[400]]


class _StreamHooks:
    """Records what a stream group reports."""

    def __init__(self) -> None:
        self.woken: list[tuple[tuple[str, ...], str]] = []
        self.lost: list[tuple[str, ...]] = []

    def wake(self, rooms, *, reason):
        self.woken.append((tuple(rooms), reason))

    def stream_opened(self, *, reconnect):
        pass

    def stream_closed(self):
        pass

    def stream_lost(self, rooms):
        self.lost.append(tuple(rooms))


def test_only_a_connect_on_new_subscriptions_wakes_the_group_for_a_catch_up():
    """New subscriptions wake every room and start the coverage; a resumed stream on them wakes nobody."""
    hooks, now = _StreamHooks(), [5.0]
    group = StreamGroup(0, ["a@x", "b@x"], source=None, hooks=hooks, clock=lambda: now[0])
    group._fresh = True  # what subscribing sets
    group._opened()
    assert hooks.woken == [(("a@x", "b@x"), "catch_up")]
    assert group.covered_since == 5.0
    now[0] = 1805.0
    group._opened()  # the server closed the stream in order; the same subscriptions stream again
    assert hooks.woken == [(("a@x", "b@x"), "catch_up")]
    assert group.covered_since == 5.0


def test_every_connect_catches_up_after_each_connect_and_restarts_the_coverage():
    """With every_connect a resumed stream wakes the group too, and coverage starts again."""
    hooks, now = _StreamHooks(), [5.0]
    group = StreamGroup(
        0, ["a@x"], source=None, hooks=hooks, catch_up=StreamCatchUp.EVERY_CONNECT, clock=lambda: now[0]
    )
    group._fresh = True
    group._opened()
    now[0] = 1805.0
    group._opened()
    assert hooks.woken == [(("a@x",), "catch_up"), (("a@x",), "catch_up")]
    assert group.covered_since == 1805.0


def test_a_stream_failure_drops_the_subscriptions_and_reports_the_rooms_uncovered():
    """A failed connect forgets the subscriptions, ends the coverage and reports the rooms uncovered."""
    hooks = _StreamHooks()
    group = StreamGroup(0, ["a@x", "b@x"], source=None, hooks=hooks, clock=lambda: 1.0)
    group._subscriptions = {"SUB1": "a@x", "SUB2": "b@x"}
    group._fresh = True
    group._opened()
    attempts = []

    def connect():
        attempts.append(dict(group._subscriptions))
        if len(attempts) == 1:
            raise ConnectionError("the stream's connection dropped")
        group._stop.set()

    group._connect_and_read = connect
    group._run()
    assert hooks.lost == [("a@x", "b@x")]
    assert group.covered_since is None
    assert attempts[1] == {}  # the next connect subscribes anew (and so catches up)


class _Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Engine:
    """An engine that records its passes; a pass over a room in ``block`` waits until released."""

    def __init__(self, block: set[str] | None = None) -> None:
        self.calls: list[tuple[list[str], bool]] = []
        self.block = set(block or ())
        self.entered = threading.Event()
        self.release = threading.Event()
        self.in_hand: set[str] = set()
        self.overlaps: list[str] = []
        self.rechecks: dict[str, datetime] = {}  # room -> its earliest recheck, as the store answers
        self.store = self
        self._lock = threading.Lock()

    NOW = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)

    def clock(self) -> datetime:
        """The engine's wall clock (fixed: the dispatcher's own clock is the test's)."""
        return self.NOW

    def next_recheck(self, room: str) -> datetime | None:
        """The store's answer: the room's earliest recheck."""
        return self.rechecks.get(room)

    def sync(self, rooms: list[str], *, full: bool = False) -> SyncReport:
        with self._lock:
            self.overlaps += [r for r in rooms if r in self.in_hand]
            self.in_hand |= set(rooms)
            self.calls.append((list(rooms), full))
        try:
            if self.block & set(rooms):
                self.block -= set(rooms)
                self.entered.set()
                assert self.release.wait(30)
        finally:
            with self._lock:
                self.in_hand -= set(rooms)
        return SyncReport(run_id="t", rooms=[RoomReport(room=r) for r in rooms])


def wait_for(what, condition):
    """Poll ``condition`` until true; fail naming ``what`` after a generous bound (not a timing claim)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def make():
    """Build dispatchers over a fake engine and clock; close them after the test."""
    made: list[Passes] = []

    def build(rooms, engine, clock, **kwargs):
        kwargs.setdefault("coalesce", 0.0)  # wake-ups pass at once unless a test asks otherwise
        book = HealthBook(rooms, threshold=timedelta(minutes=5), streamed_threshold=timedelta(hours=2))
        passes = Passes(
            engine, rooms, book=book, metrics=Metrics(book), stopping=threading.Event(),
            interval=timedelta(seconds=60), safety_interval=timedelta(hours=1), clock=clock, **kwargs,
        )  # fmt: skip
        made.append(passes)
        return passes, book

    yield build
    for passes in made:
        passes.close()


def test_every_room_passes_once_at_start_and_is_then_due_an_interval_after_its_pass(make):
    """At start every room passes once; its next pass is due sync.interval (plus at most a tenth) after it."""
    engine, clock = _Engine(), _Clock()
    passes, _ = make(["a@x", "b@x"], engine, clock, workers=2)
    passes.start()
    wait_for("both rooms' first pass", lambda: passes.backlog() == 0 and len(engine.calls) == 2)
    assert sorted(rooms[0] for rooms, _ in engine.calls) == ["a@x", "b@x"]
    for room in ("a@x", "b@x"):
        due = passes.due_in(room)
        assert due is not None
        assert 60 <= due <= 66


def test_with_a_start_grace_the_catch_up_is_a_rooms_first_pass_and_the_rest_wait(make):
    """Started with first_after, a room its catch-up wakes passes once; the others stay due later."""
    engine, clock = _Engine(), _Clock()
    passes, _ = make(["a@x", "b@x"], engine, clock, workers=1)
    passes.start(first_after=60.0)
    passes.wake(["a@x"], reason="catch_up")
    wait_for("the catch-up pass", lambda: len(engine.calls) == 1 and passes.backlog() == 0)
    assert engine.calls == [(["a@x"], False)]
    assert passes.due_in("b@x") == 60.0
    due_a = passes.due_in("a@x")
    assert due_a is not None
    assert 60 <= due_a <= 66


def test_a_wake_up_during_a_pass_runs_the_room_once_more_and_is_not_lost(make):
    """A room woken (twice) while its pass runs gets exactly one more pass, never two at once."""
    engine, clock = _Engine(block={"a@x"}), _Clock()
    passes, book = make(["a@x"], engine, clock, workers=3)
    passes.start()
    assert engine.entered.wait(30)
    passes.wake(["a@x"], reason="notification")
    passes.wake(["A@x"], reason="notification")
    passes.wake(["other@x"], reason="notification")  # another configuration's room: ignored
    assert passes.backlog() == 1
    engine.release.set()
    wait_for("the second pass", lambda: len(engine.calls) == 2 and passes.backlog() == 0)
    passes.close()
    assert [rooms for rooms, _ in engine.calls] == [["a@x"], ["a@x"]]
    assert engine.overlaps == []
    assert book.rooms()[0].last_good_pass is not None


def test_a_wake_up_pass_restarts_the_interval_from_its_own_end(make):
    """The interval counts from the room's last pass, whatever started it: a wake-up pass moves it on."""
    engine, clock = _Engine(), _Clock()
    passes, _ = make(["a@x"], engine, clock, workers=1)
    passes.start()
    wait_for("the first pass", lambda: len(engine.calls) == 1 and passes.backlog() == 0)
    clock.now = 40.0
    passes.wake(["a@x"], reason="notification")
    wait_for("the woken pass", lambda: len(engine.calls) == 2 and passes.backlog() == 0)
    due = passes.due_in("a@x")
    assert due is not None
    assert 60 <= due <= 66


def test_wake_ups_jump_ahead_of_rooms_already_due(make):
    """With one worker busy, a woken room runs before rooms whose interval pass is already due."""
    rooms = ["a@x", "b@x", "c@x", "d@x"]
    engine, clock = _Engine(block={"a@x"}), _Clock()
    passes, _ = make(rooms, engine, clock, workers=1)
    passes.start()
    assert engine.entered.wait(30)
    passes.wake(["d@x"], reason="notification")
    engine.release.set()
    wait_for("every room's pass", lambda: len(engine.calls) == 4 and passes.backlog() == 0)
    assert [r[0] for r, _ in engine.calls] == ["a@x", "d@x", "b@x", "c@x"]


def test_rooms_woken_together_pass_together_in_one_engine_pass(make):
    """Three rooms woken by one change (a meeting of three rooms) go into one engine pass, at most
    ``batch`` rooms a pass; a room woken later gets a pass of its own."""
    rooms = ["a@x", "b@x", "c@x", "d@x", "e@x"]
    engine, clock = _Engine(), _Clock()
    passes, _ = make(rooms, engine, clock, workers=2, batch=3, coalesce=0.2)
    passes.start(first_after=3600)  # no interval pass in the way
    passes.wake(["a@x"], reason="notification")
    passes.wake(["b@x", "c@x", "d@x"], reason="notification")
    wait_for("the woken rooms' passes", lambda: sum(len(r) for r, _ in engine.calls) == 4)
    assert [r for r, _ in engine.calls] == [["a@x", "b@x", "c@x"], ["d@x"]]
    passes.wake(["e@x"], reason="notification")
    wait_for("the later room's pass", lambda: len(engine.calls) == 3)
    assert engine.calls[-1] == (["e@x"], False)
    assert passes.backlog() == 0


def test_a_room_its_stream_covers_waits_for_the_safety_interval_until_the_stream_is_lost(make):
    """A good pass begun under a live stream is due after stream_safety_interval; losing the stream brings
    it back to sync.interval after that pass, and health judges it on the plain threshold again."""
    engine, clock = _Engine(), _Clock()
    covered: dict[str, float] = {"a@x": 0.0}
    passes, book = make(["a@x", "b@x"], engine, clock, workers=1)
    passes.covered_since = covered.get
    passes.start()
    wait_for("the first passes", lambda: len(engine.calls) == 2 and passes.backlog() == 0)
    due_a, due_b = passes.due_in("a@x"), passes.due_in("b@x")
    assert due_a is not None
    assert 3600 <= due_a <= 3630
    assert due_b is not None
    assert 60 <= due_b <= 66
    health = {r.room: r for r in book.rooms()}
    assert health["a@x"].streamed
    assert not health["b@x"].streamed

    clock.now = 10.0
    del covered["a@x"]
    passes.unstream(["a@x"])
    assert passes.due_in("a@x") == 50.0
    assert not book.rooms()[0].streamed


def test_a_recheck_brings_a_streamed_rooms_pass_forward_but_not_closer_than_the_interval(make):
    """A streamed room with a recheck due in 5 minutes is due then, not after the safety interval; one
    with a recheck already due is due after sync.interval (a retry that keeps failing polls, not spins);
    a room with none waits for its safety interval, and no pass logs a failure."""
    engine, clock = _Engine(), _Clock()
    engine.rechecks = {"a@x": _Engine.NOW + timedelta(minutes=5), "b@x": _Engine.NOW - timedelta(minutes=1)}
    passes, _ = make(["a@x", "b@x", "c@x"], engine, clock, workers=1)
    passes.covered_since = lambda _room: 0.0
    with capture_logs() as logs:
        passes.start()
        wait_for("the first passes", lambda: len(engine.calls) == 3 and passes.backlog() == 0)
    assert passes.due_in("a@x") == 300.0
    assert passes.due_in("b@x") == 60.0
    due_c = passes.due_in("c@x")
    assert due_c is not None
    assert 3600 <= due_c <= 3630
    assert not [e for e in logs if e["event"] == events.JOB_FAILED]


def test_a_pass_begun_before_the_stream_covered_the_room_is_not_streamed(make):
    """Coverage that began after the pass began does not count: the room stays on sync.interval."""
    engine, clock = _Engine(), _Clock()
    passes, _ = make(["a@x"], engine, clock, workers=1)
    passes.covered_since = lambda _room: 5.0
    passes.start()
    wait_for("the first pass", lambda: len(engine.calls) == 1 and passes.backlog() == 0)
    due = passes.due_in("a@x")
    assert due is not None
    assert 60 <= due <= 66


def test_the_full_reconcile_waits_for_a_room_pass_in_hand_and_never_overlaps_it(make):
    """The reconcile holds its batch's rooms: a room's pass in hand ends before the reconcile reads it."""
    engine, clock = _Engine(block={"a@x"}), _Clock()
    passes, _ = make(["a@x", "b@x"], engine, clock, workers=1, batch=2)
    passes.start()
    assert engine.entered.wait(30)
    with capture_logs() as logs:
        reconcile = threading.Thread(target=passes.full)
        reconcile.start()
        wait_for("the reconcile to start", lambda: any(e["event"] == events.RECONCILE_STARTED for e in logs))
        engine.release.set()
        reconcile.join(30)
    assert not reconcile.is_alive()
    assert engine.overlaps == []
    assert engine.calls[0] == (["a@x"], False)
    assert (["a@x", "b@x"], True) in engine.calls


def test_closing_waits_for_the_pass_in_hand_and_begins_no_other(make):
    """close() returns after the pass in hand ended; rooms still due and wake-ups get no pass."""
    engine, clock = _Engine(block={"a@x"}), _Clock()
    passes, _ = make(["a@x", "b@x"], engine, clock, workers=1)
    passes.start()
    assert engine.entered.wait(30)
    passes.wake(["b@x"], reason="notification")
    closer = threading.Thread(target=passes.close)
    closer.start()
    engine.release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert [r for r, _ in engine.calls] == [["a@x"]]
    assert not passes.alive()


def test_housekeeping_prunes_only_audit_entries_past_the_retention(tmp_path):
    """prune_audit deletes the entries written before the cut-off and keeps the newer ones."""
    now = datetime(2027, 3, 1, tzinfo=UTC)
    with Store.open(tmp_path / "x.db") as store:
        with store.transaction() as tx:
            for days in (400, 10):
                tx.add_audit(
                    AuditEntry(
                        at=now - timedelta(days=days),
                        run_id="r",
                        room="a@x",
                        uid=f"u{days}",
                        action="create_booking",
                        outcome=AuditOutcome.APPLIED,
                        reason="",
                    )
                )
        assert store.prune_audit(now - timedelta(days=365)) == 1
        store.optimize()
        assert [e.uid for e in store.audit()] == ["u10"]
