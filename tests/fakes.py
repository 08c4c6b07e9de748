"""In-memory fakes of the engine's ports: a calendar source, a booking sink and a directory.

They behave like the real systems where the engine can tell: Exchange's own writes (accept, body)
bump the changekey and show up in the next sync as updates; a decline removes the room's copy; TMS
upserts by external key, bumps ``Version`` on every save, refuses a stale one and refuses overlapping
bookings of one system in strict mode. Each fake counts its calls so tests can assert "no I/O".
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from xesync.directory import NotInDirectory, Person
from xesync.errors import (
    ExchangeItemError,
    ServiceUnavailableError,
    TmsConflictError,
    TmsNotFoundError,
    TmsStaleVersionError,
)
from xesync.meetings import (
    ConferenceRequest,
    Frequency,
    ItemRef,
    Mail,
    OccurrenceChange,
    Response,
    RoomChanges,
    RoomItem,
    SavedConference,
)


class FakeCalendarSource:
    """Room calendars in memory, with a change log per room standing in for SyncFolderItems."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, RoomItem]] = {}
        self.log: dict[str, list[tuple[str, str]]] = {}  # room -> [(kind, item_id)]
        self.outbox: list[Mail] = []
        self.responses: list[tuple[str, str, str, str]] = []  # (room, uid, response, message)
        self.calls: Counter[str] = Counter()
        self.down = False
        self._keys = itertools.count(1)

    # -- what the organiser (Exchange) does -------------------------------------------------------

    def put(self, item: RoomItem) -> RoomItem:
        """Create or update the room's copy; it gets a fresh changekey."""
        room = item.room
        item = dataclasses.replace(item, change_key=f"ck{next(self._keys)}")
        self.items.setdefault(room, {})[item.item_id] = item
        self.log.setdefault(room, []).append(("upsert", item.item_id))
        return item

    def remove(self, room: str, item_id: str) -> None:
        """Delete the room's copy."""
        if self.items.get(room, {}).pop(item_id, None) is not None:
            self.log.setdefault(room, []).append(("delete", item_id))

    def copy(self, room: str, uid: str) -> RoomItem | None:
        """The room's copy of the meeting ``uid``, if any."""
        return next((i for i in self.items.get(room, {}).values() if i.uid == uid), None)

    # -- the port -----------------------------------------------------------------------------------

    def changes(
        self,
        room: str,
        sync_state: str | None,
        *,
        window: tuple[datetime, datetime],  # noqa: ARG002 - the fake's items come expanded
        known: Mapping[str, str] | None = None,
    ) -> RoomChanges:
        self.calls["changes"] += 1
        if self.down:
            raise ServiceUnavailableError("ews", "fake outage")
        log = self.log.get(room, [])
        full = sync_state is None or not sync_state.isdigit() or int(sync_state) > len(log)
        current = self.items.get(room, {})
        if full:
            return RoomChanges(items=tuple(current.values()), deleted=(), sync_state=str(len(log)), full=True)
        since = log[int(sync_state) :]
        known = known or {}
        # An update still carrying the changekey the caller stored is its own write echoed back.
        changed = {
            i for k, i in since if k == "upsert" and i in current and known.get(i) != current[i].change_key
        }
        deleted = tuple(dict.fromkeys(i for k, i in since if k == "delete" and i not in current))
        return RoomChanges(
            items=tuple(current[i] for i in dict.fromkeys(changed)),
            deleted=deleted,
            sync_state=str(len(log)),
            full=False,
        )

    def item(
        self,
        room: str,
        item_id: str,
        *,
        window: tuple[datetime, datetime],  # noqa: ARG002 - the fake's items come expanded
    ) -> RoomItem | None:
        self.calls["item"] += 1
        if self.down:
            raise ServiceUnavailableError("ews", "fake outage")
        return self.items.get(room, {}).get(item_id)

    def _current(self, ref: ItemRef) -> RoomItem:
        item = self.items.get(ref.room, {}).get(ref.item_id)
        if item is None:
            raise ExchangeItemError(ref.room, ref.item_id, "ErrorItemNotFound")
        return item

    def set_body(self, ref: ItemRef, body: str, *, html: bool) -> ItemRef:
        self.calls["set_body"] += 1
        item = self.put(dataclasses.replace(self._current(ref), body=body, body_is_html=html))
        return ItemRef(ref.room, ref.item_id, item.change_key)

    def _fresh(self, ref: ItemRef) -> RoomItem:
        # Accept and decline need the current changekey (ews.md §1.10); the body write auto-resolves.
        item = self._current(ref)
        if item.change_key != ref.change_key:
            raise ExchangeItemError(ref.room, ref.item_id, "ErrorIrresolvableConflict")
        return item

    def accept(self, ref: ItemRef, message: str = "") -> None:
        self.calls["accept"] += 1
        item = self.put(dataclasses.replace(self._fresh(ref), response=Response.ACCEPT))
        self.responses.append((ref.room, item.uid, "accept", message))

    def decline(self, ref: ItemRef, message: str) -> None:
        self.calls["decline"] += 1
        item = self._fresh(ref)
        self.responses.append((ref.room, item.uid, "decline", message))
        self.remove(ref.room, ref.item_id)  # ews.md §1.10: a decline removes the room's copy

    def send_mail(self, mail: Mail) -> None:
        self.calls["send_mail"] += 1
        self.outbox.append(mail)

    def close(self) -> None:
        self.calls["close"] += 1

    @property
    def writes(self) -> int:
        """How many writes reached Exchange."""
        return sum(self.calls[k] for k in ("set_body", "accept", "decline", "send_mail"))


