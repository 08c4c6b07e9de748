"""The values that cross the ports: a room's copy of a meeting, and a conference as TMS has it.

The calendar source (:class:`xesync.ports.CalendarSource`) turns vendor items into :class:`RoomItem`;
the booking sink (:class:`xesync.ports.BookingSink`) takes a :class:`ConferenceRequest` and answers
with a :class:`SavedConference`. Nothing here knows exchangelib or SOAP, so the planner, the fakes and
a later Microsoft Graph source share them.

Terminology (beyond :mod:`xesync.model`)
----------------------------------------

room item
    One room mailbox's copy of a meeting: a single meeting or a series master, never an occurrence
    (``SyncFolderItems`` sees stored items only, ews.md §1.7). Its occurrences within the lookahead
    are carried along in :attr:`RoomItem.occurrences`.
recurrence id
    The original start of an occurrence in UTC (EWS ``OriginalStart``, TMS ``RecurrenceIdUTC``).
exception
    An occurrence that differs from its pattern: moved (:class:`Occurrence` with another start or
    end) or cancelled (its recurrence id in :attr:`RoomItem.deleted_occurrences`).
external key
    The TMS ``ExternalPrimaryKey`` of a booking: derived from the UID (:func:`external_key`), stable
    across restarts, renumbering and room changes (tms-booking-api.md §7.1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from xesync.model import as_utc

# TMS allows 255 characters in ExternalPrimaryKey's sibling Title; the key itself has no documented
# limit, but Outlook UIDs reach 200+ hex characters. A digest keeps the key short and stable.
_KEY_PREFIX = "xs1-"


def external_key(uid: str) -> str:
    """The TMS ``ExternalPrimaryKey`` for a meeting UID: ``xs1-`` + the SHA-256 hex of the UID, cut to 40.

    Outlook UIDs are long hex strings whose case varies between clients, so the UID is upper-cased
    first when it is hex (``GlobalObjectId``); other (iCalendar) UIDs are used as they are.
    """
    norm = uid.upper() if all(c in "0123456789abcdefABCDEF" for c in uid) else uid
    return _KEY_PREFIX + hashlib.sha256(norm.encode()).hexdigest()[:40]


class Response(StrEnum):
    """A room's response to a meeting (EWS ``MyResponseType``)."""

    UNKNOWN = "unknown"
    NO_RESPONSE = "no_response"
    TENTATIVE = "tentative"
    ACCEPT = "accept"
    DECLINE = "decline"
    ORGANIZER = "organizer"


