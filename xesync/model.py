"""What xesync knows and remembers: frozen value objects shared by the store, the planner and the engine.

Terminology
-----------

meeting
    A calendar item in a room mailbox, identified across mailboxes by its Exchange ``UID`` (Outlook's
    hex ``GlobalObjectId`` form, ``040000008200E00074C5B7101A82E008…``, or the iCalendar UID of
    meetings created elsewhere). The organiser's copy and every room's copy share the UID; item ids
    do not.
occurrence
    One instance of a recurring meeting, keyed by its *recurrence id*: the original start of that
    instance in UTC (EWS ``OriginalStart``, TMS ``RecurrenceIdUTC``). It stays the same when the
    instance is moved. A single meeting and a series master have no occurrence key (``None``).
booking
    The Cisco TMS conference made for a meeting or occurrence: a ``ConferenceId`` and a ``Version``
    that TMS increments on every save. TMS may renumber conference ids (product.md L12), so a booking
    is found again by its external key, never by a cached id alone.
record
    What xesync **last synced** for one (room key, UID, occurrence): the booking it maps to, the
    Exchange item's id and changekey, a hash of the mapped fields, and a :class:`BookingStatus`. A
    record is written only after the action that produced it succeeded.
changekey
    Exchange's version stamp of an item (``t:ItemId ChangeKey``). It changes on every save, including
    saves that change nothing xesync maps (a room's auto-accept, a category), so change is detected
    with the changekey **and** the content hash: a changekey bump with the same hash plans nothing.
sync state
    The opaque string EWS ``SyncFolderItems`` returns to resume from. It is stored in the same
    transaction as the room's records, and only after a complete pass (ews.md §1.7).
room key
    A room mailbox's primary SMTP address as configured (``rooms[].email``). Compared without regard
    to ASCII case, because SMTP addresses are.

Every datetime here is timezone-aware and normalised to UTC on construction; a naive datetime is a
``ValueError``. The store writes them as ISO-8601 UTC text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xesync.meetings import ConferenceRequest


IN_DOUBT = ""
"""A live booking's ``content_hash`` while a TMS write to it is in flight, or after one whose answer
was lost (a crash, a timeout): TMS holds either what the booking says or what was sent, so the next
pass saves the meeting as it then is, whatever the copy's hash says."""


def as_utc(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC; raise ``ValueError`` naming ``name`` if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}"
        raise ValueError(msg)
    return value.astimezone(UTC)


def _normalise(obj: object, *names: str) -> None:
    # Frozen dataclasses cannot assign in __post_init__ without object.__setattr__; this is the one
    # place that does it, so that every stored datetime compares and serialises as UTC.
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, as_utc(value, name))


class BookingStatus(StrEnum):
    """Where a record stands with TMS and with the room's calendar."""

    PENDING = "pending"  # decided, not yet saved in TMS (or the save's outcome is not yet known)
    BOOKED = "booked"  # saved in TMS and accepted in the room
    DEFECTIVE = "defective"  # saved in TMS as Defective (best-effort mode): booked, but needs attention
    DECLINED = "declined"  # not bookable (product.md §2 limits, unknown organiser); declined in the room
    CANCELLED = "cancelled"  # the meeting was cancelled and its booking deleted in TMS
    FAILED = "failed"  # the last attempt failed; ``last_error`` says why, the next run retries


class RoomResponse(StrEnum):
    """What xesync last wrote to a room's copy of a meeting (independent of where TMS stands)."""

    NONE = "none"  # nothing written yet (or the write failed; ``last_error`` says why)
    ACCEPTED = "accepted"  # accepted as the room, dial-in block written
    DECLINED = "declined"  # declined as the room, with the reason


class TmsState(StrEnum):
    """Where a booking stands in Cisco TMS."""

    PENDING = "pending"  # decided, not (yet) known to be saved
    SAVED = "saved"  # TMS holds the conference
    DEFECTIVE = "defective"  # saved as Defective (best-effort mode): booked, no route or a conflict
    REJECTED = "rejected"  # refused, by TMS or by the pre-flight checks; ``last_error`` says why
    DELETED = "deleted"  # deleted in TMS, or never booked because the meeting was cancelled


class LicenceVerdict(StrEnum):
    """What a Cisco Meeting Server check found about the licence a meeting's call ran on."""

    # spec: cms-api.md §3.4; the rules that pick one are xesync.licence.decide.
    PMP_CONFIRMED = "pmp_confirmed"  # the organiser owns the space; their personal licence carries the call
    PMP_LIKELY = "pmp_likely"  # owner and licence right, but their licence carries several calls at once
    SMP_NO_OWNER = "smp_no_owner"  # the space had no owner when the call started (TMS passed none)
    SMP_OWNER_UNLICENSED = "smp_owner_unlicensed"  # the organiser owns it, but has no PMP+ licence
    OWNER_MISMATCH = "owner_mismatch"  # the space is owned by someone else (e.g. a stale pool owner)
    CALL_NOT_FOUND = "call_not_found"  # no call for the meeting in its time window
    UNVERIFIABLE = "unverifiable"  # CMS could not be asked; checked again later