@dataclasses.dataclass
class FakeConference:
    """One conference the fake TMS holds."""

    saved: SavedConference
    request: ConferenceRequest
    deleted_occurrences: set[datetime] = dataclasses.field(default_factory=set)
    moved: dict[datetime, tuple[datetime, datetime]] = dataclasses.field(default_factory=dict)


class FakeBookingSink:
    """TMS in memory: conferences by external key, versions, strict conflicts, owners by user name."""

    def __init__(self, *, service_user: str = "LAB\\svc-tms", strict: bool = True) -> None:
        self.conferences: dict[str, FakeConference] = {}
        self.calls: Counter[str] = Counter()
        self.service_user = service_user
        self.strict = strict
        self.down = False
        self.busy: set[int] = set()  # system ids another booking holds all the time
        self.info_override: dict[str, str] = {}  # external key -> ConferenceInfoText TMS gives
        self._ids = itertools.count(1001)
        self._versions = itertools.count(1)

    def _check(self) -> None:
        if self.down:
            raise ServiceUnavailableError("tms", "fake outage")

    def save(self, request: ConferenceRequest) -> SavedConference:
        self.calls["save"] += 1
        self._check()
        existing = self.conferences.get(request.external_key)
        if existing is not None and request.version is not None and request.version != existing.saved.version:
            raise TmsStaleVersionError(
                "STALE", "The conference was changed by someone else", "SaveConferenceWithMode"
            )
        clash = set(request.system_ids) & self.busy
        if clash and self.strict:
            raise TmsConflictError("SYSTEM_ALREADY_BOOKED", f"system {min(clash)} is already booked", "Save")
        candidate = FakeConference(saved=None, request=request)  # type: ignore[arg-type]
        self._refuse_overlap(request.external_key, set(request.system_ids), _slots(candidate))
        cid = existing.saved.conference_id if existing else next(self._ids)
        owner = request.owner.username if request.owner and request.owner.username else self.service_user
        saved = SavedConference(
            conference_id=cid, version=next(self._versions), external_key=request.external_key,
            title=request.title, start=request.start, end=request.end, owner_username=owner,
            system_ids=request.system_ids, status="Pending",
            info_text=self.info_override.get(request.external_key, f"Join by video: {cid}@video.lab.example"),
            info_html="",
        )  # fmt: skip
        self.conferences[request.external_key] = FakeConference(saved=saved, request=request)
        return saved

    def _refuse_overlap(
        self, key: str, systems: set[int], slots: list[tuple[datetime, datetime, datetime]]
    ) -> None:
        """Strict mode: a system booked by another conference in an overlapping slot refuses the save."""
        if not self.strict:
            return
        for other_key, other in self.conferences.items():
            if other_key == key or not systems & set(other.request.system_ids):
                continue
            for _, start, end in _slots(other):
                if any(start < e and s < end for _, s, e in slots):
                    raise TmsConflictError("SYSTEM_ALREADY_BOOKED", f"booked by {other_key}", "Save")

    def find(self, external_key: str) -> SavedConference | None:
        self.calls["find"] += 1
        self._check()
        found = self.conferences.get(external_key)
        return None if found is None else found.saved

    def save_occurrence(
        self, external_key: str, recurrence_id: datetime, start: datetime, end: datetime
    ) -> SavedConference:
        self.calls["save_occurrence"] += 1
        self._check()
        found = self.conferences.get(external_key)
        if found is None or recurrence_id not in {rid for rid, _, _ in _slots(found)}:
            raise TmsNotFoundError(
                "MEETINGNOTFOUND", "no such occurrence", "SaveConferenceRecInstanceWithMode"
            )
        self._refuse_overlap(external_key, set(found.request.system_ids), [(recurrence_id, start, end)])
        found.moved[recurrence_id] = (start, end)
        found.saved = dataclasses.replace(found.saved, version=next(self._versions))
        return dataclasses.replace(found.saved, start=start, end=end)

    def delete(self, external_key: str) -> bool:
        self.calls["delete"] += 1
        self._check()
        return self.conferences.pop(external_key, None) is not None

    def delete_occurrence(self, external_key: str, recurrence_id: datetime) -> bool:
        self.calls["delete_occurrence"] += 1
        self._check()
        found = self.conferences.get(external_key)
        if found is None or recurrence_id not in {rid for rid, _, _ in _slots(found)}:
            return False
        found.deleted_occurrences.add(recurrence_id)
        return True

    def close(self) -> None:
        self.calls["close"] += 1

    @property
    def writes(self) -> int:
        """How many writes reached TMS."""
        return sum(self.calls[k] for k in ("save", "save_occurrence", "delete", "delete_occurrence"))

    def effective_exceptions(self, external_key: str) -> dict[datetime, tuple[datetime, datetime] | None]:
        """The series' exceptions TMS holds: from the last whole save, then occurrence-level calls."""
        found = self.conferences[external_key]
        out: dict[datetime, tuple[datetime, datetime] | None] = {
            e.recurrence_id: _slot(e) for e in found.request.exceptions
        }
        out.update(found.moved)
        out.update(dict.fromkeys(found.deleted_occurrences))
        return out


