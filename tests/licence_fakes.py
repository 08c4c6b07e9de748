"""In-memory fakes for the licence service tests (test_licence_service.py, test_licence_checker.py): the
directory over a dict, CMS users, spaces, calls and licence use, and a booking by Alice."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from xesync.cms_facts import CmsCall, CmsSpace, CmsUser, LicensingSnapshot, MeetingOnCms, PersonalLicenceUse
from xesync.directory import NotInDirectory, Person
from xesync.errors import CmsHttpError, ServiceUnavailableError
from xesync.model import Booking, TmsState

T0 = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
ALICE = CmsUser(id="u-alice", jid="alice@lab.example", email="alice@lab.example", has_license=True,
                user_profile="p-pmp", profile_from="user")  # fmt: skip
CAROL = CmsUser(id="u-carol", jid="carol@lab.example", email="carol@lab.example", has_license=False,
                profile_from="system")  # fmt: skip


def person(name: str, *, pmp: bool) -> Person:
    """A lab user as the directory resolves them."""
    return Person(
        dn=f"uid={name},ou=people,dc=lab,dc=example", username=name, tms_username=f"LAB\\{name}",
        display_name=name, first_name=None, last_name=None, email=f"{name}@lab.example",
        addresses=frozenset({f"{name}@lab.example"}), jid=f"{name}@lab.example", guid=None, pmp=pmp,
        pmp_group="cn=cms-pmp" if pmp else None,
    )  # fmt: skip


class FakeDirectory:
    """The directory port over a dict."""

    def __init__(self, *people: Person) -> None:
        self.people = {p.email: p for p in people}

    def resolve(self, address: str) -> Person | NotInDirectory:
        """The person with this address, else NotInDirectory."""
        return self.people.get(address.lower(), NotInDirectory(address))


@dataclass
class FakeCallMonitor:
    """The CallMonitor port in memory: users, spaces and their calls, licence use; ``down`` fails all."""

    users: dict[str, CmsUser] = field(default_factory=lambda: {"alice": ALICE, "carol": CAROL})
    spaces: dict[str, CmsSpace] = field(default_factory=dict)
    calls: dict[str, CmsCall] = field(default_factory=dict)  # space id -> active call
    reevaluate: bool = False
    licensed: dict[str, int] = field(default_factory=dict)  # user id -> personal-licence calls
    down: bool = False
    refuse_owner: bool = False
    writes: list[tuple[str, str, str]] = field(default_factory=list)

    def _up(self) -> None:
        if self.down:
            raise ServiceUnavailableError("cms", "HTTP 503")

    def run(self, space: CmsSpace, title: str, started: datetime) -> None:
        """TMS opens a pool space for a meeting and starts its call; the licence is chosen now."""
        self.spaces[space.id] = replace(space, name=title)
        self.calls[space.id] = CmsCall(
            id=f"call-{space.id}", cospace_id=space.id, name=title, started_at=started
        )
        owner = self._owner_user(self.spaces[space.id])
        if owner is not None and owner.has_license:
            self.licensed[owner.id] = self.licensed.get(owner.id, 0) + 1

    def end(self, space_id: str) -> None:
        """TMS ends the call and resets the space's name (not its owner)."""
        self.calls.pop(space_id, None)
        self.spaces[space_id] = replace(self.spaces[space_id], name="TMS_Scheduled_Meeting_1")
        self.licensed.clear()

    def _owner_user(self, space: CmsSpace) -> CmsUser | None:
        return next((u for u in self.users.values() if u.jid == space.owner_jid), None)

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """By JID, else by e-mail."""
        self._up()
        return next((u for u in self.users.values() if jid and u.jid == jid), None) or next(
            (u for u in self.users.values() if email and u.email == email), None
        )

    def user(self, user_id: str) -> CmsUser | None:
        """By id."""
        self._up()
        return next((u for u in self.users.values() if u.id == user_id), None)

    def find_meeting(
        self, *, info_text: str | None, title: str | None, start: datetime | None = None
    ) -> MeetingOnCms:
        """The space named after the title, with its call."""
        self._up()
        del info_text, start
        for space in self.spaces.values():
            if space.name == title:
                return MeetingOnCms(space=space, call=self.calls.get(space.id), candidates=1)
        return MeetingOnCms()

    def space(self, space_id: str) -> CmsSpace | None:
        """By id."""
        self._up()
        return self.spaces.get(space_id)

    def active_call(self, space_id: str) -> CmsCall | None:
        """The space's call."""
        self._up()
        return self.calls.get(space_id)

    def set_owner(self, space_id: str, jid: str) -> CmsSpace:
        """Set ownerJid (and ownerId); re-assign the licence only when CMS re-evaluates."""
        self._up()
        if self.refuse_owner:
            raise CmsHttpError(400, "userDoesNotExist", f"/coSpaces/{space_id}")
        user = next(u for u in self.users.values() if u.jid == jid)
        self.spaces[space_id] = replace(self.spaces[space_id], owner_jid=jid, owner_id=user.id)
        self.writes.append(("set", space_id, jid))
        if self.reevaluate and space_id in self.calls and user.has_license:
            self.licensed[user.id] = self.licensed.get(user.id, 0) + 1
        return self.spaces[space_id]

    def clear_owner(self, space_id: str, *, only_if: str | None = None) -> bool:
        """Clear ownerJid only while ``only_if`` owns the space."""
        self._up()
        space = self.spaces[space_id]
        if space.owner_jid is None or (only_if is not None and space.owner_jid != only_if):
            return False
        self.spaces[space_id] = replace(space, owner_jid=None, owner_id=None)
        self.writes.append(("clear", space_id, only_if or ""))
        return True

    def licensing(self) -> LicensingSnapshot:
        """The personal-licence calls per user."""
        self._up()
        return LicensingSnapshot(
            calls_active=len(self.calls),
            calls_without_personal_licence=len(self.calls) - sum(self.licensed.values()),
            active=tuple(
                PersonalLicenceUse(user_id=k, calls_active=v) for k, v in self.licensed.items() if v
            ),
        )

    def close(self) -> None:
        """Nothing to close."""


def make_booking(uid: str = "UID-1", **changes: object) -> Booking:
    """A live single meeting from T0 for an hour, by Alice in Oslo."""
    base: dict[str, object] = {
        "uid": uid, "external_key": f"key-{uid}", "conference_id": 4711, "version": 1, "owner": "LAB\\alice",
        "organiser": "alice@lab.example", "rooms": ("room-oslo@lab.example",), "subject": "Weekly",
        "start": T0, "end": T0 + timedelta(hours=1), "content_hash": "h", "state": TmsState.SAVED,
        "info_text": "Dial in: 990001@video.lab.example", "updated_at": T0 - timedelta(days=1),
        "predicted_licence": "pmp",
    }  # fmt: skip
    base.update(changes)
    return Booking(**base)  # type: ignore[arg-type]
