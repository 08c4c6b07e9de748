"""The state store: round-trips, units of work, file modes, migrations and the schema-version guard."""

from __future__ import annotations

import re
import sqlite3
import stat
import tempfile
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from xesync import events, store, store_setup
from xesync.errors import (
    StoreBusyError,
    StoreError,
    StoreMigrationError,
    StoreVersionError,
    TransientError,
    UserError,
    XesyncError,
)
from xesync.model import (
    AuditEntry,
    AuditOutcome,
    BookingStatus,
    LicenceCheck,
    LicenceVerdict,
    RoomSyncState,
    SyncRecord,
)
from xesync.store import SCHEMA_VERSION, Store

ROOM = "aurora@example.com"
UID = "040000008200E00074C5B7101A82E00800000000D0E5E3B2C47BDA01000000000000000010000000"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
OCC = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)

# Schema version 1 exactly as release 0.1 shipped it. Frozen here on purpose: a migration test must
# start from what real databases contain, not from whatever migration 1 says today.
V1_SCHEMA = (
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
    "PRAGMA user_version = 1",
)


class BoomError(Exception):
    """Raised inside a unit of work to make it roll back."""


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


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "state" / "xesync.db"


@pytest.fixture
def state_store(db):
    with Store.open(db) as opened:
        yield opened


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return [(t, n, re.sub(r"\s+", " ", sql or "")) for t, n, sql in rows]


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


# -- units of work ----------------------------------------------------------------------------------


def test_rollback_on_exception_leaves_nothing(state_store):
    """An exception inside a unit of work rolls back every write in it and propagates."""
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        tx.put_room_state(RoomSyncState(room=ROOM, sync_state="before", updated_at=T0))

    def write_then_fail() -> None:
        with state_store.transaction() as tx:
            tx.upsert_record(make_record(status=BookingStatus.CANCELLED))
            tx.upsert_record(make_record(occurrence=OCC))
            tx.delete_record(ROOM, UID, None)
            tx.put_room_state(RoomSyncState(room=ROOM, sync_state="after", updated_at=T0))
            tx.add_audit(make_audit())
            tx.add_licence_check(make_check())
            raise BoomError

    with pytest.raises(BoomError):
        write_then_fail()
    assert state_store.records(ROOM) == [make_record()]
    assert state_store.room_states() == [RoomSyncState(room=ROOM, sync_state="before", updated_at=T0)]
    assert state_store.audit() == []
    assert state_store.licence_checks(ROOM, UID, OCC) == []


def test_transaction_is_unusable_after_its_block(state_store):
    """A transaction object kept past its with-block refuses further use."""
    with state_store.transaction() as tx:
        pass
    with pytest.raises(RuntimeError, match="ended"):
        tx.upsert_record(make_record())


def test_transactions_do_not_nest(state_store):
    """Opening a transaction inside another is refused, and the outer one still commits."""
    with state_store.transaction() as tx:
        tx.upsert_record(make_record())
        with pytest.raises(RuntimeError, match="nest"), state_store.transaction():
            pass
    assert state_store.records(ROOM) == [make_record()]


def test_reader_in_another_thread_waits_for_commit(state_store):
    """A read from another thread never sees half a unit of work: it waits for the commit."""
    written = threading.Event()
    release = threading.Event()
    seen: list[list[SyncRecord]] = []

    def writer() -> None:
        with state_store.transaction() as tx:
            tx.upsert_record(make_record())
            written.set()
            release.wait(5)
            tx.upsert_record(make_record(occurrence=OCC))

    def reader() -> None:
        seen.append(state_store.records(ROOM))

    w = threading.Thread(target=writer)
    w.start()
    assert written.wait(5)
    r = threading.Thread(target=reader)
    r.start()
    r.join(0.2)
    assert r.is_alive()  # blocked on the store's lock, not reading a half-written room
    release.set()
    w.join(5)
    r.join(5)
    assert [len(s) for s in seen] == [2]


def test_closed_store_refuses_use(db):
    """Using a closed store is a bug (a RuntimeError naming the file); closing twice is harmless."""
    opened = Store.open(db)
    opened.close()
    opened.close()
    with pytest.raises(RuntimeError, match="closed") as err:
        opened.records(ROOM)
    assert not isinstance(err.value, XesyncError)
    assert str(db) in str(err.value)
    with pytest.raises(RuntimeError, match="closed"), opened.transaction():
        pass


def test_store_errors_are_not_user_errors():
    """A store that cannot be used is no configuration problem: StoreError does not exit 2."""
    assert not issubclass(StoreError, UserError)
    assert StoreError("/x.db", "broken").exit_code != UserError.exit_code