class AuditOutcome(StrEnum):
    """How a decision in the audit trail ended."""

    APPLIED = "applied"  # the action was carried out
    PLANNED = "planned"  # dry run: decided and recorded, nothing written to TMS or Exchange
    SKIPPED = "skipped"  # deliberately nothing to do; ``reason`` says why
    REFUSED = "refused"  # a safety guard refused the action
    FAILED = "failed"  # the action was attempted and failed


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRecord:
    """What was last synced for one meeting or occurrence in one room (see *record* above).

    :param room: the room key.
    :param uid: the meeting's Exchange UID.
    :param occurrence: the recurrence id (UTC), or ``None`` for a single meeting or series master.
    :param conference_id: the TMS ``ConferenceId``, ``None`` until TMS has saved the booking.
    :param version: the TMS conference ``Version`` last saved or seen.
    :param item_id: the room copy's Exchange item id.
    :param change_key: the room copy's changekey when it was last synced.
    :param content_hash: a hash of the mapped fields, so that a changekey-only bump plans nothing.
    :param status: where the booking stands.
    :param organiser: the organiser's e-mail address.
    :param owner: the TMS username the booking is owned by (the organiser's, or ``None`` if unresolved).
    :param start: the meeting's start (UTC).
    :param end: the meeting's end (UTC).
    :param subject: the subject as booked in TMS.
    :param last_error: why the last attempt failed, if it did.
    :param updated_at: when this record was written.
    :param response: what xesync last wrote to the room's copy.
    :param dial_in_hash: a hash of the dial-in block last written into the room copy's body.
    :param recheck_at: when to read the item again although Exchange reports no change (a retry
        after a transient failure, a meeting waiting to enter the booking window, a rolling series).
    """

    room: str
    uid: str
    occurrence: datetime | None = None
    conference_id: int | None = None
    version: int | None = None
    item_id: str | None = None
    change_key: str | None = None
    content_hash: str
    status: BookingStatus
    organiser: str
    owner: str | None = None
    start: datetime
    end: datetime
    subject: str
    last_error: str | None = None
    updated_at: datetime
    response: RoomResponse = RoomResponse.NONE
    dial_in_hash: str | None = None
    recheck_at: datetime | None = None

    def __post_init__(self) -> None:
        # Room keys are SMTP addresses: one spelling in memory, whatever the config or EWS wrote.
        object.__setattr__(self, "room", self.room.lower())
        _normalise(self, "occurrence", "start", "end", "updated_at", "recheck_at")

    @property
    def key(self) -> tuple[str, str, datetime | None]:
        """The record's identity: ``(room, uid, occurrence)``."""
        return (self.room, self.uid, self.occurrence)


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """The one TMS conference made for a meeting (see *booking* above), whichever rooms it books.

    Keyed ``(uid, occurrence)``: ``occurrence`` is ``None`` for a single meeting and for a whole
    series (one recurrent conference); the per-room :class:`SyncRecord` rows point at it by UID.

    :param uid: the meeting's UID.
    :param occurrence: ``None``, or the recurrence id of an occurrence booked on its own.
    :param external_key: the TMS ``ExternalPrimaryKey``.
    :param conference_id: the TMS ``ConferenceId`` last seen (TMS may renumber: never an identity).
    :param version: the TMS ``Version`` last seen, sent with the next update.
    :param owner: the TMS user name asked for as owner, ``None`` for the service user.
    :param organiser: the organiser's address.
    :param rooms: the room keys TMS has as participants, in configuration order.
    :param subject: the title as sent to TMS.
    :param start: the (first occurrence's) start.
    :param end: the (first occurrence's) end.
    :param content_hash: a hash of what was sent to TMS but ids, version, exceptions and a rolling
        series' window (see :mod:`xesync.reconcile`); :data:`IN_DOUBT` while a write's answer is
        not stored.
    :param request: the :class:`~xesync.meetings.ConferenceRequest` last sent, so that a room
        leaving or joining can be saved without the other rooms' items at hand.
    :param state: where the booking stands in TMS.
    :param info_text: ``ConferenceInfoText`` (the dial-in details) as TMS last returned it.
    :param info_html: ``ConferenceInfoHtml`` as TMS last returned it.
    :param notified_hash: a hash of what the organiser was last told (details or a refusal), so
        that they are told once, and again only when it changes.
    :param predicted_licence: the licence the call is expected to use, predicted at booking from the
        directory and CMS (``pmp`` or ``smp``), ``None`` when it could not be predicted.
    :param predicted_reason: why, in a sentence fit for ``xesync explain``.
    :param last_error: why TMS refused it, or why the last attempt failed.
    :param updated_at: when this row was written.
    """

    uid: str
    occurrence: datetime | None = None
    external_key: str
    conference_id: int | None = None
    version: int | None = None
    owner: str | None = None
    organiser: str
    rooms: tuple[str, ...] = ()
    subject: str
    start: datetime
    end: datetime
    content_hash: str
    request: ConferenceRequest | None = None
    state: TmsState
    info_text: str = ""
    info_html: str = ""
    notified_hash: str | None = None
    last_error: str | None = None
    updated_at: datetime
    predicted_licence: str | None = None
    predicted_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rooms", tuple(r.lower() for r in self.rooms))
        _normalise(self, "occurrence", "start", "end", "updated_at")

    @property
    def key(self) -> tuple[str, datetime | None]:
        """The booking's identity: ``(uid, occurrence)``."""
        return (self.uid, self.occurrence)

    @property
    def live(self) -> bool:
        """Whether TMS holds the conference (saved, or saved as Defective)."""
        return self.state in (TmsState.SAVED, TmsState.DEFECTIVE)

    @property
    def in_doubt(self) -> bool:
        """Whether TMS may hold other than this row says: a save's answer was lost (a crash, a timeout)."""
        return self.state is TmsState.PENDING or (self.live and self.content_hash == IN_DOUBT)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomSyncState:
    """A room's EWS sync state, stored with its records in one transaction.

    :param room: the room key.
    :param sync_state: the opaque ``SyncFolderItems`` state, or ``None`` to force a full sync.
    :param updated_at: when it was stored.
    :param fuse_held: the UIDs whose cancellation the data-loss fuse refused in this room; they stay
        refused on later passes (whatever else the room books meanwhile) until ``--force-cancel``.
    """

    room: str
    sync_state: str | None
    updated_at: datetime
    fuse_held: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _normalise(self, "updated_at")


