"""What the benchmark does to and reads from the lab: load meetings, book as Outlook, see TMS saves.

- :func:`load` puts the scenario's meetings in place through the EWS simulator's own "organiser sends a
  meeting" action (in process, no HTTP): the rooms receive and accept them exactly as they would a send
  from Outlook, only without the wire cost, which is not what is measured.
- :class:`Outlook` books as a lab user through unmodified exchangelib (``CreateItem`` with
  ``SendToAllAndSaveCopy``), paying the injected EWS latency like a real client.
- :class:`SaveLog` notes the moment TMS first registers each ``(ExternalSourceId, ExternalPrimaryKey)``,
  by wrapping the simulator store's ``register``, so latency is measured at the TMS end without polling.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta
from typing import Any

from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    Version,
)
from exchangelib import UTC as EWS_UTC
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.protocol import Protocol
from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern

from bench.scenario import Meeting, Scenario
from xesync.lab import Lab
from xesync.lab.ews.control import send_meeting


def load(lab: Lab, scenario: Scenario) -> None:
    """Send every scenario meeting through the EWS simulator (rooms accept as they receive)."""
    ews = lab.ews
    if ews is None:
        raise RuntimeError("the lab runs no EWS simulator")
    for meeting in scenario.meetings:
        with ews.store.lock:  # type: ignore[attr-defined]
            send_meeting(ews, meeting.body())  # type: ignore[arg-type]


class SaveLog:
    """Monotonic time of each first TMS registration, by ``(source, key)``."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.saved: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.attach()

    def attach(self) -> None:
        """Wrap the current TMS store (call again after ``lab.tms.reset()``, which replaces it)."""
        store = self.lab.tms.store  # type: ignore[union-attr]
        original = store.register

        def register(booking: Any) -> None:
            original(booking)
            key = (booking.external_source_id or "", booking.external_primary_key or "")
            with self._lock:
                self.saved.setdefault(key, time.monotonic())

        store.register = register

    def count(self, source: str) -> int:
        """How many distinct keys ``source`` has saved."""
        with self._lock:
            return sum(1 for s, _ in self.saved if s == source)

    def at(self, source: str, key: str) -> float | None:
        """When ``(source, key)`` was first saved, or ``None``."""
        with self._lock:
            return self.saved.get((source, key))


class Outlook:
    """Lab users booking through exchangelib, one account a user, made on first use."""

    def __init__(self, lab: Lab, password: str = "bench-pw") -> None:  # noqa: S107 - the lab's fake password
        section = lab.describe()["ews"]
        self.url = section["url"]
        self.build = Build(*(int(p) for p in str(section["build"]).split(".")))
        self.password = password
        self.accounts: dict[str, tuple[Configuration, Account]] = {}

    def _account(self, email: str) -> Account:
        if email not in self.accounts:
            config = Configuration(
                service_endpoint=self.url,
                credentials=Credentials(email, self.password),
                auth_type=BASIC,
                version=Version(build=self.build),
            )
            account = Account(
                email, config=config, autodiscover=False, access_type=DELEGATE, default_timezone=EWS_UTC
            )
            self.accounts[email] = (config, account)
        return self.accounts[email][1]

    def book(self, meeting: Meeting) -> tuple[str, float]:
        """Send ``meeting``; its UID and the monotonic time the send returned (the room copy exists)."""
        account = self._account(meeting.organiser)
        tz = EWSTimeZone(str(meeting.start.tzinfo))
        item = CalendarItem(
            account=account,
            folder=account.calendar,
            subject=meeting.subject,
            start=EWSDateTime.from_datetime(meeting.start).astimezone(tz),
            end=EWSDateTime.from_datetime(meeting.start + timedelta(hours=1)).astimezone(tz),
            resources=meeting.rooms,
        )
        if meeting.weekly:
            item.recurrence = Recurrence(
                pattern=WeeklyPattern(interval=1, weekdays=[meeting.start.isoweekday()]),
                boundary=NumberedPattern(start=meeting.start.date(), number=meeting.weekly),
            )
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        sent = time.monotonic()
        item.refresh()
        return str(item.uid), sent

    def close(self) -> None:
        """Close every user's sessions."""
        for config, account in self.accounts.values():
            account.protocol.close()
            with contextlib.suppress(KeyError):
                del Protocol[config]
        self.accounts.clear()
