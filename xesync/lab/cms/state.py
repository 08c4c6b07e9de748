"""The CMS simulator's database: configuration objects, LDAP users, live calls and their history.

One :class:`CmsState` per simulator, guarded by one re-entrant lock (HTTP requests arrive on several
threads, and an LDAP sync applies its result from a worker thread). Configuration objects (profiles,
tenants, LDAP objects, bulk parameter sets, coSpaces) are :class:`Obj` records holding the text CMS
would return; users, calls, call legs and participants are typed records.
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xesync.lab.clock import LabClock
from xesync.lab.cms.knobs import CmsKnobs
from xesync.lab.cms.schema import GENERIC_KINDS


def new_id() -> str:
    """A CMS object id (a GUID)."""
    return str(uuid.uuid4())


def new_secret() -> str:
    """A guest-access secret like CMS's (22 URL-safe characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


@dataclass(slots=True, kw_only=True)
class Obj:
    """A configuration object: wire ``values`` plus the simulator's own ``meta``."""

    id: str
    values: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class User:
    """A CMS user, created only by an LDAP sync (cms-api.md §2.3)."""

    id: str
    jid: str
    name: str
    email: str
    authentication_id: str
    cdr_tag: str
    tenant: str | None
    user_profile: str | None
    guid: str
    dn: str
    source: str


@dataclass(slots=True, kw_only=True)
class Grant:
    """Which licence a call holds: ``pmp`` with the licensed user, or ``smp``; and by which rule."""

    kind: str
    reason: str  # member | owner | none
    user_id: str | None = None
    user_jid: str | None = None
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """For the control API."""
        return {
            "licence": self.kind,
            "reason": self.reason,
            "user_id": self.user_id,
            "user_jid": self.user_jid,
            "at": self.at.isoformat(),
        }


@dataclass(slots=True, kw_only=True)
class Participant:
    """A participant of a call: a SIP endpoint (no ``user_jid``) or a logged-in CMS user."""

    id: str
    call: str
    name: str
    uri: str
    user_jid: str | None
    joined: datetime
    legs: list[str] = field(default_factory=list)
    activator: bool = False


@dataclass(slots=True, kw_only=True)
class CallLeg:
    """One media leg of a participant."""

    id: str
    call: str
    participant: str
    remote_party: str
    name: str
    direction: str
    started: datetime
    values: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Call:
    """A call: a live instance of a coSpace (or a space-less call), with its licence history."""

    id: str
    name: str
    cospace: str | None
    correlator: str
    tenant: str | None
    started: datetime
    grant: Grant
    values: dict[str, str] = field(default_factory=dict)
    ended: datetime | None = None
    history: list[Grant] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    max_legs: int = 0
    recording: bool = False
    streaming: bool = False


class CmsState:
    """Everything the simulated Call Bridge knows."""

    def __init__(self, knobs: CmsKnobs, clock: LabClock) -> None:
        self.lock = threading.RLock()
        self.knobs = knobs
        self.clock = clock
        self.started = clock.now()
        self.objects: dict[str, dict[str, Obj]] = {name: {} for name in GENERIC_KINDS}
        self.spaces: dict[str, Obj] = {}
        self.members: dict[str, dict[str, Obj]] = {}
        self.users: dict[str, User] = {}
        self.system_profiles: dict[str, str] = {}
        self.calls: dict[str, Call] = {}
        self.ended_calls: list[Call] = []
        self.legs: dict[str, CallLeg] = {}
        self.participants: dict[str, Participant] = {}
        self.ldap_syncs: dict[str, Obj] = {}
        self.bulk_syncs: dict[str, Obj] = {}
        self.call_bridges: dict[str, Obj] = {}
        self.legs_completed = 0
        self.legs_max_active = 0
        self.last_ldap_sync: dict[str, Any] | None = None
        # The ldapSync worker of this state (set by xesync.lab.cms.syncs on first use).
        self.ldap_runner: Any = None
        # The fixture's mail domain (URIs in meetingEntryDetail default to video.<domain>).
        self.domain = "lab.example"

    def now(self) -> datetime:
        """The lab time."""
        return self.clock.now()

    # ------------------------------------------------------------------------------ lookups

    def exists(self, plural: str, obj_id: str) -> bool:
        """Whether ``obj_id`` names an object of collection ``plural`` (for references)."""
        low = plural.lower()
        if low == "cospaces":
            return obj_id in self.spaces
        if low == "users":
            return obj_id in self.users
        return obj_id in self.objects.get(low, {})

    def user_by_jid(self, jid: str) -> User | None:
        """A user by JID (case-insensitive, as JIDs are)."""
        key = jid.strip().casefold()
        return next((u for u in self.users.values() if u.jid.casefold() == key), None)

    def user_by_guid(self, guid: str) -> User | None:
        """A user by directory GUID (AD objectGUID, or entryUUID on OpenLDAP)."""
        key = guid.strip().lower()
        return next((u for u in self.users.values() if u.guid.lower() == key), None)

    def owner_of(self, space: Obj) -> User | None:
        """The user owning a space: ``ownerJid`` or ``ownerAdGuid`` resolved now (``ownerId`` is derived)."""
        jid = space.values.get("ownerJid")
        if jid:
            return self.user_by_jid(jid)
        guid = space.values.get("ownerAdGuid")
        if guid:
            return self.user_by_guid(guid)
        return None

    def effective_profile(self, user: User) -> str | None:
        """cms-api.md §3.2: the user's (LDAP source's) profile → tenant's → global → none."""
        if user.user_profile and user.user_profile in self.objects["userprofiles"]:
            return user.user_profile
        if user.tenant:
            tenant = self.objects["tenants"].get(user.tenant)
            profile = tenant.values.get("userProfile") if tenant else None
            if profile and profile in self.objects["userprofiles"]:
                return profile
        profile = self.system_profiles.get("userProfile")
        if profile and profile in self.objects["userprofiles"]:
            return profile
        return None

    def has_license(self, user: User | None) -> bool:
        """Whether the user holds PMP+: the effective profile has ``hasLicense=true``."""
        if user is None:
            return False
        profile = self.effective_profile(user)
        if profile is None:
            return False
        return self.objects["userprofiles"][profile].values.get("hasLicense") == "true"

    def is_member(self, space_id: str | None, user: User) -> bool:
        """Whether the user is a member (coSpaceUser) of the space."""
        if space_id is None:
            return False
        return any(
            m.values.get("userJid", "").casefold() == user.jid.casefold()
            for m in self.members.get(space_id, {}).values()
        )

    def call_of_space(self, space_id: str) -> Call | None:
        """The active call instantiating a space."""
        return next((c for c in self.calls.values() if c.cospace == space_id), None)

    def all_calls(self) -> Iterator[Call]:
        """Ended calls, then active ones (for usage snapshots)."""
        yield from self.ended_calls
        yield from self.calls.values()

    # ------------------------------------------------------------------------------ removal

    def remove_space(self, space_id: str) -> None:
        """Delete a space with its members (an active call keeps running without its space)."""
        self.spaces.pop(space_id, None)
        self.members.pop(space_id, None)

    def remove_user(self, user_id: str) -> None:
        """Delete a user, the personal spaces generated for it, and its memberships."""
        user = self.users.pop(user_id, None)
        if user is None:
            return
        for space_id in [s.id for s in self.spaces.values() if s.meta.get("ldap_user") == user_id]:
            self.remove_space(space_id)
        for members in self.members.values():
            for member_id in [
                m.id
                for m in members.values()
                if m.values.get("userJid", "").casefold() == user.jid.casefold()
            ]:
                members.pop(member_id)
