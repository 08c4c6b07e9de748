"""What a request asks the EWS simulator to render: the item shape and its extended properties.

A :class:`Shape` is ``IdOnly`` plus ``AdditionalProperties`` (what exchangelib sends), or ``Default``
/ ``AllProperties`` (:data:`DEFAULT_FIELDS`); each requested ``t:ExtendedFieldURI`` is an
:class:`ExtendedRequest`. :mod:`xesync.lab.ews.parse` builds them from ``m:ItemShape``;
:mod:`xesync.lab.ews.render` renders items to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# PSETID_Meeting extended properties xesync may ask for (ews.md §1.6, §3.8).
MEETING_SET = "Meeting"
GOID_PROPS = {"3": "GlobalObjectId", "35": "CleanGlobalObjectId"}

DEFAULT_FIELDS = frozenset(
    {
        "item:ParentFolderId",
        "item:ItemClass",
        "item:Subject",
        "item:Sensitivity",
        "item:Body",
        "item:DateTimeCreated",
        "item:LastModifiedTime",
        "calendar:UID",
        "calendar:Start",
        "calendar:End",
        "calendar:IsAllDayEvent",
        "calendar:LegacyFreeBusyStatus",
        "calendar:Location",
        "calendar:IsMeeting",
        "calendar:IsCancelled",
        "calendar:IsRecurring",
        "calendar:CalendarItemType",
        "calendar:MyResponseType",
        "calendar:Organizer",
        "calendar:RequiredAttendees",
        "calendar:OptionalAttendees",
        "calendar:Resources",
        "message:Sender",
        "message:ToRecipients",
        "message:IsRead",
    }
)


@dataclass(frozen=True, slots=True)
class ExtendedRequest:
    """One requested ``t:ExtendedFieldURI``."""

    set_id: str | None
    prop_tag: str | None
    prop_id: str | None
    prop_name: str | None
    prop_type: str

    def key(self) -> tuple[str, str, str]:
        """The store's key for this property."""
        ident = self.prop_id or self.prop_name or self.prop_tag or ""
        return (self.set_id or "", ident, self.prop_type)


@dataclass(slots=True)
class Shape:
    """What to render: field URIs (``None`` = the default set) and extended properties."""

    fields: frozenset[str] | None = None
    extended: list[ExtendedRequest] = field(default_factory=list)
    id_only: bool = True

    def wants(self, uri: str) -> bool:
        """Whether ``uri`` was asked for."""
        if self.fields is not None and uri in self.fields:
            return True
        return not self.id_only and self.fields is None and uri in DEFAULT_FIELDS