class CheckStage(StrEnum):
    """When in a sitting's life a licence check ran (see :mod:`xesync.licence_service`)."""

    BEFORE_START = "before_start"  # ``cms.check_lead`` before the start: find the space early (fix-up)
    AT_START = "at_start"  # a minute after the start: the verdict
    RETRY = "retry"  # again after an ``unverifiable`` verdict, while the sitting runs
    MANUAL = "manual"  # ``xesync verify --meeting``
    MISSED = "missed"  # the sitting ended before any check could run (xesync was not running)


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenceCheck:
    """One Cisco Meeting Server check of the licence a meeting's call ran on.

    One per check of a *sitting*: a single meeting, or one occurrence of a series.

    :param room: the meeting's first room key (``rooms[0]``).
    :param uid: the meeting's Exchange UID.
    :param occurrence: the recurrence id (UTC) of the sitting, or ``None`` for a single meeting.
    :param conference_id: the TMS ``ConferenceId`` the call belongs to.
    :param call_id: the CMS ``/calls/<id>`` the check looked at, if a call was found.
    :param cospace_id: the CMS ``/coSpaces/<id>`` the call ran in, if known.
    :param owner_jid: the space's owner as found (``ownerJid``, else ``ownerAdGuid``), if any.
    :param verdict: what the check found.
    :param reason: a short, loggable explanation of the verdict.
    :param checked_at: when the check ran.
    :param organiser: the meeting organiser's address.
    :param rooms: every room key the booking holds.
    :param subject: the title as booked in TMS.
    :param start: the sitting's start (UTC), if known.
    :param end: the sitting's end (UTC), if known.
    :param stage: when in the sitting's life the check ran.
    :param fixup_in_time: whether xesync's owner fix-up landed before the call started (``None``:
        no fix-up, or the call's start is unknown).
    :param matched_by: how the space was recognised (``uri``, ``call_id``, ``title``), if it was.
    :param calls_on_licence: the organiser's personal-licence calls at the check, if read.
    """

    room: str
    uid: str
    occurrence: datetime | None = None
    conference_id: int | None = None
    call_id: str | None = None
    cospace_id: str | None = None
    owner_jid: str | None = None
    verdict: LicenceVerdict
    reason: str
    checked_at: datetime
    organiser: str = ""
    rooms: tuple[str, ...] = ()
    subject: str = ""
    start: datetime | None = None
    end: datetime | None = None
    stage: CheckStage = CheckStage.AT_START
    fixup_in_time: bool | None = None
    matched_by: str | None = None
    calls_on_licence: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rooms", tuple(r.lower() for r in self.rooms))
        _normalise(self, "occurrence", "checked_at", "start", "end")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One decision in the audit trail: what was decided, why, when, and how it ended.

    :param at: when the decision was made.
    :param run_id: the sync run that made it (the ``run_id`` bound in the logs).
    :param room: the room key, or ``None`` for a decision about no single room.
    :param uid: the meeting's UID, or ``None`` for a room-level decision (e.g. a mass-cancel guard).
    :param occurrence: the recurrence id (UTC), or ``None``.
    :param action: what was decided, in the planner's vocabulary (``create_booking``, ``decline_meeting``).
    :param outcome: how it ended.
    :param reason: why, in a few words fit for ``xesync explain``.
    :param details: further JSON-serialisable facts (conference id, TMS fault code, old/new start).
    """

    at: datetime
    run_id: str
    room: str | None = None
    uid: str | None = None
    occurrence: datetime | None = None
    action: str
    outcome: AuditOutcome
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _normalise(self, "at", "occurrence")
