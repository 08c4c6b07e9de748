"""The state store's units of work and locking: rollback, nesting, readers in other threads, a closed
store, and a second writer or opener that meets a held lock (StoreBusyError)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta

import pytest
from store_kit import OCC, ROOM, T0, UID, make_audit, make_check, make_record

from xesync.errors import StoreBusyError, StoreError, TransientError, UserError, XesyncError
from xesync.model import BookingStatus, RoomSyncState, SyncRecord
from xesync.store import Store


class BoomError(Exception):
    """Raised inside a unit of work to make it roll back."""


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
