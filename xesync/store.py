"""The state store: one SQLite file holding what xesync last synced, and why.

It holds each room's EWS sync state, the record of every meeting and occurrence (see the
Terminology in :mod:`xesync.model`), the licence checks made on Cisco Meeting Server, and an audit
trail of every decision. Writes happen in units of work::

    with store.transaction() as tx:
        tx.upsert_record(record)
        tx.put_room_state(RoomSyncState(room=room, sync_state=new_state, updated_at=now))

A unit of work commits as a whole or not at all: the engine stores a room's records and its EWS
sync state in one transaction, so that a crash can never leave a sync state that claims changes the
records do not hold (ews.md §1.7; vdirsyncer ``status.py`` swaps in its ``new_status`` the same way).

- **Durability:** WAL journal with ``synchronous=FULL``. NORMAL would be faster, but in WAL mode it
  may lose the last commits on power loss, and a lost commit here is a booking TMS has and we forgot.
  At one transaction per room per run, the extra fsync costs nothing that matters.
- **Threads:** a :class:`Store` owns one connection, opened with ``check_same_thread=False`` and
  guarded by a re-entrant lock. A transaction holds the lock from ``BEGIN`` to ``COMMIT``, so the
  daemon's jobs serialise their writes and a read from another thread waits for the commit instead
  of seeing half of it. Other processes (``xesync status`` beside the daemon) open their own
  :class:`Store`; SQLite's locks and the busy timeout arbitrate between them.
- **Privacy:** the directory is 0700 and the file 0600 (it names every organiser). The file is
  created with ``os.open(..., 0o600)`` before SQLite opens it; SQLite gives ``-wal`` and ``-shm``
  the database file's mode.
- **Schema:** ``PRAGMA user_version`` is the number of :data:`MIGRATIONS` applied. Migrations only go
  forward, each in its own transaction with its version bump; a file from a newer release is refused.
  The migrations and the row codecs live in :mod:`xesync.store_schema`; :class:`Migration`,
  :data:`MIGRATIONS` and :data:`SCHEMA_VERSION` are re-exported here.
- **Reads by topic** are mixins: bookings and the engine's per-meeting look-ups in
  :mod:`xesync.store_bookings`, the audit trail and licence checks in :mod:`xesync.store_trail`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

import structlog

from xesync import events
from xesync.errors import StoreBusyError
from xesync.model import AuditEntry, Booking, LicenceCheck, RoomSyncState, SyncRecord
from xesync.store_bookings import BookingQueries, upsert_booking
from xesync.store_schema import (
    AUDIT_COLUMNS,
    LICENCE_COLUMNS,
    MIGRATIONS,
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    Migration,
    audit_row,
    encode_occurrence,
    encode_ts,
    licence_check_row,
    record_from_row,
    record_row,
    room_state_from_row,
)
from xesync.store_setup import (
    DEFAULT_BUSY_TIMEOUT,
    DIR_MODE,
    FILE_MODE,
    _configure,
    _is_busy,
    _migrate,
    _rollback,
    _secure,
    _user_version,
)
from xesync.store_trail import TrailQueries

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "DIR_MODE",
    "FILE_MODE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Store",
    "Transaction",
]

log = structlog.get_logger("xesync.store")
T = TypeVar("T")
RECORD_COLUMN_COUNT: Final = len(RECORD_COLUMNS.split(", "))
LICENCE_COLUMN_COUNT: Final = len(LICENCE_COLUMNS.split(", "))


# -- reads shared by Store (committed data) and Transaction (inside a unit of work) -----------------


def _select_records(conn: sqlite3.Connection, room: str) -> list[SyncRecord]:
    rows = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM record WHERE room = ? ORDER BY start_at, uid, occurrence",  # noqa: S608 - constants only
        (room,),
    )
    return [record_from_row(row) for row in rows]


def _select_record(
    conn: sqlite3.Connection, room: str, uid: str, occurrence: datetime | None
) -> SyncRecord | None:
    row = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM record WHERE room = ? AND uid = ? AND occurrence = ?",  # noqa: S608 - constants only
        (room, uid, encode_occurrence(occurrence)),
    ).fetchone()
    return None if row is None else record_from_row(row)


def _select_room_state(conn: sqlite3.Connection, room: str) -> RoomSyncState | None:
    row = conn.execute(
        "SELECT room, sync_state, updated_at, fuse_held FROM room_state WHERE room = ?", (room,)
    ).fetchone()
    return None if row is None else room_state_from_row(row)


class Transaction(BookingQueries):
    """One unit of work, from ``BEGIN IMMEDIATE`` to ``COMMIT``; get it from :meth:`Store.transaction`.

    Every method raises ``RuntimeError`` once the ``with`` block has ended: between transactions the
    connection is in autocommit mode, and a stray write must not commit on its own.
    """

    __slots__ = ("_conn", "_open")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._open = True

    def _run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        return query(self._c())

    def upsert_booking(self, booking: Booking) -> None:
        """Insert the booking, or replace every field of the one with the same key."""
        upsert_booking(self._c(), booking)

    @contextmanager
    def savepoint(self, name: str = "unit") -> Iterator[None]:
        """A nested unit inside the transaction: its writes are undone alone if the block raises.

        The engine writes each meeting's outcome under its own savepoint, so that a meeting whose
        rows cannot be written rolls back alone and the room's other meetings still commit.
        """
        conn = self._c()
        label = "sp_" + "".join(ch for ch in name if ch.isalnum())[:40]
        conn.execute(f"SAVEPOINT {label}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {label}")
            conn.execute(f"RELEASE {label}")
            raise
        conn.execute(f"RELEASE {label}")

    def _c(self) -> sqlite3.Connection:
        if not self._open:
            msg = "the transaction has ended; open a new one with store.transaction()"
            raise RuntimeError(msg)
        return self._conn

    def _end(self) -> None:
        self._open = False

    def room_state(self, room: str) -> RoomSyncState | None:
        """Return the room's stored EWS sync state, or ``None`` if none was ever stored."""
        return _select_room_state(self._c(), room)

    def put_room_state(self, state: RoomSyncState) -> None:
        """Store the room's EWS sync state (``sync_state=None`` makes the next sync start over)."""
        self._c().execute(
            "INSERT INTO room_state (room, sync_state, updated_at, fuse_held) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (room) DO UPDATE SET room = excluded.room, sync_state = excluded.sync_state, "
            "updated_at = excluded.updated_at, fuse_held = excluded.fuse_held",
            (state.room, state.sync_state, encode_ts(state.updated_at), json.dumps(sorted(state.fuse_held))),
        )

    def records(self, room: str) -> list[SyncRecord]:
        """Return the room's records, by start, UID and occurrence."""
        return _select_records(self._c(), room)

    def record(self, room: str, uid: str, occurrence: datetime | None = None) -> SyncRecord | None:
        """Return the record for ``(room, uid, occurrence)``, or ``None``."""
        return _select_record(self._c(), room, uid, occurrence)

    def upsert_record(self, record: SyncRecord) -> None:
        """Insert the record, or replace every field of the one with the same key."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in RECORD_COLUMNS.split(", "))
        self._c().execute(
            f"INSERT INTO record ({RECORD_COLUMNS}) VALUES ({', '.join('?' * RECORD_COLUMN_COUNT)}) "  # noqa: S608 - constants only
            f"ON CONFLICT (room, uid, occurrence) DO UPDATE SET {updates}",
            record_row(record),
        )

    def delete_record(self, room: str, uid: str, occurrence: datetime | None = None) -> bool:
        """Delete the record for ``(room, uid, occurrence)``; return whether there was one."""
        cur = self._c().execute(
            "DELETE FROM record WHERE room = ? AND uid = ? AND occurrence = ?",
            (room, uid, encode_occurrence(occurrence)),
        )
        return cur.rowcount > 0

    def add_audit(self, entry: AuditEntry) -> int:
        """Append a decision to the audit trail; return its id.

        :raises TypeError: a ``details`` value JSON cannot represent (convert datetimes first, so
            that what is read back equals what was written).
        :raises ValueError: a ``details`` value is a NaN or an infinite float.
        """
        row = audit_row(entry)
        cur = self._c().execute(
            f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constants only
            row,
        )
        return _rowid(cur)

    def add_licence_check(self, check: LicenceCheck) -> int:
        """Append the result of one Cisco Meeting Server licence check; return its id."""
        cur = self._c().execute(
            f"INSERT INTO licence_check ({LICENCE_COLUMNS}) VALUES ({', '.join('?' * LICENCE_COLUMN_COUNT)})",  # noqa: S608 - constants only
            licence_check_row(check),
        )
        return _rowid(cur)


def _rowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:  # pragma: no cover - an INSERT into a rowid table always sets it
        msg = "SQLite reported no rowid for an INSERT"
        raise RuntimeError(msg)
    return cur.lastrowid


class Store(BookingQueries, TrailQueries):
    """The state store; open it with :meth:`Store.open`, and close it or use it as a context manager.

    Its read methods see committed data (and, in a thread that has a transaction open, that
    transaction's writes; use the :class:`Transaction`'s methods there).
    """

    def __init__(
        self, conn: sqlite3.Connection, path: Path, busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT
    ) -> None:
        """Wrap an open, migrated connection; use :meth:`Store.open` rather than calling this."""
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._busy_timeout = busy_timeout
        self.path = path

    @classmethod
    def open(cls, path: Path, *, busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT) -> Store:
        """Open (creating if need be) the store at ``path`` and migrate it to :data:`SCHEMA_VERSION`.

        :param path: the database file, e.g. ``sync.database`` from the configuration.
        :param busy_timeout: how long to wait for another process's write lock.
        :raises StoreVersionError: the file was written by a newer release.
        :raises StoreMigrationError: SQLite refused a migration step (disk full, I/O error).
        :raises StoreBusyError: another process held the file's lock past ``busy_timeout``.
        :raises StoreError: the directory or file cannot be created or made private, the file is not
            an xesync store, or the file system cannot do WAL.
        :returns: the open store.
        """
        path = Path(path)
        _secure(path)
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout.total_seconds(),
            # Autocommit at the driver level: transactions are opened explicitly (BEGIN IMMEDIATE),
            # because the sqlite3 module's implicit BEGIN is deferred and can fail mid-transaction.
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.row_factory = sqlite3.Row
            _configure(conn, path, busy_timeout)
            version = _migrate(conn, path, busy_timeout=busy_timeout)
        except BaseException:
            conn.close()
            raise
        log.info(events.STORE_OPENED, path=str(path), schema_version=version)
        return cls(conn, path, busy_timeout)

    def close(self) -> None:
        """Close the connection; a second call does nothing."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # A bug in the caller, not a problem the user can fix: no XesyncError, so the boundary
            # logs the traceback.
            msg = f"the state store {self.path} is closed; open it again with Store.open()"
            raise RuntimeError(msg)
        return self._conn

    @property
    def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        with self._lock:
            return _user_version(self._connection())

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One unit of work: ``BEGIN IMMEDIATE``, commit when the block ends, roll back if it raises.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so a second writer waits (up to the busy
        timeout) at the start instead of failing half-way on a lock upgrade.

        :raises RuntimeError: this thread already has a transaction of this store open; units of
            work do not nest (pass the :class:`Transaction` down instead). Or the store is closed.
        :raises StoreBusyError: another process held the write lock past the busy timeout.
        :returns: a context manager yielding the :class:`Transaction`, usable only inside the block.
        """
        with self._lock:
            conn = self._connection()
            if conn.in_transaction:
                msg = f"a transaction on {self.path} is already open; units of work do not nest"
                raise RuntimeError(msg)
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise StoreBusyError(str(self.path), self._busy_timeout.total_seconds()) from exc
                raise
            tx = Transaction(conn)
            try:
                yield tx
                tx._end()  # noqa: SLF001 - the store owns its transactions
                conn.execute("COMMIT")
            except BaseException:
                tx._end()  # noqa: SLF001
                _rollback(conn)
                raise

    def _run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return query(self._connection())

    def records(self, room: str) -> list[SyncRecord]:
        """Return the room's records, by start, UID and occurrence."""
        with self._lock:
            return _select_records(self._connection(), room)

    def record(self, room: str, uid: str, occurrence: datetime | None = None) -> SyncRecord | None:
        """Return the record for ``(room, uid, occurrence)``, or ``None``."""
        with self._lock:
            return _select_record(self._connection(), room, uid, occurrence)

    def records_for_conference(self, conference_id: int) -> list[SyncRecord]:
        """Return the records mapped to TMS conference ``conference_id`` (one per room it books)."""
        with self._lock:
            rows = self._connection().execute(
                f"SELECT {RECORD_COLUMNS} FROM record WHERE conference_id = ? "  # noqa: S608 - constants only
                "ORDER BY room, uid, occurrence",
                (conference_id,),
            )
            return [record_from_row(row) for row in rows]

    def room_state(self, room: str) -> RoomSyncState | None:
        """Return the room's stored EWS sync state, or ``None`` if none was ever stored."""
        with self._lock:
            return _select_room_state(self._connection(), room)

    def room_states(self) -> list[RoomSyncState]:
        """Return every room's stored sync state, by room key."""
        with self._lock:
            rows = self._connection().execute(
                "SELECT room, sync_state, updated_at, fuse_held FROM room_state ORDER BY room"
            )
            return [room_state_from_row(row) for row in rows]

    def prune_audit(self, before: datetime) -> int:
        """Delete the audit entries written before ``before`` (housekeeping); return how many went."""
        with self.transaction() as tx:
            cur = tx._c().execute("DELETE FROM audit WHERE at < ?", (encode_ts(before),))  # noqa: SLF001
            return int(cur.rowcount)

    def optimize(self) -> None:
        """``PRAGMA optimize``: let SQLite refresh the statistics its planner uses (housekeeping)."""
        with self._lock:
            self._connection().execute("PRAGMA optimize")
