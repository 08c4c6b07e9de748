"""The store's bookings: the ``booking`` table's rows, and the queries the engine runs by meeting.

A booking (:class:`xesync.model.Booking`) is keyed ``(uid, occurrence)`` and owns the TMS
conference; each room's :class:`~xesync.model.SyncRecord` points at it by UID. The last
:class:`~xesync.meetings.ConferenceRequest` sent is kept as JSON in the row, so that a room leaving
a meeting can be saved from what TMS was last told, without the other rooms' items at hand.

Functions take an open connection; :mod:`xesync.store` calls them inside its locks and transactions.
Nothing here logs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final, TypeVar

from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Owner, Recurrence
from xesync.model import Booking, SyncRecord, TmsState
from xesync.store_schema import (
    RECORD_COLUMNS,
    decode_occurrence,
    decode_ts,
    encode_occurrence,
    encode_ts,
    record_from_row,
)

T = TypeVar("T")

BOOKING_COLUMNS: Final = (
    "uid, occurrence, external_key, conference_id, version, owner, organiser, rooms, subject, start_at, "
    "end_at, content_hash, request, state, info_text, info_html, notified_hash, last_error, updated_at, "
    "predicted_licence, predicted_reason"
)
"""The ``booking`` columns, in the order of :func:`booking_row`."""


# -- ConferenceRequest <-> JSON -------------------------------------------------------------------


def _ts(value: datetime | None) -> str | None:
    return None if value is None else encode_ts(value)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else decode_ts(value)


def request_to_json(request: ConferenceRequest) -> str:
    """Serialise a request as it was sent (ids and version included)."""
    rec = request.recurrence
    owner = request.owner
    data: dict[str, Any] = {
        "external_key": request.external_key,
        "title": request.title,
        "start": _ts(request.start),
        "end": _ts(request.end),
        "time_zone": request.time_zone,
        "owner": None if owner is None else [owner.username, owner.first_name, owner.last_name, owner.email],
        "system_ids": list(request.system_ids),
        "recurrence": None
        if rec is None
        else {
            "frequency": rec.frequency.value,
            "interval": rec.interval,
            "weekdays": list(rec.weekdays),
            "day_of_month": rec.day_of_month,
            "week_of_month": rec.week_of_month,
            "month": rec.month,
            "first_day_of_week": rec.first_day_of_week,
            "start_date": rec.start_date.isoformat(),
            "end_date": None if rec.end_date is None else rec.end_date.isoformat(),
            "count": rec.count,
        },
        "occurrence_limit": request.occurrence_limit,
        "exceptions": [[_ts(e.recurrence_id), _ts(e.start), _ts(e.end)] for e in request.exceptions],
        "conference_id": request.conference_id,
        "version": request.version,
    }
    return json.dumps(data, sort_keys=True)


def request_from_json(text: str) -> ConferenceRequest:
    """Read back a request written by :func:`request_to_json`."""
    data = json.loads(text)
    rec = data["recurrence"]
    owner = data["owner"]
    return ConferenceRequest(
        external_key=data["external_key"],
        title=data["title"],
        start=decode_ts(data["start"]),
        end=decode_ts(data["end"]),
        time_zone=data["time_zone"],
        owner=None
        if owner is None
        else Owner(username=owner[0], first_name=owner[1], last_name=owner[2], email=owner[3]),
        system_ids=tuple(data["system_ids"]),
        recurrence=None
        if rec is None
        else Recurrence(
            frequency=Frequency(rec["frequency"]),
            interval=rec["interval"],
            weekdays=tuple(rec["weekdays"]),
            day_of_month=rec["day_of_month"],
            week_of_month=rec["week_of_month"],
            month=rec["month"],
            first_day_of_week=rec["first_day_of_week"],
            start_date=date.fromisoformat(rec["start_date"]),
            end_date=None if rec["end_date"] is None else date.fromisoformat(rec["end_date"]),
            count=rec["count"],
        ),
        occurrence_limit=data["occurrence_limit"],
        exceptions=tuple(
            OccurrenceChange(recurrence_id=decode_ts(e[0]), start=_dt(e[1]), end=_dt(e[2]))
            for e in data["exceptions"]
        ),
        conference_id=data["conference_id"],
        version=data["version"],
    )


# -- rows -------------------------------------------------------------------------------------------


def booking_row(b: Booking) -> tuple[object, ...]:
    """The parameters for :data:`BOOKING_COLUMNS`, in that order."""
    return (
        b.uid, encode_occurrence(b.occurrence), b.external_key, b.conference_id, b.version, b.owner,
        b.organiser, json.dumps(list(b.rooms)), b.subject, encode_ts(b.start), encode_ts(b.end),
        b.content_hash, None if b.request is None else request_to_json(b.request), b.state.value,
        b.info_text, b.info_html, b.notified_hash, b.last_error, encode_ts(b.updated_at),
        b.predicted_licence, b.predicted_reason,
    )  # fmt: skip


def booking_from_row(row: sqlite3.Row) -> Booking:
    """The booking in a row selected with :data:`BOOKING_COLUMNS`."""
    return Booking(
        uid=row["uid"],
        occurrence=decode_occurrence(row["occurrence"]),
        external_key=row["external_key"],
        conference_id=row["conference_id"],
        version=row["version"],
        owner=row["owner"],
        organiser=row["organiser"],
        rooms=tuple(json.loads(row["rooms"])),
        subject=row["subject"],
        start=decode_ts(row["start_at"]),
        end=decode_ts(row["end_at"]),
        content_hash=row["content_hash"],
        request=None if row["request"] is None else request_from_json(row["request"]),
        state=TmsState(row["state"]),
        info_text=row["info_text"],
        info_html=row["info_html"],
        notified_hash=row["notified_hash"],
        last_error=row["last_error"],
        updated_at=decode_ts(row["updated_at"]),
        predicted_licence=row["predicted_licence"],
        predicted_reason=row["predicted_reason"],
    )


# -- queries ----------------------------------------------------------------------------------------


def select_booking(conn: sqlite3.Connection, uid: str, occurrence: datetime | None) -> Booking | None:
    """The booking ``(uid, occurrence)``, or ``None``."""
    row = conn.execute(
        f"SELECT {BOOKING_COLUMNS} FROM booking WHERE uid = ? AND occurrence = ?",  # noqa: S608 - constants only
        (uid, encode_occurrence(occurrence)),
    ).fetchone()
    return None if row is None else booking_from_row(row)


def select_bookings(conn: sqlite3.Connection, *, live_only: bool = False) -> list[Booking]:
    """Every booking (or every live one), by start."""
    where = " WHERE state IN ('saved', 'defective')" if live_only else ""
    rows = conn.execute(f"SELECT {BOOKING_COLUMNS} FROM booking{where} ORDER BY start_at, uid")  # noqa: S608
    return [booking_from_row(r) for r in rows]


def upsert_booking(conn: sqlite3.Connection, booking: Booking) -> None:
    """Insert the booking, or replace every field of the one with the same key."""
    names = BOOKING_COLUMNS.split(", ")
    updates = ", ".join(f"{c} = excluded.{c}" for c in names)
    conn.execute(
        f"INSERT INTO booking ({BOOKING_COLUMNS}) VALUES ({', '.join('?' * len(names))}) "  # noqa: S608
        f"ON CONFLICT (uid, occurrence) DO UPDATE SET {updates}",
        booking_row(booking),
    )


def select_records_for_uid(conn: sqlite3.Connection, uid: str) -> list[SyncRecord]:
    """Every room's records of the meeting ``uid``."""
    rows = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM record WHERE uid = ? ORDER BY room, occurrence",  # noqa: S608
        (uid,),
    )
    return [record_from_row(r) for r in rows]