class Frequency(StrEnum):
    """How a series repeats (EWS ``*Recurrence`` pattern, TMS ``FrequencyType``)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recurrence:
    """A series' pattern and range, as the organiser set it in Outlook.

    :param frequency: daily, weekly, monthly or yearly.
    :param interval: every ``interval`` days, weeks, months or years.
    :param weekdays: for weekly (and relative monthly/yearly) patterns, ISO weekdays 1 (Monday) … 7.
    :param day_of_month: for absolute monthly/yearly patterns, 1 … 31.
    :param week_of_month: for relative monthly/yearly patterns, 1 … 4, or -1 for the last.
    :param month: for yearly patterns, 1 … 12.
    :param first_day_of_week: ISO weekday the week starts on (EWS ``FirstDayOfWeek``), 1 by default.
    :param start_date: the range's start date, in the meeting's time zone.
    :param end_date: the range's last date (``EndDateRecurrence``), if any.
    :param count: the number of occurrences (``NumberedRecurrence``), if given.
    """

    frequency: Frequency
    interval: int = 1
    weekdays: tuple[int, ...] = ()
    day_of_month: int | None = None
    week_of_month: int | None = None
    month: int | None = None
    first_day_of_week: int = 1
    start_date: date
    end_date: date | None = None
    count: int | None = None

    @property
    def has_end(self) -> bool:
        """Whether the series ends (by date or by count); TMS refuses one that does not (L3)."""
        return self.end_date is not None or self.count is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """One occurrence of a series as Exchange has it now (moved ones at their new time).

    :param recurrence_id: the original start (UTC).
    :param start: the start now (UTC).
    :param end: the end now (UTC).
    """

    recurrence_id: datetime
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("recurrence_id", "start", "end"):
            object.__setattr__(self, name, as_utc(getattr(self, name), name))

    @property
    def moved(self) -> bool:
        """Whether the occurrence no longer starts at its original time."""
        return self.start != self.recurrence_id


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomItem:
    """A room mailbox's copy of a single meeting or series master (see *room item*).

    :param room: the room key, lower case.
    :param uid: the meeting's UID (same on every copy).
    :param item_id: the room copy's Exchange item id.
    :param change_key: its changekey.
    :param subject: the subject as the room copy shows it.
    :param organiser: the organiser's SMTP address, lower case (``""`` if the item names none).
    :param organiser_name: the organiser's display name.
    :param start: the start (UTC); for a series, the first occurrence's.
    :param end: the end (UTC); for a series, the first occurrence's.
    :param time_zone: the IANA zone of the meeting's start (from EWS ``StartTimeZone``), e.g.
        ``Europe/Oslo``; ``UTC`` when Exchange names none.
    :param all_day: an all-day event.
    :param private: ``Sensitivity`` is ``Private`` or ``Confidential``.
    :param cancelled: the organiser cancelled the meeting (``IsCancelled``) or removed this room.
    :param response: the room's own response (``MyResponseType``).
    :param attendees: every attendee address (required, optional, resources), lower case.
    :param location: the ``Location`` text.
    :param body: the room copy's body as stored (text or HTML, see ``body_is_html``).
    :param body_is_html: whether ``body`` is HTML.
    :param recurrence: the pattern for a series master, ``None`` for a single meeting.
    :param occurrences: a series' occurrences between now and the lookahead, in start order, at
        their current times (moved ones included, cancelled ones left out).
    :param deleted_occurrences: recurrence ids of a series' cancelled occurrences.
    :param sequence: ``AppointmentSequenceNumber``; rises on the organiser's full updates.
    """

    room: str
    uid: str
    item_id: str
    change_key: str
    subject: str
    organiser: str
    organiser_name: str = ""
    start: datetime
    end: datetime
    time_zone: str = "UTC"
    all_day: bool = False
    private: bool = False
    cancelled: bool = False
    response: Response = Response.UNKNOWN
    attendees: frozenset[str] = frozenset()
    location: str = ""
    body: str = ""
    body_is_html: bool = False
    recurrence: Recurrence | None = None
    occurrences: tuple[Occurrence, ...] = ()
    deleted_occurrences: tuple[datetime, ...] = ()
    sequence: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "room", self.room.lower())
        object.__setattr__(self, "organiser", self.organiser.lower())
        object.__setattr__(self, "start", as_utc(self.start, "start"))
        object.__setattr__(self, "end", as_utc(self.end, "end"))
        object.__setattr__(
            self,
            "deleted_occurrences",
            tuple(sorted(as_utc(d, "deleted_occurrences") for d in self.deleted_occurrences)),
        )

    @property
    def is_series(self) -> bool:
        """Whether this is a series master."""
        return self.recurrence is not None


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Where to write back: a room item by id and the changekey last seen.

    :ivar room: the room key.
    :ivar item_id: the Exchange item id.
    :ivar change_key: the changekey to send; write methods return the new one.
    """

    room: str
    item_id: str
    change_key: str


@dataclass(frozen=True, slots=True)
class RoomChanges:
    """What changed in one room since a sync state (:meth:`xesync.ports.CalendarSource.changes`).

    :ivar items: created or updated items (singles and series masters), each as it is now.
    :ivar deleted: item ids deleted from the room's calendar since the state.
    :ivar sync_state: the state to store, with the outcome, once every change is applied.
    :ivar full: whether this was a full sync (no or an invalid state given): every item in the room
        came as created, so an item that has a record but is missing here is gone.
    """

    items: tuple[RoomItem, ...]
    deleted: tuple[str, ...]
    sync_state: str
    full: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """A mail to the organiser, sent as the room (ews.md §1.12).

    :param room: the room key it is sent as.
    :param to: the recipient's address.
    :param subject: the subject line.
    :param text: the plain-text body.
    :param html: the HTML body.
    """

    room: str
    to: str
    subject: str
    text: str
    html: str


