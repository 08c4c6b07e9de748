"""The state store's file and schema: a 0700 directory and 0600 files, refusal of files that are not
ours, migrations from a frozen v1, and the schema-version guard."""

from __future__ import annotations

import re
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_kit import OCC, ROOM, UID, make_check, make_record
from structlog.testing import capture_logs

from xesync import events, store, store_setup
from xesync.errors import StoreError, StoreMigrationError, StoreVersionError
from xesync.model import RoomSyncState
from xesync.store import SCHEMA_VERSION, Store

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


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return [(t, n, re.sub(r"\s+", " ", sql or "")) for t, n, sql in rows]


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
