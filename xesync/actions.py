"""The planner's vocabulary: what it is given (policy, facts) and what it returns (actions).

:mod:`xesync.reconcile` turns frozen facts into frozen actions; :mod:`xesync.engine` gathers the
facts through the ports and applies the actions one at a time. Each action names its ``kind`` in
the audit trail's words (``create_booking``, ``decline_meeting``, …) and carries the reason the
planner had, so that ``xesync plan`` and ``xesync explain`` can print it as it was decided.

Two stages per meeting, because what a room is told depends on what TMS answered:

1. **TMS stage** (:class:`TmsPlan`): save, move or delete in TMS, or refuse before asking TMS.
2. **Room stage**: write the dial-in block, accept or decline, tell the organiser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from xesync.config.model import PrivateMeetings, SeriesBeyondLimits, UnknownOrganiser
from xesync.directory import NotInDirectory, Person
from xesync.meetings import ConferenceRequest, ItemRef, Mail, RoomItem
from xesync.model import Booking, SyncRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Every rule the planner applies that an admin can change (``[sync]`` and ``[tms]``).

    :param booking_window: TMS's booking window (``tms.booking_window_days``, L2/L6).
    :param lookahead: how far ahead meetings are read (``sync.lookahead``).
    :param max_duration: longer meetings are declined (``sync.max_duration``).
    :param unknown_organiser: decline, or book as the service user (L9).
    :param private_meetings: a neutral title for private meetings, or the subject.
    :param private_title: the neutral title.
    :param series_beyond_limits: rolling window or decline, for series TMS refuses whole (L3, L4).
    :param notify_organiser: tell the organiser the outcome.
    :param mass_cancel_guard: the data-loss fuse is on.
    :param mass_cancel_max_share: the fuse trips above this share of a room's future bookings…
    :param mass_cancel_min: …when at least this many would be cancelled in one pass.
    :param force_cancel: ``--force-cancel``: apply cancellations the fuse would refuse.
    :param max_occurrences: TMS's limit on a series (L4).
    :param rolling_recheck: how often a rolling series is extended.
    """

    booking_window: timedelta = timedelta(days=365)
    lookahead: timedelta = timedelta(days=180)
    max_duration: timedelta = timedelta(hours=24)
    unknown_organiser: UnknownOrganiser = UnknownOrganiser.DECLINE
    private_meetings: PrivateMeetings = PrivateMeetings.NEUTRAL
    private_title: str = "Private meeting"
    series_beyond_limits: SeriesBeyondLimits = SeriesBeyondLimits.ROLLING
    notify_organiser: bool = True
    mass_cancel_guard: bool = True
    mass_cancel_max_share: float = 0.5
    mass_cancel_min: int = 5
    force_cancel: bool = False
    max_occurrences: int = 100
    rolling_recheck: timedelta = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A configured room: its key, the name people know, and its TMS system."""

    key: str
    name: str
    system_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingFacts:
    """Everything the planner needs about one meeting in one room's pass.

    :param uid: the meeting's UID.
    :param room: the room whose pass this is.
    :param item: the room's copy as it is now; ``None`` when it left the room's calendar.
    :param records: this UID's records in every room, by room key.
    :param booking: the meeting's booking, if one was ever made.
    :param organiser: the directory's answer for the organiser; ``None`` when no directory is
        configured (organisers are then booked by e-mail address).
    :param recheck_due: the record asked to be read again now (retry, window, rolling series).
    :param fuse_kept: other rooms of the booking whose data-loss fuse holds this meeting's
        cancellation: they stay in the conference, as booked, until an admin forces it.
    """

    uid: str
    room: str
    item: RoomItem | None
    records: dict[str, SyncRecord] = field(default_factory=dict)
    booking: Booking | None = None
    organiser: Person | NotInDirectory | None = None
    recheck_due: bool = False
    fuse_kept: frozenset[str] = frozenset()


class Kind(StrEnum):
    """The audit trail's name for each decision."""

    CREATE_BOOKING = "create_booking"
    UPDATE_BOOKING = "update_booking"
    CANCEL_BOOKING = "cancel_booking"
    CANCEL_OCCURRENCE = "cancel_occurrence"
    MOVE_OCCURRENCE = "move_occurrence"
    REFUSE_MEETING = "refuse_meeting"
    SKIP_MEETING = "skip_meeting"
    WARN = "warn"
    WRITE_DIAL_IN = "write_dial_in"
    ACCEPT_MEETING = "accept_meeting"
    DECLINE_MEETING = "decline_meeting"
    NOTIFY_ORGANISER = "notify_organiser"


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveBooking:
    """Create or update the meeting's conference (``SaveConferenceWithMode``)."""

    uid: str
    request: ConferenceRequest
    rooms: tuple[str, ...]
    reason: str

    @property
    def kind(self) -> Kind:
        """``create_booking`` when TMS has no conference for it yet, else ``update_booking``."""
        return Kind.CREATE_BOOKING if self.request.conference_id is None else Kind.UPDATE_BOOKING


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteBooking:
    """Delete the meeting's conference, a whole series included."""

    uid: str
    external_key: str
    reason: str
    kind: Kind = Kind.CANCEL_BOOKING


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteOccurrence:
    """Delete one occurrence of a series."""

    uid: str
    external_key: str
    recurrence_id: datetime
    reason: str
    kind: Kind = Kind.CANCEL_OCCURRENCE


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveOccurrence:
    """Move one occurrence of a series."""

    uid: str
    external_key: str
    recurrence_id: datetime
    start: datetime
    end: datetime
    reason: str
    kind: Kind = Kind.MOVE_OCCURRENCE


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    """The meeting cannot be booked as it is; TMS is not asked.

    :param code: a stable short name of the rule (``all_day``, ``yearly``, ``unknown_organiser``…).
    :param decline: decline the rooms' copies (``False``: leave them, e.g. a past meeting).
    :param recheck_at: read the item again then (a meeting waiting to enter the booking window).
    """

    uid: str
    code: str
    reason: str
    decline: bool = True
    recheck_at: datetime | None = None

    @property
    def kind(self) -> Kind:
        """``refuse_meeting`` when the rooms decline, else ``skip_meeting``."""
        return Kind.REFUSE_MEETING if self.decline else Kind.SKIP_MEETING