# -- TMS side -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    """Who a conference is booked for (tms-booking-api.md §7.4): ``OwnerUserName`` and the names TMS shows.

    :param username: the TMS user name, ``DOMAIN\\user``.
    :param first_name: ``OwnerFirstName``.
    :param last_name: ``OwnerLastName``.
    :param email: ``OwnerEmailAddress``.
    """

    username: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OccurrenceChange:
    """One TMS exception of a series: an occurrence moved, or cancelled.

    :param recurrence_id: the occurrence's original start (UTC), TMS ``RecurrenceIdUTC``.
    :param start: its new start (UTC), ``None`` when cancelled.
    :param end: its new end (UTC), ``None`` when cancelled.
    """

    recurrence_id: datetime
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("recurrence_id", "start", "end"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_utc(value, name))

    @property
    def cancelled(self) -> bool:
        """Whether the occurrence is deleted rather than moved."""
        return self.start is None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConferenceRequest:
    """The conference xesync wants TMS to hold for one meeting (``SaveConferenceWithMode``).

    :param external_key: ``ExternalPrimaryKey`` (with the configured ``ExternalSourceId``).
    :param title: ``Title``, at most 255 characters.
    :param start: ``StartTimeUTC``; for a series, the first occurrence's start.
    :param end: ``EndTimeUTC``; for a series, the first occurrence's end.
    :param time_zone: the IANA zone whose rules go in ``ConferenceTimeZoneRules``.
    :param owner: the owner, or ``None`` to book as the service user.
    :param system_ids: the rooms' TMS system ids, one ``Participant`` each, in order.
    :param recurrence: the series pattern, ``None`` for a single meeting.
    :param occurrence_limit: book at most this many occurrences (``PatternInstances``), for series
        with no end or more than TMS allows (L3, L4); ``None`` to send the series' own range.
    :param exceptions: moved and cancelled occurrences, sent as ``RecurrencePattern/Exceptions``.
    :param conference_id: the ``ConferenceId`` last known, ``None`` for a new booking.
    :param version: the ``Version`` last read, ``None`` for a new booking.
    """

    external_key: str
    title: str
    start: datetime
    end: datetime
    time_zone: str = "UTC"
    owner: Owner | None = None
    system_ids: tuple[int, ...]
    recurrence: Recurrence | None = None
    occurrence_limit: int | None = None
    exceptions: tuple[OccurrenceChange, ...] = ()
    conference_id: int | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start, "start"))
        object.__setattr__(self, "end", as_utc(self.end, "end"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedConference:
    """A conference as TMS answered it (``SaveConferenceWithModeResult``, ``GetConferenceByExternalId``).

    :param conference_id: ``ConferenceId``.
    :param version: ``Version``.
    :param external_key: ``ExternalPrimaryKey``.
    :param title: ``Title``.
    :param start: ``StartTimeUTC``.
    :param end: ``EndTimeUTC``.
    :param owner_id: ``OwnerId``.
    :param owner_username: ``OwnerUserName`` as TMS resolved it.
    :param system_ids: the TMS participants' system ids.
    :param status: ``ConferenceState/Status`` (``Pending``, ``Ongoing``, ``Defective``, …).
    :param info_text: ``ConferenceInfoText`` (the dial-in details), ``""`` if none.
    :param info_html: ``ConferenceInfoHtml``, unescaped, ``""`` if none.
    :param transaction_id: ``TransactionId`` (TMS 15), if sent.
    """

    conference_id: int
    version: int
    external_key: str = ""
    title: str = ""
    start: datetime
    end: datetime
    owner_id: int | None = None
    owner_username: str = ""
    system_ids: tuple[int, ...] = ()
    status: str = "Pending"
    info_text: str = ""
    info_html: str = ""
    transaction_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start, "start"))
        object.__setattr__(self, "end", as_utc(self.end, "end"))

    @property
    def defective(self) -> bool:
        """Whether TMS saved it as ``Defective`` (best-effort mode: no route or a conflict)."""
        return self.status.casefold() == "defective"
