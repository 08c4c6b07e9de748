"""What an operation handler gets: the caller, the mailbox it acts as, and ways to resolve ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from xesync.lab.ews.calendar import Occurrence, occurrence_by_index, resolve_occurrence
from xesync.lab.ews.parse import ItemRef, RequestError, parse_item_ref
from xesync.lab.ews.store import DISTINGUISHED, Item, Store, parse_occurrence_id
from xesync.lab.ews.xml import Element, child, local, text_of

if TYPE_CHECKING:
    from xesync.lab.ews.meetings import Meetings
    from xesync.lab.ews.notify import Hub
    from xesync.lab.ews.settings import EwsSettings


class SoapFaultError(Exception):
    """Answer the whole request with an HTTP 500 SOAP fault (``ews.md`` §2.5)."""

    def __init__(self, code: str, message: str, values: list[tuple[str, str]] | None = None) -> None:
        self.code = code
        self.message = message
        self.values = values or []
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who authenticated: the service account, a user, or an OAuth app."""

    kind: str  # service | user | app
    name: str
    email: str | None = None  # a user's own mailbox
    impersonates: str = "none"  # rooms | users | all | none


@dataclass(slots=True)
class Context:
    """One request's view of the simulator."""

    store: Store
    meetings: Meetings
    hub: Hub
    settings: EwsSettings
    principal: Principal
    acting: str | None  # casefolded mailbox the request acts as (impersonated or own)
    operation: str
    now: Callable[[], datetime]
    flags: set[str] = field(default_factory=set)  # simulator-specific faults hitting this request

    def resolve_folder(self, el: Element) -> tuple[str, str]:
        """``(mailbox, distinguished id)`` of a ``t:DistinguishedFolderId`` or ``t:FolderId``.

        :raises RequestError: ``ErrorFolderNotFound``, ``ErrorNonExistentMailbox``, ``ErrorAccessDenied``.
        """
        kind = local(el)
        if kind == "DistinguishedFolderId":
            dist = el.get("Id", "")
            email = text_of(child(el, "Mailbox"), "EmailAddress") or self.acting
            if dist not in DISTINGUISHED:
                raise RequestError("ErrorFolderNotFound", f"The distinguished folder {dist!r} is not served.")
            if not email:
                raise RequestError("ErrorNonExistentMailbox", "No mailbox was named and the caller has none.")
            if self.store.mailbox(email) is None:
                raise RequestError("ErrorNonExistentMailbox", f"No mailbox with address {email}.")
            mailbox = email.casefold()
        elif kind == "FolderId":
            found = self.store.folder_index.get(el.get("Id", ""))
            if found is None:
                raise RequestError(
                    "ErrorFolderNotFound", "The specified folder could not be found in the store."
                )
            mailbox, dist = found
        else:
            raise RequestError("ErrorInvalidIdMalformed", f"Unexpected folder id element {kind!r}.")
        self.check_access(mailbox)
        return mailbox, dist

    def check_access(self, mailbox: str) -> None:
        """Only the acting mailbox is reachable (impersonation or one's own mailbox)."""
        if self.acting != mailbox:
            raise RequestError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def lookup(self, ref: ItemRef) -> Item | Occurrence:
        """The item or occurrence a reference names.

        :raises RequestError: ``ErrorItemNotFound``, ``ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange``,
            ``ErrorCalendarOccurrenceIsDeletedFromRecurrence``, ``ErrorAccessDenied``.
        """
        if ref.kind == "OccurrenceItemId":
            master = self.store.items.get(ref.id)
            if master is None or master.recurrence is None:
                raise RequestError("ErrorItemNotFound", "The specified object was not found in the store.")
            self.check_access(master.mailbox)
            occ = occurrence_by_index(master, ref.instance_index or 0)
            if occ is None:
                raise RequestError(
                    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                    "The occurrence index is out of the recurrence range.",
                )
            if occ.deleted:
                raise RequestError(
                    "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                    "The occurrence was deleted from the series.",
                )
            return occ
        if ref.kind == "RecurringMasterItemId":
            parsed = parse_occurrence_id(ref.id)
            master = self.store.items.get(parsed[0]) if parsed else None
            if master is None:
                raise RequestError("ErrorItemNotFound", "The specified object was not found in the store.")
            self.check_access(master.mailbox)
            return master
        if ref.id.startswith("AAMkOcc"):
            occ = resolve_occurrence(self.store, ref.id)
            if occ is None or occ.deleted:
                raise RequestError("ErrorItemNotFound", "The specified object was not found in the store.")
            self.check_access(occ.master.mailbox)
            return occ
        item = self.store.items.get(ref.id)
        if item is None:
            if not ref.id or len(ref.id) < 8:  # noqa: PLR2004
                raise RequestError("ErrorInvalidIdMalformed", "Id is malformed.")
            raise RequestError("ErrorItemNotFound", "The specified object was not found in the store.")
        self.check_access(item.mailbox)
        return item

    def lookup_el(self, el: Element) -> Item | Occurrence:
        """:meth:`lookup` for an id element."""
        return self.lookup(parse_item_ref(el))
