"""What xesync reads from Cisco Meeting Server about a meeting's call: users, spaces, calls, licence counters.

These are the values of the :class:`~xesync.ports.CallMonitor` port (as :mod:`xesync.meetings` holds
those of the booking ports): plain frozen data, filled by :mod:`xesync.adapters.cms` and judged by the
pure rules in :mod:`xesync.licence`. :func:`dial_in` also lives here, because recognising a meeting's
space starts from the addresses TMS put in ``ConferenceInfoText``.

Terminology
-----------

CMS user
    A user CMS imported by its LDAP sync: ``/users/<id>`` with ``userJid`` and the *effective*
    userProfile (user → tenant → ``/system/profiles``, cms-api.md §3.2) and that profile's
    ``hasLicense`` (:class:`CmsUser`).
space
    A coSpace (``/coSpaces/<id>``); for a TMS meeting, TMS's renamed pool space. Its owner is
    ``ownerJid`` / ``ownerAdGuid``, with ``ownerId`` derived by CMS (:class:`CmsSpace`).
call
    An active ``/calls/<id>`` instantiating a space, with the time it started on the bridge's clock
    (:class:`CmsCall`).
personal-licence calls
    How many calls CMS counts against a user's personal licence now (``callsActive``, weighted
    across Call Bridges), from :class:`LicensingSnapshot`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from xesync.model import as_utc


class SpaceMatch(StrEnum):
    """How the meeting's space was recognised (cms-api.md §4.3 "Find the space")."""

    URI = "uri"  # a dial-in URI in ConferenceInfoText equals the space's uri/secondaryUri
    CALL_ID = "call_id"  # a numeric id in ConferenceInfoText equals the space's callId
    TITLE = "title"  # the space TMS renamed to the meeting title at start


# ---------------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True, kw_only=True)
class CmsUser:
    """A CMS user with its effective licence.

    :ivar id: ``/users/<id>``.
    :ivar jid: ``userJid``.
    :ivar name: ``name``, if CMS shows one.
    :ivar email: ``email``, if CMS shows one.
    :ivar user_profile: the effective userProfile id, ``None`` when no level sets one.
    :ivar profile_from: where it came from: ``user`` (the LDAP source's), ``tenant``, ``system`` or ``none``.
    :ivar has_license: that profile's ``hasLicense`` (``False`` without a profile).
    """

    id: str
    jid: str
    name: str | None = None
    email: str | None = None
    user_profile: str | None = None
    profile_from: str = "none"
    has_license: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CmsSpace:
    """A coSpace as ``GET /coSpaces/<id>`` shows it (the owner is read from the object, never a list).

    :ivar id: the coSpace id.
    :ivar name: ``name`` (TMS's pool name, or the meeting title while the meeting runs).
    :ivar uri: ``uri``, the URI user part.
    :ivar secondary_uri: ``secondaryUri``.
    :ivar call_id: ``callId`` (numeric).
    :ivar owner_jid: ``ownerJid`` (CMS shows it for an ``ownerAdGuid`` owner too).
    :ivar owner_id: ``ownerId``, the owner's ``/users/<id>`` (derived by CMS).
    :ivar owner_ad_guid: ``ownerAdGuid`` (2.1+).
    """

    id: str
    name: str | None = None
    uri: str | None = None
    secondary_uri: str | None = None
    call_id: str | None = None
    owner_jid: str | None = None
    owner_id: str | None = None
    owner_ad_guid: str | None = None

    @property
    def owner(self) -> str | None:
        """The owner as found: ``ownerJid``, else ``ownerAdGuid``, else ``None``."""
        return self.owner_jid or self.owner_ad_guid or None


