"""The EWS simulator's mailbox store: mailboxes, folders, items, change keys and change events.

Terminology:

- *item id*: an opaque base64 string, stable for an item's whole life (moves keep it, as EWS ids of
  one mailbox store do on the same server).
- *changekey*: derived from the item's ``version``, which rises on every change; an occurrence shares
  its master's changekey (``ews.md`` §2.8.4).
- *occurrence id*: a deterministic id naming (master id, original start), so any occurrence a
  CalendarView hands out can be fetched, updated or deleted later.
- *event*: every change is published to the notification hub (pull and streaming subscriptions).

One lock guards the whole store; the simulator's operations run under it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from xesync.lab.ews.recurrence import Recurrence

DISTINGUISHED = ("root", "calendar", "inbox", "sentitems", "deleteditems", "drafts")
FOLDER_CLASS = {
    "root": None,
    "calendar": "IPF.Appointment",
    "inbox": "IPF.Note",
    "sentitems": "IPF.Note",
    "deleteditems": "IPF.Note",
    "drafts": "IPF.Note",
}
FOLDER_NAME = {
    "root": "Top of Information Store",
    "calendar": "Calendar",
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "drafts": "Drafts",
}

# AppointmentState bits (MS-OXOCAL PidLidAppointmentStateFlags): Meeting=1, Received=2, Canceled=4.
STATE_MEETING = 1
STATE_RECEIVED = 2
STATE_CANCELED = 4


@dataclass(slots=True)
class Person:
    """A mailbox as EWS names it."""

    email: str
    name: str = ""
    routing_type: str = "SMTP"
    mailbox_type: str = "Mailbox"


@dataclass(slots=True)
class Attendee:
    """An attendee and its response as the organiser's copy tracks it."""

    person: Person
    response: str = "Unknown"
    last_response: datetime | None = None


@dataclass(slots=True)
class Override:
    """A modified occurrence (an Exception) of a series, keyed by its original start.

    ``my_response`` is an attendee's own answer to this instance alone; ``responses`` is what the
    organiser's copy tracks per attendee (casefolded address) for this instance (``ews.md`` §3.5).
    """

    start: datetime
    end: datetime
    subject: str | None = None
    location: str | None = None
    body: tuple[str, str] | None = None
    my_response: str | None = None
    responses: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Item:
    """One stored item: a calendar item, a message, or a meeting message."""

    id: str
    mailbox: str
    folder: str  # distinguished name of the folder it lives in
    element: str = (
        "CalendarItem"  # CalendarItem | Message | MeetingRequest | MeetingResponse | MeetingCancellation
    )
    item_class: str = "IPM.Appointment"
    version: int = 1
    subject: str = ""
    body: str = ""
    body_type: str = "Text"
    sensitivity: str = "Normal"
    importance: str = "Normal"
    categories: list[str] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    is_read: bool = True
    reminder_is_set: bool = False
    reminder_minutes: int = 15
    extended: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # calendar
    uid: str = ""
    start: datetime | None = None
    end: datetime | None = None
    start_tz: str = "UTC"
    end_tz: str = "UTC"
    is_all_day: bool = False
    free_busy: str = "Busy"
    location: str = ""
    is_meeting: bool = False
    is_cancelled: bool = False
    meeting_request_was_sent: bool = False
    is_response_requested: bool = True
    my_response: str = "Organizer"
    organizer: Person | None = None
    required: list[Attendee] = field(default_factory=list)
    optional: list[Attendee] = field(default_factory=list)
    resources: list[Attendee] = field(default_factory=list)
    sequence: int = 0
    appointment_state: int = 0
    reply_time: datetime | None = None
    recurrence: Recurrence | None = None
    overrides: dict[datetime, Override] = field(default_factory=dict)
    deleted_occurrences: set[datetime] = field(default_factory=set)
    # messages
    sender: Person | None = None
    to: list[Person] = field(default_factory=list)
    cc: list[Person] = field(default_factory=list)
    associated_item_id: str | None = None
    response_type: str | None = None
    meeting_request_type: str | None = None
    has_been_processed: bool = False

    @property
    def changekey(self) -> str:
        """The current changekey: rises with every change."""
        raw = hashlib.sha1(f"{self.id}:{self.version}".encode(), usedforsecurity=False).digest()[:12]
        return "DwAAABYAAAA" + base64.b64encode(self.version.to_bytes(4, "big") + raw).decode()

    @property
    def is_master(self) -> bool:
        """A recurring master."""
        return self.element == "CalendarItem" and self.recurrence is not None

    def attendees(self) -> list[Attendee]:
        """Required, optional and resources, in that order."""
        return [*self.required, *self.optional, *self.resources]


@dataclass(slots=True)
class Mailbox:
    """A user or room mailbox."""

    email: str
    name: str
    kind: str  # user | room
    folder_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """What the notification hub hears about."""

    event: str  # CreatedEvent | ModifiedEvent | DeletedEvent | MovedEvent | NewMailEvent
    mailbox: str
    folder: str
    item_id: str
    changekey: str
    old_folder: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def folder_id(email: str, distinguished: str) -> str:
    """A deterministic folder id, so a saved sync state names the same folder after a restart."""
    digest = hashlib.sha256(f"{email.casefold()}/{distinguished}".encode()).digest()[:30]
    return "AQMkA" + base64.b64encode(digest).decode()


