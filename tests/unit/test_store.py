"""The state store's reads and writes: records, room sync states, the audit trail and licence checks
round-trip; the model refuses naive datetimes.

Units of work and locking are in test_store_transactions.py; files, modes, migrations and the
schema-version guard in test_store_schema.py; bookings in test_store_bookings.py.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_kit import OCC, ROOM, T0, UID, make_audit, make_check, make_record

from xesync.model import (
    AuditOutcome,
    BookingStatus,
    LicenceVerdict,
    RoomSyncState,
    SyncRecord,
)
from xesync.store import Store

# -- round-trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        make_record(),
        make_record(occurrence=OCC, start=OCC, end=OCC + timedelta(minutes=30)),
        make_record(
            conference_id=None, version=None, item_id=None, change_key=None, owner=None,
            status=BookingStatus.FAILED, last_error="TMS fault -2147218253: no licence",
        ),
    ],
    ids=["single", "occurrence", "nulls"],
)  # fmt: skip
def test_record_round_trip(state_store, record):
    """A record reads back equal to what was upserted, inside and outside the transaction."""
    with state_store.transaction() as tx:
        tx.upsert_record(record)
        assert tx.record(ROOM, UID, record.occurrence) == record
    assert state_store.record(ROOM, UID, record.occurrence) == record
    assert state_store.records(ROOM) == [record]


def test_single_meeting_has_one_record(state_store):
    """Upserting a meeting with no occurrence twice replaces it, despite SQL's distinct NULLs."""
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.upsert_record(make_record(version=4, change_key="new", status=BookingStatus.DEFECTIVE))
    assert state_store.records(ROOM) == [
        make_record(version=4, change_key="new", status=BookingStatus.DEFECTIVE)
    ]


def test_series_master_and_occurrences_are_separate_records(state_store):
    """The master (no occurrence) and each occurrence of one UID are distinct records, ordered by start."""
    later = OCC + timedelta(days=7)
    recs = [
        make_record(occurrence=later, start=later, end=later + timedelta(hours=1)),
        make_record(),
        make_record(occurrence=OCC, start=OCC, end=OCC + timedelta(hours=1)),
    ]
    with state_store.transaction() as tx:
        for rec in recs:
            tx.upsert_record(rec)
    assert state_store.records(ROOM) == [recs[1], recs[2], recs[0]]
    assert state_store.record(ROOM, UID, OCC) == recs[2]


def test_delete_record(state_store):
    """Deleting removes only the named record and reports whether it existed."""
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.upsert_record(make_record(occurrence=OCC))
    with state_store.transaction() as tx:
        assert tx.delete_record(ROOM, UID, None) is True
        assert tx.delete_record(ROOM, UID, None) is False
    assert state_store.records(ROOM) == [make_record(occurrence=OCC)]


def test_room_key_ignores_case(state_store):
    """Room keys match regardless of ASCII case, as SMTP addresses do."""
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.put_room_state(RoomSyncState(room=ROOM, sync_state="s1", updated_at=T0))
    assert state_store.record(ROOM.upper(), UID) == make_record()
    state = state_store.room_state("Aurora@Example.COM")
    assert state is not None
    assert state.sync_state == "s1"


def test_room_state_round_trip(state_store):
    """Room sync states are replaced per room and listed for all rooms, including a reset (None) state."""
    states = [
        RoomSyncState(room="b@example.com", sync_state=None, updated_at=T0),
        RoomSyncState(room=ROOM, sync_state="H4sIAAAAAAAEAO29B2AcSZYlJi9tynt", updated_at=T0),
    ]
    with state_store.transaction() as tx:
        assert tx.room_state(ROOM) is None
        tx.put_room_state(replace(states[1], sync_state="old"))
        for state in states:
            tx.put_room_state(state)
        assert tx.room_state(ROOM) == states[1]
    assert state_store.room_states() == [states[1], states[0]]
    assert state_store.room_state("b@example.com") == states[0]


def test_sync_state_and_records_commit_together(state_store):
    """A room's records and its sync state are written in one unit of work and read back together."""
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.put_room_state(RoomSyncState(room=ROOM, sync_state="s2", updated_at=T0))
        tx.add_audit(make_audit())
    assert state_store.records(ROOM) == [make_record()]
    assert state_store.room_states() == [RoomSyncState(room=ROOM, sync_state="s2", updated_at=T0)]


