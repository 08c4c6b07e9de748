"""A writer killed with SIGKILL mid-write leaves a consistent store with exactly its committed units."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xesync.store import Store

ROOT = Path(__file__).resolve().parents[2]
ROOM = "crash@example.com"
PER_TX = 200

# The child writes unit of work n as: PER_TX new records "tx<n>-<i>", an update of the shared record
# "counter" to version n, and the room's sync state "n". It prints "committed <n>" after each commit.
# With a pause point it prints "mid <n> <bytes>" half-way through unit n and then blocks on stdin, so that
# the kill lands inside an open transaction. A tiny page cache makes SQLite spill the uncommitted
# pages into the WAL before that, so the file on disk really holds half a transaction.
CHILD = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from xesync.model import BookingStatus, RoomSyncState, SyncRecord
from xesync.store import Store

# stdout is the progress pipe; logs go to stderr.
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
path, per_tx, pause_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = datetime(2025, 1, 1, tzinfo=UTC)


def record(uid, n):
    return SyncRecord(
        room="crash@example.com", uid=uid, conference_id=n, version=n, content_hash=f"h{n}",
        status=BookingStatus.BOOKED, organiser="alice@example.com", start=t0 + timedelta(minutes=n),
        end=t0 + timedelta(minutes=n + 30), subject="x" * 300, updated_at=t0,
    )


wal = Path(f"{path}-wal")
with Store.open(path) as store:
    store._connection().execute("PRAGMA cache_size = 8")
    n = 0
    while True:
        n += 1
        with store.transaction() as tx:
            wal_before = wal.stat().st_size if wal.exists() else 0
            for i in range(per_tx):
                tx.upsert_record(record(f"tx{n}-{i}", n))
                if n == pause_at and i == per_tx // 2:
                    # The second number is how far the uncommitted half has grown the WAL on disk.
                    sys.stdout.write(f"mid {n} {wal.stat().st_size - wal_before}\\n")
                    sys.stdout.flush()
                    sys.stdin.read()
            tx.upsert_record(record("counter", n))
            tx.put_room_state(RoomSyncState(room="crash@example.com", sync_state=str(n), updated_at=t0))
        sys.stdout.write(f"committed {n}\\n")
        sys.stdout.flush()
"""


def run_and_kill(db: Path, *, pause_at: int, kill_after: int) -> tuple[int, int]:
    """Start the writer, SIGKILL it once it has committed ``kill_after`` units (and paused, if asked).

    Returns the number of commits the child reported before it was killed, and how many bytes of
    uncommitted pages it had spilled into the WAL when it paused (0 without a pause).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(PER_TX), str(pause_at)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    committed = spilled = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, number, *rest = line.split()
            if word == "committed":
                committed = int(number)
            if word == "mid":
                spilled = int(rest[0])
            if committed >= kill_after and (pause_at == 0 or word == "mid"):
                break
        else:
            assert proc.stderr is not None
            pytest.fail(f"writer exited early ({proc.wait()}): {proc.stderr.read()}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return committed, spilled


@pytest.mark.parametrize(
    ("pause_at", "kill_after"),
    [(6, 5), (0, 5)],
    ids=["inside-open-transaction", "free-running"],
)
def test_killed_writer_leaves_exactly_committed_units(tmp_path, pause_at, kill_after):
    """After SIGKILL the store passes integrity_check and holds every committed unit and nothing else."""
    db = tmp_path / "state" / "xesync.db"
    reported, spilled = run_and_kill(db, pause_at=pause_at, kill_after=kill_after)
    if pause_at:
        # Otherwise the half-written unit would only have been in the child's memory, proving little.
        assert spilled > 0, "the open transaction never reached the WAL file"

    with Store.open(db) as store:
        conn = store._connection()
        assert [tuple(row) for row in conn.execute("PRAGMA integrity_check")] == [("ok",)]
        state = store.room_state(ROOM)
        assert state is not None
        assert state.sync_state is not None
        units = int(state.sync_state)
        if pause_at:
            # Killed inside unit pause_at: it must have vanished whole.
            assert units == reported == pause_at - 1
        else:
            # The last unit may have committed between the child's print and the kill.
            assert units in (reported, reported + 1)

        records = store.records(ROOM)
        expected = {f"tx{n}-{i}" for n in range(1, units + 1) for i in range(PER_TX)} | {"counter"}
        assert {r.uid for r in records} == expected
        assert len(records) == len(expected)
        counter = store.record(ROOM, "counter")
        assert counter is not None
        assert counter.version == units
        assert all(r.version == int(r.uid[2:].split("-")[0]) for r in records if r.uid != "counter")

        # The store is writable after recovery.
        with store.transaction() as tx:
            tx.delete_record(ROOM, "counter")
        assert store.record(ROOM, "counter") is None