def select_record_by_item(conn: sqlite3.Connection, room: str, item_id: str) -> SyncRecord | None:
    """The room's record of the Exchange item ``item_id`` (a deletion names only the item id)."""
    row = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM record WHERE room = ? AND item_id = ?",  # noqa: S608
        (room, item_id),
    ).fetchone()
    return None if row is None else record_from_row(row)


def select_due(conn: sqlite3.Connection, room: str, now: datetime) -> list[SyncRecord]:
    """The room's records whose ``recheck_at`` has come."""
    rows = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM record WHERE room = ? AND recheck_at IS NOT NULL "  # noqa: S608
        "AND recheck_at <= ? ORDER BY recheck_at",
        (room, encode_ts(now)),
    )
    return [record_from_row(r) for r in rows]


def select_next_recheck(conn: sqlite3.Connection, room: str) -> datetime | None:
    """The room's earliest recheck, due or not (the ``record_recheck`` index answers it)."""
    row = conn.execute(
        "SELECT MIN(recheck_at) FROM record WHERE room = ? AND recheck_at IS NOT NULL", (room,)
    ).fetchone()
    return None if row is None or row[0] is None else decode_ts(row[0])


class BookingQueries:
    """The booking look-ups shared by :class:`xesync.store.Store` (committed data, under its lock) and
    :class:`xesync.store.Transaction` (inside a unit of work); each supplies :meth:`_run`."""

    __slots__ = ()

    def _run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def booking(self, uid: str, occurrence: datetime | None = None) -> Booking | None:
        """Return the booking ``(uid, occurrence)``, or ``None``."""
        return self._run(lambda c: select_booking(c, uid, occurrence))

    def bookings(self, *, live_only: bool = False) -> list[Booking]:
        """Return every booking (or every live one), by start."""
        return self._run(lambda c: select_bookings(c, live_only=live_only))

    def records_for_uid(self, uid: str) -> list[SyncRecord]:
        """Return every room's records of the meeting ``uid``."""
        return self._run(lambda c: select_records_for_uid(c, uid))

    def record_by_item(self, room: str, item_id: str) -> SyncRecord | None:
        """Return the room's record of the Exchange item ``item_id``, or ``None``."""
        return self._run(lambda c: select_record_by_item(c, room, item_id))

    def due(self, room: str, now: datetime) -> list[SyncRecord]:
        """Return the room's records whose ``recheck_at`` has come."""
        return self._run(lambda c: select_due(c, room, now))

    def next_recheck(self, room: str) -> datetime | None:
        """When the room's earliest recheck falls due (``None``: none is planned)."""
        return self._run(lambda conn: select_next_recheck(conn, room))
