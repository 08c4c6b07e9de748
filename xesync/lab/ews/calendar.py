"""Calendars: occurrences of a series, calendar views, and the Outlook-style UID.

A series is one stored RecurringMaster; its occurrences are computed on demand (``ews.md`` §3.5). An
occurrence shares its master's changekey; a modified one (an Exception) carries an :class:`Override`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from xesync.lab.ews.recurrence import series_starts

__all__ = ["Occurrence", "calendar_view", "global_object_id", "new_uid", "occurrences", "series_starts"]
from xesync.lab.ews.store import Item, Override, Store, occurrence_id, parse_occurrence_id

GOID_CLASS = bytes.fromhex("040000008200E00074C5B7101A82E008")
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def new_uid(now: datetime) -> str:
    """An Outlook-style UID: the hex of a clean PidLidGlobalObjectId (``ews.md`` §3.8)."""
    filetime = int((now - FILETIME_EPOCH).total_seconds() * 10_000_000)
    data = os.urandom(16)
    goid = GOID_CLASS + b"\x00\x00\x00\x00" + struct.pack("<Q", filetime) + bytes(8)
    goid += struct.pack("<I", len(data)) + data
    return goid.hex().upper()


def global_object_id(uid: str) -> bytes:
    """The binary GlobalObjectId exchangelib's ``UID.to_global_object_id`` builds for a hex UID."""
    try:
        return bytes.fromhex(uid)
    except ValueError:
        # A non-Outlook UID: exchangelib's UID("<ical uid>") wraps it as vCal-Uid data.
        payload = b"vCal-Uid" + struct.pack("<I", 1) + uid.encode() + b"\x00"
        return GOID_CLASS + bytes(4) + bytes(8) + bytes(8) + struct.pack("<I", len(payload)) + payload


@dataclass(slots=True)
class Occurrence:
    """One instance of a series."""

    master: Item
    index: int  # 1-based position in the pattern (deleted instances keep their index)
    original_start: datetime
    start: datetime
    end: datetime
    override: Override | None
    deleted: bool

    @property
    def id(self) -> str:
        """The occurrence's own item id."""
        return occurrence_id(self.master.id, self.original_start)

    @property
    def type(self) -> str:
        """``Exception`` when modified, else ``Occurrence``."""
        return "Exception" if self.override is not None else "Occurrence"


def occurrences(master: Item, until: datetime | None = None) -> list[Occurrence]:
    """Every instance of a series (deleted ones flagged), in pattern order."""
    if master.recurrence is None or master.start is None or master.end is None:
        return []
    duration = master.end - master.start
    out = []
    for n, original in enumerate(series_starts(master.recurrence, master.start, master.start_tz, until), 1):
        override = master.overrides.get(original)
        start = override.start if override else original
        end = override.end if override else original + duration
        out.append(
            Occurrence(
                master=master,
                index=n,
                original_start=original,
                start=start,
                end=end,
                override=override,
                deleted=original in master.deleted_occurrences,
            )
        )
    return out


def live_occurrences(master: Item, until: datetime | None = None) -> list[Occurrence]:
    """The instances that still exist."""
    return [o for o in occurrences(master, until) if not o.deleted]


def overlaps(start: datetime, end: datetime, win_start: datetime, win_end: datetime) -> bool:
    """CalendarView's rule: an item ending exactly at the window start is included (``ews.md`` §1.5)."""
    return start < win_end and end >= win_start and not (start == end == win_end)


def calendar_view(store: Store, mailbox: str, start: datetime, end: datetime) -> list[Item | Occurrence]:
    """Singles and occurrences overlapping ``[start, end]``, sorted by start; never masters."""
    out: list[Item | Occurrence] = []
    for item in store.items_in(mailbox, "calendar"):
        if item.element != "CalendarItem" or item.start is None or item.end is None:
            continue
        if item.recurrence is None:
            if overlaps(item.start, item.end, start, end):
                out.append(item)
            continue
        # An exception may have moved beyond the window's end; expand a little further to catch it.
        out.extend(
            o
            for o in live_occurrences(item, end + timedelta(days=31))
            if overlaps(o.start, o.end, start, end)
        )
    out.sort(key=lambda x: (x.start or start, x.id))
    return out


def resolve_occurrence(store: Store, occ_id: str) -> Occurrence | None:
    """The occurrence named by an occurrence id, if its master and instance exist."""
    parsed = parse_occurrence_id(occ_id)
    if parsed is None:
        return None
    master = store.items.get(parsed[0])
    if master is None or master.recurrence is None:
        return None
    for occ in occurrences(master, parsed[1] + timedelta(days=1)):
        if occ.original_start == parsed[1]:
            return occ
    return None


def occurrence_by_index(master: Item, index: int) -> Occurrence | None:
    """The ``index``-th (1-based) instance of a series, deleted or not."""
    if index < 1:
        return None
    occs = occurrences(master)
    return occs[index - 1] if index <= len(occs) else None


def item_span(item: Item, until: datetime) -> list[tuple[datetime, datetime]]:
    """The busy intervals of an item (its live instances for a series), up to ``until``."""
    if item.start is None or item.end is None:
        return []
    if item.recurrence is None:
        return [(item.start, item.end)]
    return [(o.start, o.end) for o in live_occurrences(item, until)]
