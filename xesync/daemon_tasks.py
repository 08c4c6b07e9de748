"""The daemon's scheduled tasks besides room passes: licence checks at their due times, housekeeping,
and the ``STATUS=`` line. APScheduler runs them (:mod:`xesync.daemon`); room passes are
:class:`xesync.daemon_jobs.Passes`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from xesync import events
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

    def next_due(self, now: datetime, bookings: Sequence[Any] | None = None) -> datetime | None:
        """When the next check falls due, or ``None`` when none is pending (``bookings``: of these)."""


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
        self._asked = threading.Event()
        self._lock = threading.Lock()
        self._changed: dict[Any, Any] = {}  # booking key -> the booking, changed since the last plan
        self._next: datetime | None = None  # when the job runs next, as last planned

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

    def plan_soon(self, bookings: Sequence[Any] = ()) -> None:
        """Note bookings a pass changed, for :meth:`plan_if_asked` at the daemon's next tick.

        Only the changed bookings are looked at then, and the job is only ever brought forward by
        them: a full plan reads every live booking, which after each of a thousand rooms' passes was
        the service's main CPU cost, and once per tick still a tenth of it (bench/). The job itself
        plans in full after each run.
        """
        with self._lock:
            for booking in bookings:
                self._changed[booking.key] = booking
        self._asked.set()

    def plan_if_asked(self) -> None:
        """Bring the job forward when a booking noted by :meth:`plan_soon` is due before its next run."""
        if not self._asked.is_set():
            return
        self._asked.clear()
        with self._lock:
            changed, self._changed = list(self._changed.values()), {}
        if not changed:
            return
        now = self._clock()
        try:
            due = self._checker.next_due(now, changed)
        except Exception as exc:
            log.exception(events.JOB_FAILED, job="licence_plan", error=type(exc).__name__)
            return
        if due is not None and (self._next is None or due < self._next):
            self._at(max(now, due))

    def plan(self) -> None:
        """Point the job at the next due check of every live booking."""
        self._asked.clear()
        with self._lock:
            self._changed = {}
        now = self._clock()
        try:
            due = self._checker.next_due(now)
        except Exception as exc:
            log.exception(events.JOB_FAILED, job="licence_plan", error=type(exc).__name__)
            due = None
        fallback = now + self.IDLE_RECHECK
        self._at(fallback if due is None else max(now, min(due, fallback)))

    def _at(self, when: datetime) -> None:
        self._next = when
        self._reschedule(when)


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
