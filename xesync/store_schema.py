"""The state store's schema and row codecs: what :mod:`xesync.store` writes, and how it reads it back.

- :data:`MIGRATIONS` takes an empty file to :data:`SCHEMA_VERSION`, one forward step at a time.
  :mod:`xesync.store` applies them, and checks when it is imported that they count up from 1.
- The codecs turn model objects (:mod:`xesync.model`) into SQL parameters and ``sqlite3.Row`` values
  back into model objects. Timestamps are stored as fixed-width UTC text, so that text order is time
  order in SQL; an occurrence of ``None`` (a single meeting or series master) is stored as ``''``.

Nothing here opens a connection or logs; :mod:`xesync.store` does both.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from xesync.model import (
    AuditEntry,
    AuditOutcome,
    BookingStatus,
    CheckStage,
    LicenceCheck,
    LicenceVerdict,
    RoomResponse,
    RoomSyncState,
    SyncRecord,
    as_utc,
)

__all__ = [
    "AUDIT_COLUMNS",
    "LICENCE_COLUMNS",
    "MIGRATIONS",
    "RECORD_COLUMNS",
    "SCHEMA_VERSION",
    "Migration",
    "audit_from_row",
    "audit_row",
    "decode_occurrence",
    "decode_ts",
    "encode_occurrence",
    "encode_ts",
    "licence_check_from_row",
    "licence_check_row",
    "record_from_row",
    "record_row",
    "room_state_from_row",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """One forward step of the schema: ``statements`` take a file from ``version - 1`` to ``version``."""

    version: int
    summary: str
    statements: tuple[str, ...]


# Append only; never edit a released step (tests/unit/test_store.py keeps v1 frozen and compares).
# A new BookingStatus, LicenceVerdict or AuditOutcome value needs a step too, even an empty one, so
# that an older release refuses a file that may contain it instead of failing on the first read.
# Schema notes, here because SQL comments would end up in sqlite_master:
# - ``occurrence`` is '' for a single meeting or series master, never NULL: NULLs are distinct in a
#   primary key, which would let one meeting have many records.
# - Room columns are COLLATE NOCASE because SMTP addresses are compared without regard to case.
# - No STRICT tables and no CHECK on enum columns: STRICT needs SQLite 3.37 (older distributions ship
#   3.34 and could not even read the file), and a CHECK would turn every new enum value into a table
#   rebuild. The model's enums validate on read.
# - AUTOINCREMENT on the append-only tables: ids never come back after pruning, so id order stays
#   insertion order (``at`` may step back with the clock).
MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "room sync states, records, audit trail",
        (
            """CREATE TABLE room_state (
                room TEXT NOT NULL COLLATE NOCASE PRIMARY KEY,
                sync_state TEXT,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE record (
                room TEXT NOT NULL COLLATE NOCASE,
                uid TEXT NOT NULL,
                occurrence TEXT NOT NULL,
                conference_id INTEGER,
                version INTEGER,
                item_id TEXT,
                change_key TEXT,
                content_hash TEXT NOT NULL,
                status TEXT NOT NULL,
                organiser TEXT NOT NULL,
                owner TEXT,
                start_at TEXT NOT NULL,
                end_at TEXT NOT NULL,
                subject TEXT NOT NULL,
                last_error TEXT,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (room, uid, occurrence)
            )""",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                run_id TEXT NOT NULL,
                room TEXT COLLATE NOCASE,
                uid TEXT,
                occurrence TEXT NOT NULL,
                action TEXT NOT NULL,
                outcome TEXT NOT NULL,
                reason TEXT NOT NULL,
                details TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "licence checks; look-ups by conference id and by meeting",
        (
            """CREATE TABLE licence_check (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                room TEXT NOT NULL COLLATE NOCASE,
                uid TEXT NOT NULL,
                occurrence TEXT NOT NULL,
                conference_id INTEGER,
                call_id TEXT,
                cospace_id TEXT,
                owner_jid TEXT,
                verdict TEXT NOT NULL,
                reason TEXT NOT NULL,
                checked_at TEXT NOT NULL
            )""",
            "CREATE INDEX licence_check_meeting ON licence_check (room, uid, occurrence, checked_at)",
            # The TMS transaction poll reports conference ids; it needs the records behind each one.
            "CREATE INDEX record_conference ON record (conference_id) WHERE conference_id IS NOT NULL",
            "CREATE INDEX audit_uid ON audit (uid, id)",
            "CREATE INDEX audit_room ON audit (room, id)",
        ),
    ),
    Migration(
        3,
        "bookings that span rooms; a room's response apart from the TMS state; rechecks; verdicts",
        (
            # One TMS conference per (uid, occurrence), whichever rooms it books (issue: records
            # were per room, but one conference books several rooms).
            """CREATE TABLE booking (
                uid TEXT NOT NULL,
                occurrence TEXT NOT NULL,
                external_key TEXT NOT NULL,
                conference_id INTEGER,
                version INTEGER,
                owner TEXT,
                organiser TEXT NOT NULL,
                rooms TEXT NOT NULL,
                subject TEXT NOT NULL,
                start_at TEXT NOT NULL,
                end_at TEXT NOT NULL,
                content_hash TEXT NOT NULL,
                request TEXT,
                state TEXT NOT NULL,
                info_text TEXT NOT NULL,
                info_html TEXT NOT NULL,
                notified_hash TEXT,
                last_error TEXT,
                updated_at TEXT NOT NULL,
                predicted_licence TEXT,
                predicted_reason TEXT,
                PRIMARY KEY (uid, occurrence)
            )""",
            "CREATE UNIQUE INDEX booking_external_key ON booking (external_key, occurrence)",
            "CREATE INDEX booking_conference ON booking (conference_id) WHERE conference_id IS NOT NULL",
            "ALTER TABLE record ADD COLUMN response TEXT NOT NULL DEFAULT 'none'",
            "ALTER TABLE record ADD COLUMN dial_in_hash TEXT",
            "ALTER TABLE record ADD COLUMN recheck_at TEXT",
            "CREATE INDEX record_uid ON record (uid)",
            "CREATE INDEX record_item ON record (room, item_id)",
            "CREATE INDEX record_recheck ON record (room, recheck_at) WHERE recheck_at IS NOT NULL",
            "ALTER TABLE room_state ADD COLUMN fuse_held TEXT NOT NULL DEFAULT '[]'",
            # The licence verdicts became the seven of the licence proof; map the first release's.
            "UPDATE licence_check SET verdict = 'pmp_confirmed' WHERE verdict = 'pmp'",
            "UPDATE licence_check SET verdict = 'smp_no_owner' WHERE verdict = 'smp'",
            "UPDATE licence_check SET verdict = 'owner_mismatch' WHERE verdict = 'wrong_owner'",
            "UPDATE licence_check SET verdict = 'call_not_found' WHERE verdict = 'no_call'",
            "UPDATE licence_check SET verdict = 'unverifiable' WHERE verdict = 'unknown'",
            # The licence proof's verdicts carry the meeting with them (issue 11), so that `report`
            # and `explain` read one table, and a booking edited later does not rewrite history.
            "ALTER TABLE licence_check ADD COLUMN organiser TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE licence_check ADD COLUMN rooms TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE licence_check ADD COLUMN subject TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE licence_check ADD COLUMN start_at TEXT",
            "ALTER TABLE licence_check ADD COLUMN end_at TEXT",
            "ALTER TABLE licence_check ADD COLUMN stage TEXT NOT NULL DEFAULT 'at_start'",
            "ALTER TABLE licence_check ADD COLUMN fixup_in_time INTEGER",
            "ALTER TABLE licence_check ADD COLUMN matched_by TEXT",
            "ALTER TABLE licence_check ADD COLUMN calls_on_licence INTEGER",
            "CREATE INDEX licence_check_uid ON licence_check (uid, occurrence, id)",
            "CREATE INDEX licence_check_time ON licence_check (checked_at)",
        ),
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The newest schema version this release knows."""

RECORD_COLUMNS: Final = (
    "room, uid, occurrence, conference_id, version, item_id, change_key, content_hash, status, "
    "organiser, owner, start_at, end_at, subject, last_error, updated_at, response, dial_in_hash, recheck_at"
)
"""The ``record`` columns, in the order of :func:`record_row`."""
AUDIT_COLUMNS: Final = "at, run_id, room, uid, occurrence, action, outcome, reason, details"
"""The ``audit`` columns but ``id``, in the order of :func:`audit_row`."""
LICENCE_COLUMNS: Final = (
    "room, uid, occurrence, conference_id, call_id, cospace_id, owner_jid, verdict, reason, checked_at, "
    "organiser, rooms, subject, start_at, end_at, stage, fixup_in_time, matched_by, calls_on_licence"
)
"""The ``licence_check`` columns but ``id``, in the order of :func:`licence_check_row`."""


# -- rows <-> model ---------------------------------------------------------------------------------


def encode_ts(value: datetime) -> str:
    """Store an aware timestamp as text.

    :raises ValueError: ``value`` is naive.
    """
    # One fixed-width format (UTC, microseconds, +00:00), so that text order is time order in SQL.
    return as_utc(value, "timestamp").isoformat(timespec="microseconds")


def decode_ts(text: str) -> datetime:
    """Read back a timestamp stored by :func:`encode_ts`, as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def encode_occurrence(value: datetime | None) -> str:
    """Store an occurrence: ``''`` for a single meeting or series master, else its timestamp."""
    return "" if value is None else encode_ts(value)


def decode_occurrence(text: str) -> datetime | None:
    """Read back an occurrence stored by :func:`encode_occurrence`."""
    return None if text == "" else decode_ts(text)


def record_row(r: SyncRecord) -> tuple[object, ...]:
    """The parameters for :data:`RECORD_COLUMNS`, in that order."""
    return (
        r.room, r.uid, encode_occurrence(r.occurrence), r.conference_id, r.version, r.item_id,
        r.change_key, r.content_hash, r.status.value, r.organiser, r.owner, encode_ts(r.start),
        encode_ts(r.end), r.subject, r.last_error, encode_ts(r.updated_at), r.response.value,
        r.dial_in_hash, None if r.recheck_at is None else encode_ts(r.recheck_at),
    )  # fmt: skip


def record_from_row(row: sqlite3.Row) -> SyncRecord:
    """The record in a row selected with :data:`RECORD_COLUMNS`."""
    return SyncRecord(
        room=row["room"],
        uid=row["uid"],
        occurrence=decode_occurrence(row["occurrence"]),
        conference_id=row["conference_id"],
        version=row["version"],
        item_id=row["item_id"],
        change_key=row["change_key"],
        content_hash=row["content_hash"],
        status=BookingStatus(row["status"]),
        organiser=row["organiser"],
        owner=row["owner"],
        start=decode_ts(row["start_at"]),
        end=decode_ts(row["end_at"]),
        subject=row["subject"],
        last_error=row["last_error"],
        updated_at=decode_ts(row["updated_at"]),
        response=RoomResponse(row["response"]),
        dial_in_hash=row["dial_in_hash"],
        recheck_at=None if row["recheck_at"] is None else decode_ts(row["recheck_at"]),
    )


def room_state_from_row(row: sqlite3.Row) -> RoomSyncState:
    """The sync state in a row selected as ``room, sync_state, updated_at, fuse_held``."""
    return RoomSyncState(
        room=row["room"],
        sync_state=row["sync_state"],
        updated_at=decode_ts(row["updated_at"]),
        fuse_held=tuple(json.loads(row["fuse_held"])),
    )


def audit_row(entry: AuditEntry) -> tuple[object, ...]:
    """The parameters for :data:`AUDIT_COLUMNS`, in that order.

    :raises TypeError: a ``details`` value JSON cannot represent.
    :raises ValueError: a ``details`` value is a NaN or an infinite float.
    """
    details = json.dumps(dict(entry.details), sort_keys=True, allow_nan=False)
    return (
        encode_ts(entry.at), entry.run_id, entry.room, entry.uid, encode_occurrence(entry.occurrence),
        entry.action, entry.outcome.value, entry.reason, details,
    )  # fmt: skip


def audit_from_row(row: sqlite3.Row) -> AuditEntry:
    """The audit entry in a row selected with :data:`AUDIT_COLUMNS`."""
    return AuditEntry(
        at=decode_ts(row["at"]),
        run_id=row["run_id"],
        room=row["room"],
        uid=row["uid"],
        occurrence=decode_occurrence(row["occurrence"]),
        action=row["action"],
        outcome=AuditOutcome(row["outcome"]),
        reason=row["reason"],
        details=json.loads(row["details"]),
    )


def licence_check_row(check: LicenceCheck) -> tuple[object, ...]:
    """The parameters for :data:`LICENCE_COLUMNS`, in that order."""
    return (
        check.room, check.uid, encode_occurrence(check.occurrence), check.conference_id, check.call_id,
        check.cospace_id, check.owner_jid, check.verdict.value, check.reason,
        encode_ts(check.checked_at), check.organiser, json.dumps(list(check.rooms)), check.subject,
        None if check.start is None else encode_ts(check.start),
        None if check.end is None else encode_ts(check.end), check.stage.value,
        None if check.fixup_in_time is None else int(check.fixup_in_time), check.matched_by,
        check.calls_on_licence,
    )  # fmt: skip


def licence_check_from_row(row: sqlite3.Row) -> LicenceCheck:
    """The licence check in a row selected with :data:`LICENCE_COLUMNS`."""
    return LicenceCheck(
        room=row["room"],
        uid=row["uid"],
        occurrence=decode_occurrence(row["occurrence"]),
        conference_id=row["conference_id"],
        call_id=row["call_id"],
        cospace_id=row["cospace_id"],
        owner_jid=row["owner_jid"],
        verdict=LicenceVerdict(row["verdict"]),
        reason=row["reason"],
        checked_at=decode_ts(row["checked_at"]),
        organiser=row["organiser"],
        rooms=tuple(json.loads(row["rooms"])),
        subject=row["subject"],
        start=None if row["start_at"] is None else decode_ts(row["start_at"]),
        end=None if row["end_at"] is None else decode_ts(row["end_at"]),
        stage=CheckStage(row["stage"]),
        fixup_in_time=None if row["fixup_in_time"] is None else bool(row["fixup_in_time"]),
        matched_by=row["matched_by"],
        calls_on_licence=row["calls_on_licence"],
    )
