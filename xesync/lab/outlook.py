"""A lab user booking as Outlook does: unmodified exchangelib against the lab's EWS simulator.

Outlook sends a meeting request with the rooms as resources and keeps the organiser's copy; that is
what :meth:`OutlookUser.book` does through exchangelib (``CreateItem`` with
``SendMeetingInvitations=SendToAllAndSaveCopy``). The room copies then exist only because the EWS
simulator delivered the request, exactly as xesync meets them in production. The demo and the
tests use it; the core never does (it is lab code).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

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

from xesync.adapters.exchange_items import response_of
from xesync.meetings import Response

__all__ = ["OutlookUser", "UnknownLabUserError"]


class UnknownLabUserError(LookupError):
    """The lab's EWS simulator has no mailbox for this address."""

    def __init__(self, address: str, known: Sequence[str]) -> None:
        self.address = address
        super().__init__(f"the lab has no mailbox {address!r}; its users: {', '.join(known)}")


def _build(text: str) -> Build:
    major, minor, *rest = (int(p) for p in text.split("."))
    return Build(major, minor, *rest[:2])


class OutlookUser:
    """One lab mailbox user who books meetings through exchangelib, as Outlook would.

    :param ews: the ``ews`` section of :meth:`xesync.lab.Lab.describe` (URL, build and users).
    :param address: the user's e-mail address.
    """

    def __init__(self, ews: dict[str, Any], address: str) -> None:
        users = {str(u["email"]).lower(): u for u in ews["users"]}
        user = users.get(address.lower())
        if user is None:
            raise UnknownLabUserError(address, sorted(users))
        self.address = address.lower()
        self.name = str(user.get("name") or address)
        self._config = Configuration(
            service_endpoint=ews["url"],
            credentials=Credentials(self.address, user["password"]),
            auth_type=BASIC,
            version=Version(build=_build(str(ews["build"]))),
        )
        self.account = Account(
            self.address,
            config=self._config,
            autodiscover=False,
            access_type=DELEGATE,
            default_timezone=EWS_UTC,
        )
        self._sent: dict[str, Any] = {}

    def close(self) -> None:
        """Close the user's connections and forget exchangelib's cached protocol for them."""
        self.account.protocol.close()
        with contextlib.suppress(KeyError):
            del Protocol[self._config]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def book(
        self,
        subject: str,
        start: datetime,
        end: datetime,
        rooms: Sequence[str],
        *,
        attendees: Sequence[str] = (),
        weekly: int | None = None,
    ) -> str:
        """Send a meeting request to ``rooms`` (and ``attendees``); return the meeting's UID.

        :param start: an aware datetime; its zone becomes the meeting's zone, as Outlook sends its own.
        :param weekly: make it a weekly series of this many occurrences on ``start``'s weekday.
        """
        tz = EWSTimeZone(str(start.tzinfo))
        item = CalendarItem(
            account=self.account,
            folder=self.account.calendar,
            subject=subject,
            start=EWSDateTime.from_datetime(start).astimezone(tz),
            end=EWSDateTime.from_datetime(end).astimezone(tz),
            resources=list(rooms),
            required_attendees=list(attendees) or None,
        )
        if weekly is not None:
            item.recurrence = Recurrence(
                pattern=WeeklyPattern(interval=1, weekdays=[start.isoweekday()]),
                boundary=NumberedPattern(start=start.date(), number=weekly),
            )
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        item.refresh()
        uid = str(item.uid)
        self._sent[uid] = item
        return uid

    def cancel(self, uid: str) -> None:
        """Cancel a meeting this user sent (the rooms get the cancellation)."""
        item = self._sent[uid]
        item.refresh()
        item.cancel()

    def room_response(self, uid: str, room: str) -> Response:
        """The response ``room`` sent, as the organiser's copy shows it."""
        item = self._sent[uid]
        item.refresh()
        attendees = [*(item.resources or ()), *(item.required_attendees or ())]
        for attendee in attendees:
            if str(attendee.mailbox.email_address).lower() == room.lower():
                return response_of(attendee.response_type)
        raise KeyError(f"{room} is not among the attendees of {uid}")
