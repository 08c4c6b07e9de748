"""The daemon's units of work without a scheduler: stream groups, wake-ups during a pass, housekeeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from xesync.adapters.exchange_stream import GROUP_SIZE, group_rooms
from xesync.daemon_jobs import Passes
from xesync.engine import RoomReport, SyncReport
from xesync.health import HealthBook
from xesync.metrics import Metrics
from xesync.model import AuditEntry, AuditOutcome
from xesync.store import Store


def test_rooms_are_streamed_in_groups_of_at_most_200_in_order():
    """401 rooms make three groups of 200, 200 and 1, each anchored on its first room."""
    rooms = [f"room-{i}@example.com" for i in range(401)]
    groups = group_rooms(rooms)
    assert [len(g) for g in groups] == [GROUP_SIZE, GROUP_SIZE, 1]
    assert [g[0] for g in groups] == [rooms[0], rooms[200], rooms[400]]


class _Engine:
    """An engine whose first pass over a room waits until the test lets it go."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def sync(self, rooms: list[str], *, full: bool = False) -> SyncReport:  # noqa: ARG002 - the engine's signature
        self.calls.append(list(rooms))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(10)
        return SyncReport(run_id="t", rooms=[RoomReport(room=r) for r in rooms])


def test_a_wake_up_during_a_pass_runs_the_room_once_more_and_is_not_lost():
    """A room woken while its pass runs gets exactly one more pass, and the busy wake-up pokes nothing."""
    engine = _Engine()
    pokes: list[str] = []
    book = HealthBook(["a@x"], threshold=timedelta(minutes=5))
    passes = Passes(
        engine, ["a@x"], book=book, metrics=Metrics(book), stopping=threading.Event(), poke=pokes.append
    )  # type: ignore[arg-type]
    worker = threading.Thread(target=passes.run_room, args=("a@x",))
    worker.start()
    assert engine.entered.wait(10)
    passes.wake(["a@x"], reason="notification")
    assert passes.backlog() == 1
    engine.release.set()
    worker.join(10)
    assert engine.calls == [["a@x"], ["a@x"]]
    assert pokes == []
    assert passes.backlog() == 0
    assert book.rooms()[0].last_good_pass is not None


def test_housekeeping_prunes_only_audit_entries_past_the_retention(tmp_path):
    """prune_audit deletes the entries written before the cut-off and keeps the newer ones."""
    now = datetime(2027, 3, 1, tzinfo=UTC)
    with Store.open(tmp_path / "x.db") as store:
        with store.transaction() as tx:
            for days in (400, 10):
                tx.add_audit(
                    AuditEntry(
                        at=now - timedelta(days=days),
                        run_id="r",
                        room="a@x",
                        uid=f"u{days}",
                        action="create_booking",
                        outcome=AuditOutcome.APPLIED,
                        reason="",
                    )
                )
        assert store.prune_audit(now - timedelta(days=365)) == 1
        store.optimize()
        assert [e.uid for e in store.audit()] == ["u10"]
