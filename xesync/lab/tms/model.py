"""The TMS simulator's records: users, systems, bookings and their occurrences, transactions.

Terminology:

- *booking*: what one save creates, addressed by its ``ConferenceId`` and, when given, by
  ``(ExternalSourceId, ExternalPrimaryKey)``. A single meeting's booking has one occurrence with the
  same id; a series' booking has its own id and one occurrence per instance, each with its own
  ``ConferenceId`` (as TMS gives each instance an id, §8.4) and its ``RecurrenceIdUTC``.
- *occurrence*: one sitting of a booking; its state (Pending → Ongoing → Finished) follows the lab clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xesync.lab.tms.recurrence import Pattern
from xesync.lab.tms.timezones import TimeZoneRule

TMS_CALL_TYPES = ("TMS", "TMS Master Participant")

# Conference fields kept as text and echoed in §8.1 order, with the defaults TMS fills in (§8.1:
# "minOccurs=1 fields silently take a default when omitted"; those values are [unconfirmed]).
ENUM_DEFAULTS: dict[str, str] = {
    "ConferenceType": "One Button To Push",
    "Bandwidth": "Default",
    "PictureMode": "Default",
    "Encrypted": "Default",
    "DataConference": "Default",
    "ShowExtendOption": "Default",
}
TEXT_FIELDS = (
    "BillingCode",
    "EmailTo",
    "ConfBundleId",
    "ConfOwnerId",
    "UserMessageText",
    "DetachedFromExternalSourceId",
    "DetachedFromExternalPrimaryKey",
    "ConferenceLanguage",
    "Location",
    "Invitees",
    "SecretCode",
    "MeetingSource",
    "PrivacyFlag",
    "JoinUri",
    "JoinUrl",
)


@dataclass(slots=True)
class TmsUser:
    """A TMS user (``User`` in remote setup, §8.8)."""

    user_id: int
    username: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    hidden: bool = False
    ad_guid: str | None = None
    auto_created: bool = False

    @property
    def display_name(self) -> str:
        """First and last name, else the user name."""
        return f"{self.first_name} {self.last_name}".strip() or self.username

    @property
    def short_name(self) -> str:
        """The user name without its NetBIOS domain."""
        return self.username.split("\\", 1)[-1]

    def as_dict(self) -> dict[str, Any]:
        """For the control API."""
        return {
            "user_id": self.user_id,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "ad_guid": self.ad_guid,
            "auto_created": self.auto_created,
        }


@dataclass(slots=True)
class TmsSystem:
    """A bookable TMS system (a room endpoint), ``TMSSystem`` in remote setup."""

    system_id: int
    name: str
    allow_bookings: bool = True
    sip_uri: str = ""
    system_type: str = "Cisco TelePresence Room"
    # Remote setup's TMSSystem strings (§8.8). NetworkAddress is the codec's host name or IP address,
    # as TMS stores it, never its SIP URI; an unset string is sent empty.
    network_address: str = ""
    web_interface_url: str = ""
    contact: str = ""
    description: str = ""
    isdn_number: str = ""
    h323_id: str = ""
    e164_alias: str = ""

    def as_dict(self) -> dict[str, Any]:
        """For the control API."""
        return {
            "system_id": self.system_id,
            "name": self.name,
            "allow_bookings": self.allow_bookings,
            "sip_uri": self.sip_uri,
            "network_address": self.network_address,
        }


@dataclass(slots=True)
class Participant:
    """A ``Participant`` (§8.2)."""

    participant_id: int
    call_type: str = "TMS"
    name_or_number: str | None = None
    email: str | None = None

    @property
    def is_system(self) -> bool:
        """Whether this participant is a TMS system (a room)."""
        return self.call_type in TMS_CALL_TYPES


@dataclass(slots=True)
class Occurrence:
    """One sitting of a booking."""

    conference_id: int
    start: datetime
    end: datetime
    recurrence_id: datetime | None = None
    title: str | None = None
    modified: bool = False
    deleted: bool = False
    ended_at: datetime | None = None
    # What the CMS driver did for it: pool index, space and call ids, "started"/"ended".
    cms: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_end(self) -> datetime:
        """The end, or when it was ended early."""
        return self.ended_at if self.ended_at is not None else self.end


@dataclass(slots=True)
class Booking:
    """What one save creates; see the module docstring."""

    booking_id: int
    title: str
    owner_id: int
    created_by: int
    numeric_id: int
    password: str
    version: int
    transaction_id: int = 0
    enums: dict[str, str] = field(default_factory=lambda: dict(ENUM_DEFAULTS))
    texts: dict[str, str] = field(default_factory=dict)
    isdn_restrict: bool = False
    external_source_id: str | None = None
    external_primary_key: str | None = None
    participants: list[Participant] = field(default_factory=list)
    pattern: Pattern | None = None
    time_zone_rules: list[TimeZoneRule] = field(default_factory=list)
    occurrences: list[Occurrence] = field(default_factory=list)
    defective: bool = False
    deleted: bool = False

    @property
    def recurrent(self) -> bool:
        """Whether this booking is a series."""
        return self.pattern is not None

    def systems(self) -> list[int]:
        """The TMS system ids among the participants."""
        return [p.participant_id for p in self.participants if p.is_system]

    def live(self) -> list[Occurrence]:
        """The occurrences not deleted."""
        return [o for o in self.occurrences if not o.deleted]

    def status(self, occ: Occurrence, now: datetime) -> str:
        """``ConferenceState/Status`` of an occurrence on the lab clock."""
        if self.deleted or occ.deleted:
            return "Deleted"
        if occ.ended_at is not None:
            return "Finished"
        if self.defective:
            return "Defective"
        if now < occ.start:
            return "Pending"
        if now < occ.end:
            return "Ongoing"
        return "Finished"


@dataclass(slots=True, frozen=True)
class Transaction:
    """One ``Transaction`` (§8.7)."""

    transaction_id: int
    conference_id: int
    kind: str
    performed_by: int
    participant_ids: str
    external_source_id: str | None = None
    external_primary_key: str | None = None


@dataclass(slots=True)
class ConferenceInput:
    """The fields of a ``Conference`` element in a save request, ``None`` where absent."""

    conference_id: int = 0
    title: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    recurrence_instance_id: datetime | None = None
    pattern: Pattern | None = None
    owner_id: int | None = None
    owner_username: str | None = None
    owner_first_name: str | None = None
    owner_last_name: str | None = None
    owner_email: str | None = None
    enums: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    password: str | None = None
    isdn_restrict: bool | None = None
    external_source_id: str | None = None
    external_primary_key: str | None = None
    participants: list[Participant] | None = None
    version: int | None = None
    time_zone_rules: list[TimeZoneRule] | None = None
