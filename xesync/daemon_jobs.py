"""The daemon's units of work: room passes (interval, wake-up, catch-up), the nightly full reconcile,
licence checks and housekeeping, each fed into the health book and the metrics.

Terminology:

- *pass*: one :meth:`xesync.engine.Engine.sync` over some rooms (:mod:`xesync.health`).
- *wake-up*: a request for a room's pass now (a streaming notification, or the catch-up after a
  stream (re)connects); it sets the room's *pending* flag and brings its interval job forward.
- *backlog*: the rooms whose pending flag is set, i.e. a pass is asked for and not yet begun.

Decisions:

- **One pass per room at a time, and no wake-up lost.** A room's lock is taken without waiting; a
  wake-up that finds the room busy leaves the pending flag set, and the pass in hand runs once more
  before it lets go. (APScheduler's ``max_instances=1`` alone would drop such a wake-up with a
  "skipped" warning, and the change would wait a whole interval.)
- **The full reconcile** runs in batches of ``exchange.max_connections`` rooms, each under its rooms'
  locks, so that it never races a room's interval pass and a SIGTERM waits for one batch at most.
- **Errors stop at the job.** The engine turns a room's expected failures into a failed room; anything
  else (a bug, the store gone) is logged as ``job.failed`` with its traceback and counted as a failed
  pass for the rooms it held. The scheduler and the other rooms go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any, Protocol

import structlog

from xesync import events
from xesync.engine import Engine, SyncReport
from xesync.health import HealthBook
from xesync.metrics import Metrics
from xesync.store import Store

log = structlog.get_logger("xesync.daemon")

# How long decisions stay in the audit trail; a year covers every meeting's life and its follow-up.
AUDIT_RETENTION = timedelta(days=365)


class LicenceRunner(Protocol):
    """The licence checker's schedule API (``xesync.licence_service.LicenceChecker``)."""

    def run_due(self, now: datetime) -> list[Any]:
        """Run every check due at ``now``; return the checks made (each with a ``verdict``)."""

    def next_due(self, now: datetime) -> datetime | None:
        """When the next check falls due, or ``None`` when none is pending."""


class Passes:
    """Runs the passes of one configuration's rooms (see the module docstring).

    :param poke: bring a room's interval job forward to now (the daemon's scheduler).
    :param stopping: set on SIGTERM; no new pass begins once it is.
    """

    def __init__(
        self,
        engine: Engine,
        rooms: Sequence[str],
        *,
        book: HealthBook,
        metrics: Metrics,
        stopping: threading.Event,
        poke: Callable[[str], None],
        batch: int = 4,
    ) -> None:
        self.engine, self.rooms = engine, tuple(rooms)
        self._book, self._metrics, self._stopping, self._poke = book, metrics, stopping, poke
        self._batch = max(1, batch)
        self._locks = {room: threading.Lock() for room in self.rooms}
        self._pending = {room: threading.Event() for room in self.rooms}
        self.after_pass: Callable[[], None] = lambda: None
        self.last_report: SyncReport | None = None

    # ---------------------------------------------------------------------------------- room passes

    def run_room(self, room: str) -> None:
        """The room's job: pass over it, and again while wake-ups arrived during the pass."""
        pending, lock = self._pending[room], self._locks[room]
        pending.set()
        while pending.is_set() and not self._stopping.is_set():
            if not lock.acquire(blocking=False):
                return  # the pass in hand sees the flag and runs again
            try:
                while pending.is_set() and not self._stopping.is_set():
                    pending.clear()
                    self._pass([room], kind="items")
            finally:
                lock.release()
            # A wake-up that came between the last check and the release found the lock taken:
            # the outer loop takes it again for that one.

    def wake(self, rooms: Sequence[str], *, reason: str) -> None:
        """Ask for a pass over ``rooms`` now; rooms of another configuration are ignored."""
        for room in rooms:
            key = room.lower()
            if key not in self._pending:
                continue
            self._pending[key].set()
            log.debug(events.ROOM_WAKE_REQUESTED, room=key, reason=reason)
            if not self._locks[key].locked():
                self._poke(key)

    def backlog(self) -> int:
        """How many rooms wait for a pass asked for by a wake-up."""
        return sum(flag.is_set() for flag in self._pending.values())

    def full(self) -> None:
        """The nightly full reconcile: every room's whole calendar, batch by batch."""
        log.info(events.RECONCILE_STARTED, rooms=len(self.rooms))
        done = 0
        for start in range(0, len(self.rooms), self._batch):
            if self._stopping.is_set():
                break
            chunk = self.rooms[start : start + self._batch]
            with self._holding(chunk):
                self._pass(list(chunk), kind="full", full=True)
            done += len(chunk)
        log.info(events.RECONCILE_FINISHED, rooms=done, stopped=self._stopping.is_set())
        for room in self.rooms:
            if self._pending[room].is_set():
                self._poke(room)

    @contextmanager
    def holding_all(self) -> Iterator[None]:
        """Hold every room's lock (waits for the passes in hand): a reload swaps the engine inside."""
        with self._holding(self.rooms):
            yield

    @contextmanager
    def _holding(self, rooms: Sequence[str]) -> Iterator[None]:
        with ExitStack() as stack:
            for room in sorted(rooms):  # one order everywhere: no two holders deadlock
                stack.enter_context(self._locks[room])
            yield

    def _pass(self, rooms: list[str], *, kind: str, full: bool = False) -> None:
        started = perf_counter()
        try:
            report = self.engine.sync(rooms, full=full)
        except Exception as exc:
            log.exception(events.JOB_FAILED, job=f"pass:{kind}", rooms=rooms, error=type(exc).__name__)
            for room in rooms:
                self._book.record_pass(room, ok=False)
                self._metrics.pass_finished(room, ok=False, seconds=perf_counter() - started, kind=kind)
            return
        self.feed(report, seconds=perf_counter() - started, kind=kind)

    def feed(self, report: SyncReport, *, seconds: float, kind: str) -> None:
        """Record a pass's outcome in the health book and the metrics."""
        self.last_report = report
        for room in report.rooms:
            self._book.record_pass(room.room, ok=room.ok)
            self._metrics.pass_finished(room.room, ok=room.ok, seconds=seconds, kind=kind)
            for meeting in room.meetings:
                if meeting.outcome:
                    self._metrics.booking(meeting.outcome)
        # Re-plan the licence job only when a booking row changed: planning reads every live booking,
        # and after each of a thousand rooms' idle passes that was the daemon's main CPU cost (bench/).
        if any(m.booking is not None for room in report.rooms for m in room.meetings):
            self.after_pass()