@dataclass(frozen=True, slots=True, kw_only=True)
class CmsCall:
    """An active call.

    :ivar id: ``/calls/<id>``.
    :ivar cospace_id: ``coSpace``.
    :ivar name: ``name`` (copied from the space at start).
    :ivar correlator: ``callCorrelator`` (the same on every Call Bridge a distributed call spans).
    :ivar owner_name: ``ownerName`` (2.2+): a hint, not proof (cms-api.md §3.4 step 3).
    :ivar started_at: the bridge's ``cdrTime`` minus the call's ``durationSeconds``, or ``None``.
    :ivar bridge: the API base URL of the Call Bridge that reported it.
    """

    id: str
    cospace_id: str | None = None
    name: str | None = None
    correlator: str | None = None
    owner_name: str | None = None
    started_at: datetime | None = None
    bridge: str = ""

    def __post_init__(self) -> None:
        if self.started_at is not None:
            object.__setattr__(self, "started_at", as_utc(self.started_at, "started_at"))


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingOnCms:
    """What was found on CMS for one meeting: its space (if recognised) and the space's active call.

    :ivar space: the space, or ``None`` when nothing matched.
    :ivar call: the active call in it, or ``None``.
    :ivar matched_by: how the space was recognised.
    :ivar candidates: how many spaces matched that way (more than one only for a title match).
    """

    space: CmsSpace | None = None
    call: CmsCall | None = None
    matched_by: SpaceMatch | None = None
    candidates: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonalLicenceUse:
    """One ``<user>`` of ``activePersonalLicenses``, summed over the Call Bridges.

    spec: cms-api.md §2.9 and §6.1: the attribute naming the user is [unconfirmed] (``id`` is likely,
    ``jid`` possible), so either may be set.

    :ivar user_id: the ``id`` attribute, if present.
    :ivar user_jid: the ``jid`` attribute, if present.
    :ivar calls_active: ``callsActive`` summed (a distributed call counts once per bridge).
    :ivar weighted_calls_active: ``weightedCallsActive`` summed: distinct calls in the cluster.
    """

    user_id: str | None = None
    user_jid: str | None = None
    calls_active: int
    weighted_calls_active: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LicensingSnapshot:
    """``/system/multipartyLicensing`` and its ``activePersonalLicenses``, summed over the Call Bridges.

    :ivar personal_licenses: ``personalLicenses`` (users holding PMP+), from the first bridge.
    :ivar calls_active: active calls (weighted sum where the bridges give weights).
    :ivar calls_without_personal_licence: calls on SMP+ (weighted sum where given).
    :ivar active: one entry per user whose personal licence is in use.
    :ivar bridges: how many Call Bridges answered.
    """

    personal_licenses: int | None = None
    calls_active: float = 0
    calls_without_personal_licence: float = 0
    active: tuple[PersonalLicenceUse, ...] = ()
    bridges: int = 1

    def calls_on_licence(self, *, user_id: str | None, jid: str | None) -> int:
        """How many calls in the cluster count against this user's personal licence now."""
        total = 0.0
        for use in self.active:
            by_id = user_id is not None and use.user_id == user_id
            by_jid = (
                jid is not None and use.user_jid is not None and use.user_jid.casefold() == jid.casefold()
            )
            if by_id or by_jid:
                weighted = use.weighted_calls_active
                total += weighted if weighted is not None else use.calls_active
        return round(total)


# ---------------------------------------------------------------------------------- dial-in


@dataclass(frozen=True, slots=True)
class DialIn:
    """Addresses in TMS's ``ConferenceInfoText`` that may identify the CMS space.

    :ivar uris: user parts of URIs (``990001`` of ``sip:990001@video.example``), lower case.
    :ivar call_ids: numeric ids (numeric URI user parts, ``Numeric ID:``/``Call ID:``/``Meeting ID:``).
    """

    uris: tuple[str, ...] = ()
    call_ids: tuple[str, ...] = ()


_URI = re.compile(r"(?:sips?:)?([A-Za-z0-9._%+\-]+)@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# "Conference ID" is TMS's own id, never a CMS callId; the labels below name the dial-in number.
_LABELLED_ID = re.compile(r"(?i)\b(?:numeric|call|meeting)[ \t]*id[ \t]*[:=]?[ \t]*(\d{3,19})\b")


def dial_in(info_text: str | None) -> DialIn:
    """The dial-in URIs and numeric ids in ``ConferenceInfoText``.

    spec: tms-booking-api.md §8.1: the text's layout is TMS's and not specified; the labels looked
    for here are [unconfirmed], so every URI in the text is a candidate and only an exact match on a
    space's ``uri``/``secondaryUri``/``callId`` counts.
    """
    if not info_text:
        return DialIn()
    uris: list[str] = []
    call_ids: list[str] = []
    for match in _URI.finditer(info_text):
        user = match.group(1).lower()
        if user not in uris:
            uris.append(user)
        if user.isdigit() and user not in call_ids:
            call_ids.append(user)
    for match in _LABELLED_ID.finditer(info_text):
        if match.group(1) not in call_ids:
            call_ids.append(match.group(1))
    return DialIn(uris=tuple(uris), call_ids=tuple(call_ids))
