"""Model objects for the state-store tests (tests/unit/test_store*.py): a record, an audit entry and a
licence check, each with overrides, for one room and one meeting UID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xesync.model import (
    AuditEntry,
    AuditOutcome,
    BookingStatus,
    LicenceCheck,
    LicenceVerdict,
    SyncRecord,
)

ROOM = "aurora@example.com"
UID = "040000008200E00074C5B7101A82E00800000000D0E5E3B2C47BDA01000000000000000010000000"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
OCC = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


def make_record(**overrides) -> SyncRecord:
    fields = {
        "room": ROOM,
        "uid": UID,
        "occurrence": None,
        "conference_id": 4711,
        "version": 3,
        "item_id": "AAMkAGI2TG93AAA=",
        "change_key": "DwAAABYAAAA",
        "content_hash": "sha256:1f2e",
        "status": BookingStatus.BOOKED,
        "organiser": "alice@example.com",
        "owner": "EXAMPLE\\alice",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "subject": "Quarterly review",
        "last_error": None,
        "updated_at": T0 - timedelta(days=1),
    }
    fields.update(overrides)
    return SyncRecord(**fields)


def make_audit(**overrides) -> AuditEntry:
    fields = {
        "at": T0,
        "run_id": "run-1",
        "room": ROOM,
        "uid": UID,
        "occurrence": None,
        "action": "create_booking",
        "outcome": AuditOutcome.APPLIED,
        "reason": "new meeting",
        "details": {"conference_id": 4711, "attendees": ["a", "b"], "forced": False, "note": None},
    }
    fields.update(overrides)
    return AuditEntry(**fields)


def make_check(**overrides) -> LicenceCheck:
    fields = {
        "room": ROOM,
        "uid": UID,
        "occurrence": OCC,
        "conference_id": 4711,
        "call_id": "c0ffee00-0000-4000-8000-000000000001",
        "cospace_id": "5ace0000-0000-4000-8000-000000000002",
        "owner_jid": "alice@example.com",
        "verdict": LicenceVerdict.PMP_CONFIRMED,
        "reason": "callLeg licence personal",
        "checked_at": OCC + timedelta(minutes=5),
    }
    fields.update(overrides)
    return LicenceCheck(**fields)