def occurrence_id(master_id: str, original_start: datetime) -> str:
    """A deterministic id for one occurrence of a series."""
    raw = f"occ|{master_id}|{int(original_start.timestamp())}".encode()
    return "AAMkOcc" + base64.b64encode(raw).decode()


def parse_occurrence_id(value: str) -> tuple[str, datetime] | None:
    """``(master id, original start)`` of an occurrence id, or ``None``."""
    if not value.startswith("AAMkOcc"):
        return None
    try:
        raw = base64.b64decode(value[7:], validate=True).decode()
        tag, master, stamp = raw.split("|")
        if tag != "occ":
            return None
        return master, datetime.fromtimestamp(int(stamp), UTC)
    except (ValueError, UnicodeDecodeError):
        return None


class Store:
    """All mailboxes and items, with change publication.

    :param now: the lab clock's ``now``.
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.lock = threading.RLock()
        self.now = now
        self.mailboxes: dict[str, Mailbox] = {}
        self.items: dict[str, Item] = {}
        self.contents: dict[tuple[str, str], dict[str, Item]] = {}  # (mailbox, folder) -> items
        self.folder_index: dict[str, tuple[str, str]] = {}  # folder id -> (mailbox, distinguished)
        self.listeners: list[Callable[[Change], None]] = []
        self.outbox: list[dict[str, Any]] = []
        self._seq = itertools.count(1)

    # ------------------------------------------------------------------------------- mailboxes

    def add_mailbox(self, email: str, name: str, kind: str) -> Mailbox:
        """Create a mailbox with the distinguished folders."""
        key = email.casefold()
        box = Mailbox(email=email, name=name, kind=kind)
        for dist in DISTINGUISHED:
            fid = folder_id(email, dist)
            box.folder_ids[dist] = fid
            self.folder_index[fid] = (key, dist)
        self.mailboxes[key] = box
        return box

    def mailbox(self, email: str | None) -> Mailbox | None:
        """A mailbox by address (case-insensitive)."""
        if not email:
            return None
        return self.mailboxes.get(email.casefold())

    def person(self, email: str) -> Person:
        """A :class:`Person` for an address, named from its mailbox when known."""
        box = self.mailbox(email)
        if box is None:
            return Person(email=email, name=email, mailbox_type="OneOff")
        return Person(email=box.email, name=box.name)

    def items_in(self, mailbox: str, folder: str) -> list[Item]:
        """Items of one folder, oldest first."""
        return list(self.contents.get((mailbox.casefold(), folder), {}).values())

    def by_uid(self, mailbox: str, uid: str) -> Item | None:
        """The calendar item with ``uid`` in a mailbox's calendar."""
        for item in self.contents.get((mailbox.casefold(), "calendar"), {}).values():
            if item.uid == uid:
                return item
        return None

    # ------------------------------------------------------------------------------- items

    def new_id(self) -> str:
        """A fresh opaque item id."""
        return "AAMkAD" + base64.b64encode(next(self._seq).to_bytes(4, "big") + os.urandom(20)).decode()

    def add(self, item: Item) -> Item:
        """Store a new item and publish its creation."""
        now = self.now()
        item.created = now
        item.modified = now
        self.items[item.id] = item
        self.contents.setdefault((item.mailbox, item.folder), {})[item.id] = item
        event = "NewMailEvent" if item.folder == "inbox" and item.element != "CalendarItem" else None
        self._publish("CreatedEvent", item)
        if event:
            self._publish(event, item)
        return item

    def touch(self, item: Item) -> None:
        """Record a change to ``item``: new changekey, new modified time, a ModifiedEvent."""
        item.version += 1
        item.modified = self.now()
        self._publish("ModifiedEvent", item)

    def move(self, item: Item, folder: str) -> None:
        """Move an item to another folder of its mailbox."""
        old = item.folder
        self.contents.get((item.mailbox, old), {}).pop(item.id, None)
        item.folder = folder
        self.contents.setdefault((item.mailbox, folder), {})[item.id] = item
        item.version += 1
        item.modified = self.now()
        self._publish("MovedEvent", item, old_folder=old)

    def delete(self, item: Item) -> None:
        """Remove an item for good."""
        self.items.pop(item.id, None)
        self.contents.get((item.mailbox, item.folder), {}).pop(item.id, None)
        self._publish("DeletedEvent", item)

    def _publish(self, event: str, item: Item, old_folder: str | None = None) -> None:
        change = Change(
            event=event,
            mailbox=item.mailbox,
            folder=item.folder,
            item_id=item.id,
            changekey=item.changekey,
            old_folder=old_folder,
            at=self.now(),
        )
        for listener in list(self.listeners):
            listener(change)

    def record_sent(self, **entry: Any) -> None:
        """Keep a sent message or meeting response where the lab control API can show it."""
        self.outbox.append({"at": self.now().isoformat(), **entry})