def _slots(conference: FakeConference) -> list[tuple[datetime, datetime, datetime]]:
    """Every occurrence the conference holds: (recurrence id, start, end), exceptions applied."""
    request = conference.request
    duration = request.end - request.start
    rec = request.recurrence
    if rec is None:
        return [(request.start, request.start, request.end)]
    count = request.occurrence_limit or rec.count or 100
    step = {
        Frequency.DAILY: timedelta(days=rec.interval),
        Frequency.WEEKLY: timedelta(weeks=rec.interval),
    }.get(rec.frequency, timedelta(weeks=4 * rec.interval))  # monthly: near enough for a fake
    starts = [request.start + i * step for i in range(count)]
    if rec.end_date is not None:
        starts = [s for s in starts if s.date() <= rec.end_date]
    changes = {e.recurrence_id: e for e in request.exceptions}
    out = []
    for rid in starts:
        change = changes.get(rid)
        if rid in conference.deleted_occurrences or (change is not None and change.cancelled):
            continue
        if rid in conference.moved:
            out.append((rid, *conference.moved[rid]))
        elif change is not None and change.start is not None and change.end is not None:
            out.append((rid, change.start, change.end))
        else:
            out.append((rid, rid, rid + duration))
    return out


def _slot(change: OccurrenceChange) -> tuple[datetime, datetime] | None:
    return None if change.start is None or change.end is None else (change.start, change.end)


class FakeDirectory:
    """A directory of people by address; anything else is not in the directory."""

    def __init__(self, *people: Person) -> None:
        self.people = {a: p for p in people for a in p.addresses}
        self.calls = 0
        self.down = False

    def resolve(self, address: str) -> Person | NotInDirectory:
        self.calls += 1
        if self.down:
            from xesync.errors import LdapUnavailableError  # noqa: PLC0415

            raise LdapUnavailableError("ldap://fake", "fake outage")
        return self.people.get(address.lower(), NotInDirectory(address))

    def close(self) -> None:
        pass


def person(username: str, *, domain: str = "lab.example", pmp: bool = True) -> Person:
    """A directory person ``username@domain`` with TMS name ``LAB\\username``."""
    email = f"{username}@{domain}"
    return Person(
        dn=f"uid={username},ou=people,dc=lab,dc=example", username=username, tms_username=f"LAB\\{username}",
        display_name=username.title(), first_name=username.title(), last_name="Example", email=email,
        addresses=frozenset({email}), jid=email, guid=None, pmp=pmp,
    )  # fmt: skip
