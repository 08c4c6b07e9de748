"""The lab clock: one settable notion of "now" shared by every simulator.

TMS conference state (Pending → Ongoing → Finished), CMS call start and end, and CMS licence snapshots
all follow this clock, so that a test or an admin's dry run can jump to a meeting's start without
waiting. The clock runs (real seconds pass) unless frozen; ``set`` and ``advance`` move it, and every
listener is told the new time at once, then once a second by the lab's ticker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from xesync import events

log = structlog.get_logger(__name__)

Listener = Callable[[datetime], None]


class LabClock:
    """A thread-safe, settable UTC clock with listeners.

    :param start: the lab time at construction; ``None`` starts at the real time.
    :param frozen: when true, time stands still between ``set``/``advance`` calls.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("the lab clock needs an aware datetime")
        self._lock = threading.RLock()
        self._base = (start or datetime.now(UTC)).astimezone(UTC)
        self._mono = time.monotonic()
        self._frozen = frozen
        self._listeners: list[Listener] = []

    def now(self) -> datetime:
        """The current lab time, aware, in UTC."""
        with self._lock:
            if self._frozen:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._mono)

    @property
    def frozen(self) -> bool:
        """Whether time stands still between explicit moves."""
        return self._frozen

    def set(self, now: datetime) -> None:
        """Jump to ``now`` (aware) and notify listeners."""
        if now.tzinfo is None:
            raise ValueError("the lab clock needs an aware datetime")
        with self._lock:
            self._base = now.astimezone(UTC)
            self._mono = time.monotonic()
        log.info(events.LAB_CLOCK_CHANGED, now=self._base.isoformat())
        self.tick()

    def advance(self, seconds: float) -> None:
        """Move forward (or back, if negative) by ``seconds`` and notify listeners."""
        self.set(self.now() + timedelta(seconds=seconds))

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the passing of real time, keeping the current lab time."""
        with self._lock:
            self._base = self.now()
            self._mono = time.monotonic()
            self._frozen = frozen

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(now)`` after every move and on every tick."""
        with self._lock:
            self._listeners.append(listener)

    def tick(self) -> None:
        """Tell every listener the current time; a failing listener is logged, not fatal."""
        now = self.now()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(now)
            except Exception:
                log.exception(events.LAB_CLOCK_LISTENER_FAILED, listener=repr(listener))


class Ticker:
    """A daemon thread calling :meth:`LabClock.tick` every ``interval`` seconds until stopped."""

    def __init__(self, clock: LabClock, interval: float = 1.0) -> None:
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-clock", daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._clock.tick()