def test_audit_round_trip_and_filters(state_store):
    """Audit entries round-trip with their details and filter by room, uid and time, newest kept by limit."""
    entries = [
        make_audit(at=T0, reason="first"),
        make_audit(at=T0 + timedelta(minutes=1), room="b@example.com", uid="other", reason="second"),
        make_audit(
            at=T0 + timedelta(minutes=2), occurrence=OCC, outcome=AuditOutcome.FAILED, reason="third"
        ),
        make_audit(
            at=T0 + timedelta(minutes=3), uid=None, action="cancel_all", outcome=AuditOutcome.REFUSED,
            reason="mass-cancel guard", details={"count": 12},
        ),
    ]  # fmt: skip
    with state_store.transaction() as tx:
        ids = [tx.add_audit(e) for e in entries]
    assert ids == sorted(ids)
    assert state_store.audit() == entries
    assert state_store.audit(room=ROOM) == [entries[0], entries[2], entries[3]]
    assert state_store.audit(uid=UID) == [entries[0], entries[2]]
    assert state_store.audit(since=T0 + timedelta(minutes=1, seconds=30)) == entries[2:]
    assert state_store.audit(room=ROOM, uid=UID, since=T0 + timedelta(seconds=1)) == [entries[2]]
    assert state_store.audit(limit=2) == entries[2:]


def test_audit_details_must_be_json(state_store):
    """Details JSON cannot represent are refused and the unit of work rolls back."""

    def write() -> None:
        with state_store.transaction() as tx:
            tx.upsert_record(make_record())
            tx.add_audit(make_audit(details={"when": T0}))

    with pytest.raises(TypeError):
        write()
    assert state_store.records(ROOM) == []
    assert state_store.audit() == []


def test_licence_checks_newest_first(state_store):
    """Licence checks round-trip and are returned per meeting, newest first."""
    first = make_check(verdict=LicenceVerdict.CALL_NOT_FOUND, call_id=None, cospace_id=None, owner_jid=None)
    second = make_check(checked_at=first.checked_at + timedelta(minutes=5))
    elsewhere = make_check(occurrence=None, verdict=LicenceVerdict.SMP_NO_OWNER, reason="shared licence")
    with state_store.transaction() as tx:
        tx.add_licence_check(second)
        tx.add_licence_check(first)
        tx.add_licence_check(elsewhere)
    assert state_store.licence_checks(ROOM, UID, OCC) == [second, first]
    assert state_store.latest_licence_check(ROOM, UID, OCC) == second
    assert state_store.latest_licence_check(ROOM, UID) == elsewhere
    assert state_store.latest_licence_check(ROOM, "unknown-uid") is None


def test_records_for_conference(state_store):
    """A TMS conference id leads back to the records that map to it, one per room it books."""
    rec = make_record(occurrence=OCC, conference_id=9001)
    other_room = replace(rec, room="b@example.com")
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.upsert_record(other_room)
        tx.upsert_record(rec)
    assert state_store.records_for_conference(9001) == [rec, other_room]
    assert state_store.records_for_conference(1) == []


def test_limits_must_be_positive(state_store):
    """A non-positive limit is a ValueError rather than an empty or unbounded answer."""
    with pytest.raises(ValueError, match="limit"):
        state_store.audit(limit=0)
    with pytest.raises(ValueError, match="limit"):
        state_store.licence_checks(ROOM, UID, limit=-1)


def test_round_trip_property():
    """Any record upserted reads back equal, whatever its text, ids and time zones."""
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
    zones = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14)))
    # Hypothesis takes naive bounds and attaches the zones itself.
    bounds = {"min_value": datetime(1990, 1, 1), "max_value": datetime(2200, 1, 1)}  # noqa: DTZ001
    times = st.datetimes(**bounds, timezones=zones)
    ids = st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    records = st.builds(
        SyncRecord,
        room=text, uid=text, occurrence=st.none() | times, conference_id=ids, version=ids,
        item_id=st.none() | text, change_key=st.none() | text, content_hash=text,
        status=st.sampled_from(BookingStatus), organiser=text, owner=st.none() | text, start=times,
        end=times, subject=text, last_error=st.none() | text, updated_at=times,
    )  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "x.db") as opened:

        @given(records)
        def check(record: SyncRecord) -> None:
            with opened.transaction() as tx:
                tx.upsert_record(record)
            got = opened.record(record.room, record.uid, record.occurrence)
            assert got == record
            assert got is not None
            assert got.start.tzinfo is UTC

        check()


# -- model ------------------------------------------------------------------------------------------


def test_naive_datetimes_are_refused():
    """Model objects refuse naive datetimes, naming the field."""
    with pytest.raises(ValueError, match="start must be a timezone-aware"):
        make_record(start=datetime(2025, 3, 3, 9, 0))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="checked_at"):
        make_check(checked_at=datetime(2025, 3, 3, 9, 0))  # noqa: DTZ001


def test_datetimes_are_normalised_to_utc():
    """Aware datetimes in other zones are stored in the model as the same instant in UTC."""
    cet = timezone(timedelta(hours=1))
    rec = make_record(start=datetime(2025, 3, 3, 10, 0, tzinfo=cet))
    assert rec.start == T0
    assert rec.start.tzinfo is UTC


def test_enum_values_are_lower_case():
    """Enum values are the lower-case strings that are stored and logged."""
    for enum in (BookingStatus, LicenceVerdict, AuditOutcome):
        for member in enum:
            assert member.value == member.name.lower()
