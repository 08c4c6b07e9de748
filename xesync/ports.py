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

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from xesync.meetings import ConferenceRequest, ItemRef, Mail, RoomChanges, RoomItem, SavedConference


class CalendarSource(Protocol):
    """Room mailbox calendars: read what changed, write the outcome back (EWS, later Graph)."""

    def changes(self, room: str, sync_state: str | None, *, window: tuple[datetime, datetime]) -> RoomChanges:
        """Everything that changed in ``room``'s calendar since ``sync_state``.

        Series masters come with their occurrences inside ``window`` expanded (a calendar view
        bounded by the lookahead). The returned state may be stored only after the changes are
        applied (ews.md §1.7).

        :param room: the room key.
        :param sync_state: the state stored after the last complete pass, ``None`` for a full sync.
        :param window: ``(now, now + sync.lookahead)``: which occurrences to expand.
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