# -- files and modes --------------------------------------------------------------------------------


def test_new_store_modes_and_pragmas(db):
    """A new store gets a 0700 directory, a 0600 file (and WAL files), WAL journal and FULL sync."""
    with Store.open(db) as opened:
        with opened.transaction() as tx:
            tx.upsert_record(make_record())
        assert mode(db.parent) == 0o700
        for path in (db, db.with_name("xesync.db-wal"), db.with_name("xesync.db-shm")):
            assert mode(path) == 0o600, path
        conn = opened._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert opened.schema_version == SCHEMA_VERSION


def test_loose_existing_modes_are_tightened(db):
    """An existing directory and file with loose modes are set to 0700/0600, and the change is logged."""
    Store.open(db).close()
    db.parent.chmod(0o755)
    db.chmod(0o644)
    with capture_logs() as logs, Store.open(db):
        pass
    assert mode(db.parent) == 0o700
    assert mode(db) == 0o600
    tightened = [e for e in logs if e["event"] == events.STORE_MODE_TIGHTENED]
    assert {(e["old_mode"], e["mode"]) for e in tightened} == {("755", "700"), ("644", "600")}


def test_unsecurable_directory_is_a_store_error(tmp_path):
    """A directory that cannot be created is a StoreError naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create or secure") as err:
        Store.open(blocker / "xesync.db")
    assert err.value.path == str(blocker / "xesync.db")


def test_shared_directory_is_refused_not_tightened(tmp_path):
    """A loose directory holding other files is refused and left as it was: chmod 0700 would break them."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "someone-else.txt").write_text("x")
    shared.chmod(0o755)
    with pytest.raises(StoreError, match="shared") as err:
        Store.open(shared / "xesync.db")
    assert "someone-else.txt" in str(err.value)
    assert mode(shared) == 0o755
    assert not (shared / "xesync.db").exists()


