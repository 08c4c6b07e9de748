"""The daemon's units of work: room passes (a dispatcher with worker threads), the nightly full
reconcile, each fed into the health book and the metrics (licence checks and housekeeping:
:mod:`xesync.daemon_tasks`).

Terminology:

- *pass*: one :meth:`xesync.engine.Engine.sync` over some rooms (:mod:`xesync.health`).
- *due time*: when a room's next interval pass falls due: ``sync.interval`` (plus jitter) after its
  last pass ended, whatever started that pass; ``sync.stream_safety_interval`` instead when the pass
  began under a live stream (*streamed*, below); earlier when one of the room's records has a
  recheck due before that (a transient failure's retry, a sibling copy left with an old dial-in):
  no stream event announces a recheck, so a streamed room would otherwise wait up to its safety
  interval for it.
- *wake-up*: a request for a room's pass now (a streaming notification, or a catch-up after a stream
  subscribed anew); it puts the room in the *ready queue*, ahead of every interval pass.
- *backlog*: the rooms waiting for a pass: woken, or past their due time, and not yet begun.
- *streamed*: the room's last good pass began while its stream group's subscriptions were live
  (``covered_since``, :mod:`xesync.adapters.exchange_stream`) and they still were when it ended: every
  later change wakes the room, so the interval pass is only a safety net.

Decisions:

- **A dispatcher, not one scheduler job per room.** ``exchange.max_connections`` worker threads take
  the next room from the ready queue (wake-ups, de-duplicated, first come first served), else the room
  whose due time passed longest ago (a heap). With a thousand APScheduler jobs, every wake-up was a
  ``modify_job`` and the scheduler's loop rescanned every job; wake-ups that met a running job were
  "skipped: maximum number of running instances reached" (bench/, 1,000 rooms).
- **Wake-ups that arrive together pass together.** An organiser's send notifies every invited room
  within milliseconds; the first woken room waits :data:`COALESCE_S` for the others, and the woken
  rooms then go into one engine pass (at most ``batch``), so that a meeting of several rooms is
  booked once with all of them, each copy written once and the organiser mailed once
  (:mod:`xesync.engine_pass`). Passed one by one, every later room's join changed the dial-in block
  and sent another confirmation.
- **One pass per room at a time, and no wake-up lost.** A room being passed (or held by the
  reconcile) is *busy*: a worker skips it, and a wake-up that finds it busy stays queued, so the room
  runs once more after the pass in hand.
- **The full reconcile** runs in batches of ``exchange.max_connections`` rooms, each batch holding
  its rooms (waiting for their passes in hand), so that it never races a room's pass and a SIGTERM
  waits for one batch at most. Rooms are held one by one in sorted order: no two holders deadlock,
  and a worker never waits while it holds a room.
- **Stopping** (:meth:`Passes.close`): no pass begins any more; the workers finish the pass in hand
  (each meeting commits alone) and end.
- **Errors stop at the pass.** The engine turns a room's expected failures into a failed room;
  anything else (a bug, the store gone) is logged as ``job.failed`` with its traceback and counted
  as a failed pass for the rooms it held. The workers and the other rooms go on.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from datetime import timedelta
from time import perf_counter

import structlog

from xesync import events
from xesync.engine import Engine, SyncReport
from xesync.health import HealthBook
from xesync.metrics import Metrics
from xesync.model import Booking

log = structlog.get_logger("xesync.daemon")

MAX_JITTER_S = 30.0  # interval passes spread by up to a tenth of their period, at most this
COALESCE_S = 0.25  # a woken room waits this long (real seconds) for the other rooms of the same change


def _never(_room: str) -> float | None:
    return None


class Passes:
    """The room-pass dispatcher of one configuration (see the module docstring).

    :param interval: ``sync.interval``: a room's period without a live stream.
    :param safety_interval: ``sync.stream_safety_interval``: a streamed room's period (never below
        ``interval``).
    :param workers: worker threads, each passing over one room at a time (``exchange.max_connections``).
    :param batch: rooms per batch of the full reconcile, and at most this many woken rooms per pass.
    :param coalesce: real seconds a woken room waits for others (:data:`COALESCE_S`; tests pass 0).
    :param stopping: set on SIGTERM; no new pass begins once it is.
    :param clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        engine: Engine,
        rooms: Sequence[str],
        *,
        book: HealthBook,
        metrics: Metrics,
        stopping: threading.Event,
        interval: timedelta = timedelta(seconds=60),
        safety_interval: timedelta | None = None,
        workers: int = 4,
        batch: int = 4,
        coalesce: float = COALESCE_S,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.engine, self.rooms = engine, tuple(rooms)
        self._book, self._metrics, self._stopping = book, metrics, stopping
        self._interval = interval.total_seconds()
        self._safety = max(self._interval, (safety_interval or interval).total_seconds())
        self._workers, self._batch = max(1, workers), max(1, batch)
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._known = frozenset(self.rooms)
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, str]] = []  # (due, order, room); stale entries skipped
        self._due: dict[str, float] = {}
        self._ready: deque[str] = deque()  # woken rooms, each at most once (``_pending``)
        self._pending: set[str] = set()
        self._woken_at: dict[str, float] = {}  # pending room -> when it was woken (time.monotonic)
        self._coalesce = max(0.0, coalesce)
        self._busy: set[str] = set()
        self._streamed: set[str] = set()
        self._ended: dict[str, float] = {}  # when each room's last pass ended
        self._recheck_in: dict[str, float] = {}  # seconds from a pass's end to its room's next recheck
        self._closed = False
        self._threads: list[threading.Thread] = []
        #: When the room's stream group has been live since (monotonic), or ``None``: the streams'.
        self.covered_since: Callable[[str], float | None] = _never
        #: Told the bookings a pass changed (the licence job's planning, :mod:`xesync.daemon_tasks`).
        self.after_pass: Callable[[list[Booking]], None] = lambda _bookings: None
        self.last_report: SyncReport | None = None

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self, *, first_after: float = 0.0) -> None:
        """Make every room due once, in order, ``first_after`` seconds from now; start the workers.

        :param first_after: with streams, their first connect's catch-up passes every room it
            covers; the first interval pass waits this long for it, so that a room is not passed
            twice at start (once before its subscription, once for its catch-up).
        """
        with self._cv:
            due = self._clock() + first_after
            for room in self.rooms:
                self._set_due(room, due)
        for index in range(min(self._workers, max(1, len(self.rooms)))):
            thread = threading.Thread(target=self._work, name=f"xesync-pass-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def close(self) -> None:
        """No pass begins any more; wait for the workers to finish the passes in hand."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()

    def alive(self) -> bool:
        """Whether every worker thread runs (the watchdog stops pinging when one died)."""
        return all(thread.is_alive() for thread in self._threads)

    # ---------------------------------------------------------------------------------- requests

    def wake(self, rooms: Sequence[str], *, reason: str) -> None:
        """Ask for a pass over ``rooms`` now; rooms of another configuration are ignored."""
        woken = []
        with self._cv:
            for room in rooms:
                key = room.lower()
                if key in self._known and key not in self._pending:
                    self._pending.add(key)
                    self._ready.append(key)
                    self._woken_at[key] = time.monotonic()
                    woken.append(key)
            if woken:
                self._cv.notify(len(woken))
        for key in woken:
            log.debug(events.ROOM_WAKE_REQUESTED, room=key, reason=reason)

    def unstream(self, rooms: Sequence[str]) -> None:
        """``rooms`` lost their stream: their next pass is due ``sync.interval`` after their last."""
        keys = [room.lower() for room in rooms]
        with self._cv:
            for key in keys:
                if key in self._streamed:
                    self._streamed.discard(key)
                    due = min(self._due.get(key, float("inf")), self._ended.get(key, 0.0) + self._interval)
                    self._set_due(key, due)
            self._cv.notify_all()
        self._book.unstream(keys)

    def backlog(self) -> int:
        """How many rooms wait for a pass: woken, or past their due time, and not yet begun."""
        with self._cv:
            now = self._clock()
            late = {r for r, due in self._due.items() if due <= now and r not in self._busy}
            return len(late | self._pending)

    def due_in(self, room: str) -> float | None:
        """Seconds until ``room``'s next interval pass (negative when late); ``None`` when not planned."""
        with self._cv:
            due = self._due.get(room)
            return None if due is None else due - self._clock()

    # ---------------------------------------------------------------------------------- the reconcile

    def full(self) -> None:
        """The nightly full reconcile: every room's whole calendar, batch by batch."""
        log.info(events.RECONCILE_STARTED, rooms=len(self.rooms))
        done = 0
        for start in range(0, len(self.rooms), self._batch):
            if self._halted():
                break
            chunk = list(self.rooms[start : start + self._batch])
            self._hold(chunk)
            started = self._clock()
            streamed: set[str] = set()
            try:
                streamed = self._pass(chunk, kind="full", started=started, full=True)
            finally:
                self._release(chunk, started=started, streamed=streamed)
            done += len(chunk)
        log.info(events.RECONCILE_FINISHED, rooms=done, stopped=self._halted())

    @contextmanager
    def holding_all(self) -> Iterator[None]:
        """Hold every room (waits for the passes in hand): a reload swaps the engine inside."""
        self._hold(self.rooms)
        try:
            yield
        finally:
            self._release(self.rooms)

    # ---------------------------------------------------------------------------------- workers

    def _work(self) -> None:
        while (rooms := self._take()) is not None:
            started = self._clock()
            streamed: set[str] = set()
            try:
                streamed = self._pass(rooms, kind="items", started=started)
            finally:
                self._release(rooms, started=started, streamed=streamed)

    def _take(self) -> list[str] | None:
        with self._cv:
            while not self._halted():
                now = self._clock()
                rooms, woken_wait = self._next(now)
                if rooms:
                    self._busy.update(rooms)
                    return rooms
                waits = [
                    w for w in (woken_wait, self._heap[0][0] - now if self._heap else None) if w is not None
                ]
                self._cv.wait(max(0.0, min(waits)) if waits else None)
            return None

    def _next(self, now: float) -> tuple[list[str], float | None]:
        """The rooms to pass next, or none and how long until the first woken room has waited enough."""
        woken = [room for room in self._ready if room not in self._busy]
        if woken:  # a busy room stays queued: it runs once more after the pass in hand
            waited = time.monotonic() - self._woken_at.get(woken[0], 0.0)
            if waited >= self._coalesce or len(woken) >= self._batch:
                rooms = woken[: self._batch]
                for room in rooms:
                    self._ready.remove(room)
                    self._pending.discard(room)
                    self._woken_at.pop(room, None)
                return rooms, None
            hold: float | None = self._coalesce - waited
        else:
            hold = None
        while self._heap and self._heap[0][0] <= now:
            due, _, room = heapq.heappop(self._heap)
            # Stale, in hand (its end sets a new due time) or queued as a wake-up: not this entry.
            if self._due.get(room) == due and room not in self._busy and room not in self._pending:
                return [room], None
        return [], hold

    def _hold(self, rooms: Sequence[str]) -> None:
        with self._cv:
            for room in sorted(rooms):
                while room in self._busy:
                    self._cv.wait()
                self._busy.add(room)

    def _release(
        self, rooms: Sequence[str], *, started: float | None = None, streamed: AbstractSet[str] = frozenset()
    ) -> None:
        with self._cv:
            ended = self._clock()
            for room in rooms:
                self._busy.discard(room)
                if started is None:
                    continue  # held for a reload: no pass happened
                self._ended[room] = ended
                period = self._safety if room in streamed else self._interval
                (self._streamed.add if room in streamed else self._streamed.discard)(room)
                jitter = self._rng.uniform(0, min(period / 10, MAX_JITTER_S))
                recheck = self._recheck_in.pop(room, None)
                # A recheck brings the pass forward, but never closer than sync.interval: a record
                # whose recheck stays due (its retry keeps failing) is passed as often as polling would.
                soon = max(self._interval, recheck) if recheck is not None else period + jitter
                self._set_due(room, ended + min(period + jitter, soon))
            self._cv.notify_all()

    def _set_due(self, room: str, due: float) -> None:
        self._due[room] = due
        heapq.heappush(self._heap, (due, next(self._seq), room))
        if len(self._heap) > 4 * len(self._due) + 64:
            # Superseded entries wait in the heap until their time; many wake-ups pile them up.
            self._heap = [(d, next(self._seq), r) for r, d in self._due.items()]
            heapq.heapify(self._heap)

    def _halted(self) -> bool:
        return self._closed or self._stopping.is_set()

    # ---------------------------------------------------------------------------------- one pass

    def _pass(self, rooms: list[str], *, kind: str, started: float, full: bool = False) -> set[str]:
        """Pass over ``rooms``; return those whose pass was good and streamed."""
        began = perf_counter()
        try:
            report = self.engine.sync(rooms, full=full)
        except Exception as exc:
            log.exception(events.JOB_FAILED, job=f"pass:{kind}", rooms=rooms, error=type(exc).__name__)
            for room in rooms:
                self._book.record_pass(room, ok=False)
                self._metrics.pass_finished(room, ok=False, seconds=perf_counter() - began, kind=kind)
            return set()
        streamed = set()
        for result in report.rooms:
            since = self.covered_since(result.room)
            if result.ok and since is not None and since <= started:
                streamed.add(result.room)
        self._plan_rechecks(rooms)
        self.feed(report, seconds=perf_counter() - began, kind=kind, streamed=streamed)
        return streamed

    def _plan_rechecks(self, rooms: list[str]) -> None:
        """Note when each room's earliest recheck falls due, for :meth:`_release` (see *due time*)."""
        try:
            now = self.engine.clock()
            found = {room: self.engine.store.next_recheck(room) for room in rooms}
        except Exception as exc:
            log.exception(events.JOB_FAILED, job="plan_rechecks", rooms=rooms, error=type(exc).__name__)
            return
        with self._cv:
            for room, at in found.items():
                if at is not None:
                    self._recheck_in[room] = max(0.0, (at - now).total_seconds())

    def feed(
        self, report: SyncReport, *, seconds: float, kind: str, streamed: AbstractSet[str] = frozenset()
    ) -> None:
        """Record a pass's outcome in the health book and the metrics."""
        self.last_report = report
        for room in report.rooms:
            self._book.record_pass(room.room, ok=room.ok, streamed=room.room in streamed)
            self._metrics.pass_finished(room.room, ok=room.ok, seconds=seconds, kind=kind)
            for meeting in room.meetings:
                if meeting.outcome:
                    self._metrics.booking(meeting.outcome)
        # Re-plan the licence job only when a booking row changed: planning reads every live booking,
        # and after each of a thousand rooms' idle passes that was the daemon's main CPU cost (bench/).
        changed = [m.booking for room in report.rooms for m in room.meetings if m.booking is not None]
        if changed:
            self.after_pass(changed)
