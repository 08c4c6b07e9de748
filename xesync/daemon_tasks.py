"""The daemon's scheduled tasks besides room passes: licence checks at their due times, housekeeping,
and the ``STATUS=`` line. APScheduler runs them (:mod:`xesync.daemon`); room passes are
:class:`xesync.daemon_jobs.Passes`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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

    def next_due(self, now: datetime) -> datetime | None:
        """When the next check falls due, or ``None`` when none is pending."""


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

    def plan_soon(self) -> None:
        """Ask for :meth:`plan` at the daemon's next tick (after a pass that changed a booking).

        Planning reads every live booking; once per tick, not once per pass, is what a thousand
        rooms' passes can afford (the profile in bench/: 12 % of the service's CPU when it planned
        after every pass that changed a booking).
        """
        self._asked.set()

    def plan_if_asked(self) -> None:
        """Run :meth:`plan` when :meth:`plan_soon` asked for it since the last plan."""
        if self._asked.is_set():
            self.plan()

    def plan(self) -> None:
        """Point the job at the next due check (a booking may be new)."""
        self._asked.clear()
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