@dataclass(frozen=True, slots=True, kw_only=True)
class Warn:
    """Nothing to do, but something an admin must hear about (an event with a fix)."""

    uid: str
    event: str
    reason: str
    kind: Kind = Kind.WARN


@dataclass(frozen=True, slots=True, kw_only=True)
class SetBody:
    """Write the dial-in block into the room copy's body."""

    ref: ItemRef
    body: str
    html: bool
    digest: str
    kind: Kind = Kind.WRITE_DIAL_IN


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """Accept as the room; ``notice`` is set when the message is the organiser's confirmation."""

    ref: ItemRef
    message: str
    notice: str | None = None
    kind: Kind = Kind.ACCEPT_MEETING


@dataclass(frozen=True, slots=True, kw_only=True)
class Decline:
    """Decline as the room with the reason; ``notice`` is set when it tells the organiser why."""

    ref: ItemRef
    message: str
    reason: str
    notice: str | None = None
    kind: Kind = Kind.DECLINE_MEETING


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMail:
    """Mail the organiser (the details changed after the room had accepted)."""

    mail: Mail
    notice: str
    kind: Kind = Kind.NOTIFY_ORGANISER


TmsAction = SaveBooking | DeleteBooking | DeleteOccurrence | MoveOccurrence
RoomAction = SetBody | Accept | Decline | SendMail


@dataclass(frozen=True, slots=True, kw_only=True)
class TmsPlan:
    """The TMS stage's decision for one meeting.

    :param uid: the meeting.
    :param actions: what to do in TMS, in order (empty: TMS already holds what it should).
    :param rooms: the rooms the conference should have when the actions are done.
    :param request: the conference wanted, ``None`` when it should not exist.
    :param content_hash: the hash of ``request`` as :class:`~xesync.model.Booking` stores it.
    :param refusal: why the meeting is not booked, if it is not.
    :param warnings: events to emit whatever happens.
    :param item_hash: the hash of the room copy's mapped fields, for the room's record.
    :param recheck_at: when to read the room copy again without a change from Exchange.
    :param cancelled: the meeting (or this room's part in it) was cancelled.
    :param fallback: what the conference keeps when TMS refuses this plan's save, instead of being
        deleted: the rooms whose cancellation a data-loss fuse holds, as they were booked.
    """

    uid: str
    actions: tuple[TmsAction, ...] = ()
    rooms: tuple[str, ...] = ()
    request: ConferenceRequest | None = None
    content_hash: str = ""
    refusal: Refuse | None = None
    warnings: tuple[Warn, ...] = ()
    item_hash: str = ""
    recheck_at: datetime | None = None
    cancelled: bool = False
    fallback: SaveBooking | None = None

    @property
    def cancels_booking(self) -> bool:
        """Whether the plan deletes a conference (what the mass-cancel fuse counts)."""
        return any(isinstance(a, DeleteBooking) for a in self.actions)
