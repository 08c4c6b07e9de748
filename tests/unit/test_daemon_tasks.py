"""The licence job's planning in the daemon: a full plan after each run, and bookings a pass changed
bringing the job forward without a full plan. A fake checker answers; times are handed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from xesync.daemon_tasks import Licences
from xesync.health import HealthBook
from xesync.metrics import Metrics

NOW = datetime(2027, 3, 10, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Booking:
    """What the planning needs of a booking: its key (and the checker's due time, for the fake)."""

    key: tuple[str, None]
    due: datetime | None


class _Checker:
    """Answers next_due from the bookings' own due times; a full plan answers ``full``."""

    def __init__(self, full: datetime | None) -> None:
        self.full = full
        self.asked: list[list[Any] | None] = []

    def run_due(self, now: datetime) -> list[Any]:  # noqa: ARG002 - the port's signature
        return []

    def next_due(self, now: datetime, bookings: Sequence[Any] | None = None) -> datetime | None:  # noqa: ARG002
        self.asked.append(None if bookings is None else list(bookings))
        if bookings is None:
            return self.full
        times = [b.due for b in bookings if b.due is not None]
        return min(times) if times else None


def _licences(checker: _Checker) -> tuple[Licences, list[datetime]]:
    planned: list[datetime] = []
    book = HealthBook([], threshold=timedelta(minutes=5))
    return Licences(checker, metrics=Metrics(book), clock=lambda: NOW, reschedule=planned.append), planned


def booking(uid: str, due: datetime | None) -> _Booking:
    """A changed booking whose next check the fake checker puts at ``due``."""
    return _Booking(key=(uid, None), due=due)


def test_a_changed_booking_due_earlier_brings_the_job_forward_without_a_full_plan() -> None:
    """After a full plan at +10 min, a pass's booking due at +2 min moves the job there; the checker is
    asked about that booking only."""
    checker = _Checker(full=NOW + timedelta(minutes=10))
    licences, planned = _licences(checker)
    licences.plan()
    soon = booking("UID-1", NOW + timedelta(minutes=2))
    licences.plan_soon([soon])
    licences.plan_if_asked()
    assert planned == [NOW + timedelta(minutes=10), NOW + timedelta(minutes=2)]
    assert checker.asked == [None, [soon]]


def test_a_changed_booking_due_later_leaves_the_job_where_it_is() -> None:
    """A booking due after the planned run does not move it (the run plans in full afterwards)."""
    licences, planned = _licences(_Checker(full=NOW + timedelta(minutes=10)))
    licences.plan()
    licences.plan_soon([booking("UID-1", NOW + timedelta(hours=3)), booking("UID-2", None)])
    licences.plan_if_asked()
    assert planned == [NOW + timedelta(minutes=10)]


def test_bookings_noted_between_two_ticks_are_asked_about_once_and_by_key() -> None:
    """Two passes changing the same booking before a tick: one question, with the latest row."""
    checker = _Checker(full=None)
    licences, planned = _licences(checker)
    licences.plan()
    first, again = booking("UID-1", NOW + timedelta(hours=1)), booking("UID-1", NOW + timedelta(minutes=1))
    licences.plan_soon([first])
    licences.plan_soon([again])
    licences.plan_if_asked()
    licences.plan_if_asked()  # nothing new asked: no question
    assert checker.asked == [None, [again]]
    assert planned == [NOW + Licences.IDLE_RECHECK, NOW + timedelta(minutes=1)]


def test_a_due_time_in_the_past_runs_the_job_now() -> None:
    """A changed booking already due schedules the job at now, not in the past."""
    licences, planned = _licences(_Checker(full=None))
    licences.plan()
    licences.plan_soon([booking("UID-1", NOW - timedelta(minutes=5))])
    licences.plan_if_asked()
    assert planned[-1] == NOW