def test_not_an_sqlite_file_is_a_store_error(db):
    """A file that is not a SQLite database is refused with a StoreError, not a raw sqlite3 error."""
    db.parent.mkdir(mode=0o700)
    db.write_bytes(b"this is not a database, it is a shopping list" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Store.open(db)


def test_foreign_sqlite_database_is_refused(db):
    """A SQLite file with tables but no schema version belongs to someone else and is not migrated."""
    db.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(StoreError, match="not an xesync store"):
        Store.open(db)
    assert [n for (_t, n, _s) in schema(db)] == ["moz_places"]


def test_symlinked_side_file_is_refused(db):
    """A -wal file that is a symlink is refused, so the store cannot be redirected elsewhere."""
    Store.open(db).close()
    db.with_name("xesync.db-wal").unlink(missing_ok=True)
    db.with_name("xesync.db-wal").symlink_to(db.parent.parent / "elsewhere")
    with pytest.raises(StoreError, match="not a regular file"):
        Store.open(db)


# -- migrations -------------------------------------------------------------------------------------


def build_v1(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO record VALUES (?, ?, '', 4711, 3, 'AAMk', 'DwAA', 'sha256:1f2e', 'booked', "
            "'alice@example.com', 'EXAMPLE\\alice', '2025-03-03T09:00:00.000000+00:00', "
            "'2025-03-03T10:00:00.000000+00:00', 'Quarterly review', NULL, "
            "'2025-03-02T09:00:00.000000+00:00')",
            (ROOM, UID),
        )
        conn.execute(
            "INSERT INTO room_state VALUES (?, 'H4sI-v1-state', '2025-03-02T09:00:00.000000+00:00')", (ROOM,)
        )
        conn.execute(
            "INSERT INTO audit (at, run_id, room, uid, occurrence, action, outcome, reason, details) "
            "VALUES ('2025-03-02T09:00:00.000000+00:00', 'run-0', ?, ?, '', 'create_booking', 'applied', "
            "'new meeting', '{\"conference_id\": 4711}')",
            (ROOM, UID),
        )
    finally:
        conn.close()


def test_fresh_store_applies_every_migration_in_order(db):
    """A new file is migrated step by step from version 0, each step logged with its versions."""
    with capture_logs() as logs, Store.open(db) as opened:
        assert opened.schema_version == SCHEMA_VERSION == 3
    migrated = [(e["from_version"], e["to_version"]) for e in logs if e["event"] == events.STORE_MIGRATED]
    assert migrated == [(0, 1), (1, 2), (2, 3)]
    assert [e["event"] for e in logs][-1] == events.STORE_OPENED


def test_migration_from_v1_keeps_data(db):
    """A v1 database with data opens at the current version, its data intact and the v2 tables usable."""
    build_v1(db)
    with capture_logs() as logs, Store.open(db) as opened:
        assert opened.schema_version == SCHEMA_VERSION
        assert opened.records(ROOM) == [
            make_record(item_id="AAMk", change_key="DwAA", updated_at=datetime(2025, 3, 2, 9, tzinfo=UTC))
        ]
        assert opened.room_state(ROOM) == RoomSyncState(
            room=ROOM, sync_state="H4sI-v1-state", updated_at=datetime(2025, 3, 2, 9, tzinfo=UTC)
        )
        assert [(e.run_id, e.details) for e in opened.audit(uid=UID)] == [("run-0", {"conference_id": 4711})]
        assert len(opened.records_for_conference(4711)) == 1
        with opened.transaction() as tx:
            tx.add_licence_check(make_check())
        assert opened.latest_licence_check(ROOM, UID, OCC) == make_check()
    migrated = [(e["from_version"], e["to_version"]) for e in logs if e["event"] == events.STORE_MIGRATED]
    assert migrated == [(1, 2), (2, 3)]


def test_migrated_schema_equals_fresh_schema(tmp_path):
    """Migrating a frozen v1 file yields exactly the schema a new file gets, so migration 1 was not edited."""
    old = tmp_path / "old" / "xesync.db"
    build_v1(old)
    Store.open(old).close()
    new = tmp_path / "new" / "xesync.db"
    Store.open(new).close()
    assert schema(old) == schema(new)


def test_reopening_migrates_nothing(db):
    """Opening a current store again applies no migration."""
    Store.open(db).close()
    with capture_logs() as logs, Store.open(db):
        pass
    assert [e for e in logs if e["event"] == events.STORE_MIGRATED] == []


def test_newer_schema_is_refused(db):
    """A file from a newer release is refused with both versions, and left untouched."""
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreVersionError) as err:
        Store.open(db)
    assert (err.value.found, err.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "newer" in str(err.value)
    assert str(db) in str(err.value)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_failed_migration_rolls_back_only_its_own_step(db):
    """A migration that fails leaves the file at the last completed version, with nothing half-applied."""
    broken = (
        *store.MIGRATIONS,
        store.Migration(SCHEMA_VERSION + 1, "broken", ("CREATE TABLE extra (x)", "CREATE TABLE record (x)")),
    )
    Store.open(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        with pytest.raises(StoreMigrationError, match="already exists") as err:
            store_setup._migrate(conn, db, broken)
        assert err.value.version == SCHEMA_VERSION + 1
        assert err.value.path == str(db)
        assert isinstance(err.value.__cause__, sqlite3.OperationalError)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0
        assert not conn.in_transaction
    finally:
        conn.close()


def test_misnumbered_migrations_are_caught():
    """Migrations must be numbered 1, 2, 3 … in order."""
    store_setup._check_migrations(store.MIGRATIONS)
    with pytest.raises(RuntimeError, match="count up"):
        store_setup._check_migrations((store.MIGRATIONS[1], store.MIGRATIONS[0]))


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


def test_a_second_writer_gets_a_retryable_busy_error(tmp_path):
    """A writer that cannot get the lock within the busy timeout gets StoreBusyError, a TransientError."""
    path = tmp_path / "state" / "xesync.db"
    with Store.open(path) as first, Store.open(path, busy_timeout=timedelta(milliseconds=50)) as second:
        with first.transaction(), pytest.raises(StoreBusyError) as err, second.transaction():
            pass
        assert isinstance(err.value, TransientError)
        assert err.value.path == str(path)
        with second.transaction() as tx:
            assert tx.records("room") == []


def test_opening_a_store_another_process_writes_is_busy_not_unusable(tmp_path):
    """A new file another connection holds locked makes Store.open raise StoreBusyError, not 'not usable'."""
    path = tmp_path / "state" / "xesync.db"
    path.parent.mkdir(mode=0o700)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE held (x)")
        with pytest.raises(StoreBusyError) as err:
            Store.open(path, busy_timeout=timedelta(milliseconds=50))
        assert err.value.path == str(path)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_migrating_while_another_writer_holds_the_lock_is_busy(db):
    """Store.open waiting on a writer's lock to migrate raises StoreBusyError, not sqlite3's error."""
    Store.open(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreBusyError):
            Store.open(db, busy_timeout=timedelta(milliseconds=50))
    finally:
        other.execute("ROLLBACK")
        other.close()