class Licences:
    """Runs the licence checks when they fall due, and keeps the job's next run at the next due time.

    :param reschedule: move the licence job's next run to the given time.
    """

    IDLE_RECHECK = timedelta(minutes=15)  # with nothing due, look again after this (new bookings)

    def __init__(
        self,
        checker: LicenceRunner,
        *,
        metrics: Metrics,
        clock: Callable[[], datetime],
        reschedule: Callable[[datetime], None],
    ) -> None:
        self._checker, self._metrics, self._clock, self._reschedule = checker, metrics, clock, reschedule

    def run(self) -> None:
        """Run what is due, count each verdict, and schedule the next run."""
        now = self._clock()
        try:
            checks = self._checker.run_due(now)
        except Exception as exc:
            log.exception(events.JOB_FAILED, job="licence", error=type(exc).__name__)
            checks = []
        for check in checks:
            self._metrics.licence_verdict(str(getattr(check, "verdict", "unknown")))
        log.info(events.LICENCE_CHECKS_FINISHED, checks=len(checks))
        self.plan()

    def plan(self) -> None:
        """Point the job at the next due check (called after each pass too: a booking may be new)."""
        now = self._clock()
        try:
            due = self._checker.next_due(now)
        except Exception as exc:
            log.exception(events.JOB_FAILED, job="licence_plan", error=type(exc).__name__)
            due = None
        fallback = now + self.IDLE_RECHECK
        self._reschedule(fallback if due is None else max(now, min(due, fallback)))


def housekeeping(store: Store, *, now: datetime, retention: timedelta = AUDIT_RETENTION) -> None:
    """Prune the audit trail past ``retention`` and let SQLite refresh its planner statistics."""
    try:
        pruned = store.prune_audit(now - retention)
        store.optimize()
    except Exception as exc:
        log.exception(events.JOB_FAILED, job="housekeeping", error=type(exc).__name__)
        return
    log.info(events.HOUSEKEEPING_FINISHED, audit_pruned=pruned, retention_days=retention.days)


def status_line(book: HealthBook, *, backlog: int, streams: tuple[int, int]) -> str:
    """systemd's ``STATUS=``: rooms, stale rooms, last good pass, backlog, open streams."""
    open_, total = streams
    return f"{book.status_line()}, backlog {backlog}, streams {open_}/{total}"
