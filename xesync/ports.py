"""The ports the engine depends on: where meetings come from and where bookings go.

The engine (:mod:`xesync.engine`) and the planner never import a vendor library; they talk to these
protocols. Adapters in :mod:`xesync.adapters` implement them (``ExchangeCalendarSource`` over
exchangelib, ``TmsBookingSink`` over SOAP), in-memory fakes implement them for the tests, and a later
Microsoft Graph source implements :class:`CalendarSource` again. The directory port lives in
:mod:`xesync.directory`.

Every method raises only :mod:`xesync.errors` types: adapters translate vendor errors at their edge,
once. :class:`~xesync.errors.TransientError` means "ask again later" (the engine leaves the room's
sync state where it was, so the change comes again); :class:`~xesync.errors.PermanentError` means
"this item cannot succeed as it is" (the engine records the decision and moves on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from xesync.cms_facts import CmsCall, CmsSpace, CmsUser, LicensingSnapshot, MeetingOnCms
from xesync.directory import NotInDirectory, Person
from xesync.meetings import ConferenceRequest, ItemRef, Mail, RoomChanges, RoomItem, SavedConference
from xesync.model import Booking


class CalendarSource(Protocol):
    """Room mailbox calendars: read what changed, write the outcome back (EWS, later Graph)."""

    def changes(
        self,
        room: str,
        sync_state: str | None,
        *,
        window: tuple[datetime, datetime],
        known: Mapping[str, str] | None = None,
    ) -> RoomChanges:
        """Everything that changed in ``room``'s calendar since ``sync_state``.

        Series masters come with their occurrences inside ``window`` expanded (a calendar view
        bounded by the lookahead). The returned state may be stored only after the changes are
        applied (ews.md §1.7).

        :param room: the room key.
        :param sync_state: the state stored after the last complete pass, ``None`` for a full sync.
        :param window: ``(now, now + sync.lookahead)``: which occurrences to expand.
        :param known: item id → the changekey the caller stored for it (after reading it, or after
            its own write). An update that still carries that changekey is the caller's own write
            echoed back, and is left out without reading the item. Not applied on a full sync.
        :returns: the changed and deleted items and the new state. When the given state is invalid
            or expired (``ErrorInvalidSyncStateData``), the source starts over by itself and says so
            with ``full=True``.
        :raises xesync.errors.ExchangeAccessError: the room mailbox cannot be opened.
        :raises xesync.errors.ServiceUnavailableError: Exchange cannot be asked now.
        """
        ...

    def item(self, room: str, item_id: str, *, window: tuple[datetime, datetime]) -> RoomItem | None:
        """Read one item again (after a write conflict, or for ``xesync explain``); ``None`` if gone.

        :raises xesync.errors.ServiceUnavailableError: Exchange cannot be asked now.
        """
        ...

    def set_body(self, ref: ItemRef, body: str, *, html: bool) -> ItemRef:
        """Replace the room item's body (``UpdateItem`` ``SetItemField item:Body``, ``SendToNone``).

        :returns: the reference with the new changekey.
        :raises xesync.errors.ExchangeItemError: the item is gone or the changekey is refused.
        :raises xesync.errors.ServiceUnavailableError: Exchange cannot be asked now.
        """
        ...

    def accept(self, ref: ItemRef, message: str = "") -> None:
        """Accept the meeting as the room (``CreateItem`` ``AcceptItem``, ``SendOnly``).

        :raises xesync.errors.ExchangeItemError: the item is gone or the changekey is refused.
        :raises xesync.errors.ServiceUnavailableError: Exchange cannot be asked now.
        """
        ...

    def decline(self, ref: ItemRef, message: str) -> None:
        """Decline the meeting as the room with ``message`` as the reason (``DeclineItem``, ``SendOnly``).

        :raises xesync.errors.ExchangeItemError: the item is gone or the changekey is refused.
        :raises xesync.errors.ServiceUnavailableError: Exchange cannot be asked now.
        """
        ...

    def send_mail(self, mail: Mail) -> None:
        """Send ``mail`` as the room, without a copy in Sent Items (``CreateItem`` ``SendOnly``).

        :raises xesync.errors.ExchangeAccessError: the room may not send.
        :raises xesync.errors.ServiceUnavailableError: Exchange cannot be asked now.
        """
        ...

    def close(self) -> None:
        """Close every pooled connection."""
        ...


class BookingSink(Protocol):
    """Cisco TMS conferences, addressed by external key (tms-booking-api.md §7.1)."""

    def save(self, request: ConferenceRequest) -> SavedConference:
        """Create or update the conference (``SaveConferenceWithMode`` in the configured mode).

        TMS upserts by ``(ExternalSourceId, ExternalPrimaryKey)``, so saving again after a crash
        finds the conference saved before instead of booking a second one.

        :raises xesync.errors.TmsConflictError: a room is already booked (``Strict`` mode).
        :raises xesync.errors.TmsOwnerError: the owner is not a TMS user and cannot be made one.
        :raises xesync.errors.TmsLimitError: the booking breaks a TMS limit.
        :raises xesync.errors.TmsStaleVersionError: ``request.version`` is out of date.
        :raises xesync.errors.TmsFaultError: any other fault, with its code.
        :raises xesync.errors.ServiceUnavailableError: TMS cannot be asked now.
        """
        ...

    def find(self, external_key: str) -> SavedConference | None:
        """The conference with this external key (``GetConferenceByExternalId``), ``None`` if there is none.

        :raises xesync.errors.ServiceUnavailableError: TMS cannot be asked now.
        """
        ...

    def save_occurrence(
        self, external_key: str, recurrence_id: datetime, start: datetime, end: datetime
    ) -> SavedConference:
        """Move one occurrence of a series (``GetConferenceInstanceByExternalId``, then
        ``SaveConferenceRecInstanceWithMode`` with that occurrence's id and ``Version``).

        :raises xesync.errors.TmsConflictError: the new time conflicts.
        :raises xesync.errors.TmsNotFoundError: there is no such occurrence.
        :raises xesync.errors.ServiceUnavailableError: TMS cannot be asked now.
        """
        ...

    def delete(self, external_key: str) -> bool:
        """Delete the conference, a whole series included (``DeleteConferenceByExternalId``).

        :returns: whether there was one to delete (a missing one is not an error: the goal is met).
        :raises xesync.errors.TmsLimitError: it is in the past or running and cannot be deleted.
        :raises xesync.errors.ServiceUnavailableError: TMS cannot be asked now.
        """
        ...

    def delete_occurrence(self, external_key: str, recurrence_id: datetime) -> bool:
        """Delete one occurrence of a series (``DeleteConferenceInstanceByExternalId``).

        :returns: whether there was one to delete.
        :raises xesync.errors.ServiceUnavailableError: TMS cannot be asked now.
        """
        ...

    def close(self) -> None:
        """Close the HTTP session."""
        ...


class SystemCatalogue(Protocol):
    """Which TMS systems exist and may be booked (remote setup ``GetSystems``), for checks and lint."""

    def system_ids(self) -> Sequence[int]:
        """Every bookable system id.

        :raises xesync.errors.ServiceUnavailableError: TMS cannot be asked now.
        """
        ...


class CallMonitor(Protocol):
    """Cisco Meeting Server: proves a meeting's licence (cms-api.md §3.4) and, opt-in, fixes its owner.

    Facts only: the rules that turn them into a prediction or a verdict are :mod:`xesync.licence`.
    Configuration objects come from the cluster's shared database; calls and licence counters are
    summed over every Call Bridge. A method that cannot reach every bridge it needs raises
    :class:`~xesync.errors.ServiceUnavailableError`, which makes the verdict ``unverifiable``.
    """

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """The CMS user with this JID (tried first) or e-mail, with its effective ``hasLicense``.

        :param jid: the organiser's JID (``Person.jid``).
        :param email: the organiser's e-mail address (``GET /users?emailFilter=``, CMS 2.1+).
        :returns: the user, or ``None`` when CMS has none (not imported by its LDAP sync).
        :raises xesync.errors.CmsHttpError: CMS refused the request (credentials, a bad parameter).
        :raises xesync.errors.ServiceUnavailableError: CMS cannot be asked now.
        """
        ...

    def user(self, user_id: str) -> CmsUser | None:
        """The CMS user ``/users/<id>`` (e.g. a space's ``ownerId``) with its effective licence, or ``None``.

        :raises xesync.errors.ServiceUnavailableError: CMS cannot be asked now.
        """
        ...

    def find_meeting(
        self, *, info_text: str | None, title: str | None, start: datetime | None = None
    ) -> MeetingOnCms:
        """The space TMS uses for a meeting and its active call.

        :param info_text: the TMS conference's ``ConferenceInfoText`` (dial-in URI, numeric id).
        :param title: the title as booked in TMS (TMS renames its pool space to it at start).
        :param start: the meeting's start, to choose among several running spaces with that title.
        :returns: what was found; an empty :class:`~xesync.cms_facts.MeetingOnCms` when nothing matched.
        :raises xesync.errors.ServiceUnavailableError: CMS cannot be asked now.
        """
        ...

    def space(self, space_id: str) -> CmsSpace | None:
        """The space with its owner (``GET /coSpaces/<id>``), or ``None`` if it is gone.

        :raises xesync.errors.ServiceUnavailableError: CMS cannot be asked now.
        """
        ...

    def active_call(self, space_id: str) -> CmsCall | None:
        """The active call in a known space, or ``None`` (``GET /calls?coSpaceFilter=<id>`` on every bridge).

        :raises xesync.errors.ServiceUnavailableError: a Call Bridge cannot be asked now.
        """
        ...

    def set_owner(self, space_id: str, jid: str) -> CmsSpace:
        """Make ``jid`` the space's owner (``PUT /coSpaces/<id> ownerJid=…``); the space as read back.

        :raises xesync.errors.CmsHttpError: CMS refused (no user has ``jid``, the space is gone).
        :raises xesync.errors.ServiceUnavailableError: CMS cannot be asked now.
        """
        ...

    def clear_owner(self, space_id: str, *, only_if: str | None = None) -> bool:
        """Unset the space's ``ownerJid`` (``PUT /coSpaces/<id> ownerJid=``), only while ``only_if`` owns it.

        :returns: whether it was cleared; another owner is left alone.
        :raises xesync.errors.CmsHttpError: CMS refused.
        :raises xesync.errors.ServiceUnavailableError: CMS cannot be asked now.
        """
        ...

    def licensing(self) -> LicensingSnapshot:
        """``/system/multipartyLicensing`` and ``activePersonalLicenses``, summed over the Call Bridges.

        :raises xesync.errors.ServiceUnavailableError: a Call Bridge cannot be asked now.
        """
        ...

    def close(self) -> None:
        """Close every HTTP session."""
        ...


@dataclass(frozen=True, slots=True)
class LicencePrediction:
    """The licence a booking's call is expected to use, predicted when it is booked.

    :ivar licence: ``"pmp"`` or ``"smp"``; ``None`` when it could not be told (CMS not asked).
    :ivar reason: why, in a sentence fit for ``xesync explain``.
    :ivar note: a line for the organiser's confirmation (what to ask IT for), ``""`` for none.
    """

    licence: str | None
    reason: str
    note: str = ""


class LicencePreflight(Protocol):
    """Predicts, at booking time, which licence a booking's call will use (issue: licence proof)."""

    def predict(self, booking: Booking, organiser: Person | NotInDirectory | None) -> LicencePrediction:
        """Predict from the directory and CMS; never raises (an unreachable CMS gives ``licence=None``).

        :param booking: the booking just saved in TMS.
        :param organiser: the directory's answer for the organiser, ``None`` without a directory.
        """
        ...
