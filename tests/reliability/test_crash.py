"""Crash consistency: xesync SIGKILLed at random and at the dangerous points while meetings churn.

A lab user creates, moves, re-rooms and cancels meetings through unmodified exchangelib; between
bursts of churn ``xesync sync`` runs as a subprocess (``crashing_xesync.py``) that kills itself with
SIGKILL at a chosen point: at a random HTTP request (before it leaves, or after its answer arrived),
or at the named dangerous points — after the TMS save before anything else, after the room
write-back before the store write, after the store write, and inside the room's final transaction
after the sync state was written but before the commit. Each kill is followed by the next run on the
same state directory, as systemd restarts the service. At the end, after clean passes, TMS must hold
exactly the expected conferences (no duplicate, no loss, right owner, right rooms, right times) and
every room copy must be accepted with exactly one dial-in block.

The kills here hit repeated ``xesync sync`` processes (the same engine on the same store), which
lets every named point be reached on purpose; ``test_daemon.py`` kills ``xesync run`` itself.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ews_lab import LabOrganiser
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, CalendarItem
from rkit import NO_FUSE, scale, seed, write_config

from xesync import dialin
from xesync.adapters.exchange import ExchangeCalendarSource
from xesync.adapters.exchange_items import response_of
from xesync.adapters.tms import TmsBookingSink
from xesync.lab.tms import control as tms_control
from xesync.meetings import Response, external_key

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
OSLO_TZ = ZoneInfo("Europe/Oslo")
ROOMS = {"room-oslo@lab.example": 11, "room-bergen@lab.example": 12, "room-tromso@lab.example": 13}
NAMED = ("after_tms_save", "after_room_writeback", "after_store_write", "mid_sync_state")
KILLS = 12  # x XESYNC_RELIABILITY_SCALE
OPERATIONS = 48  # x XESYNC_RELIABILITY_SCALE


@dataclass
class Meeting:
    """What the organiser last sent: the expected state of one meeting."""

    index: int
    uid: str
    rooms: list[str]
    slot: int = 0  # 0 or 1: each meeting toggles between two slots of its own, so nothing conflicts
    cancelled: bool = False
    rerooms: int = 0

    def times(self, base: datetime) -> tuple[datetime, datetime]:
        """The meeting's start and end in its current slot (Oslo wall time)."""
        day = (base + timedelta(days=2 + self.index // 4)).astimezone(OSLO_TZ).date()
        hour = 7 + 2 * (self.index % 4) + self.slot
        start = datetime(day.year, day.month, day.day, hour, tzinfo=OSLO_TZ)
        return start, start + timedelta(minutes=45)


@dataclass
class Churn:
    """Alice's meetings, changed at random through exchangelib."""

    organiser: LabOrganiser
    rng: random.Random
    base: datetime
    meetings: list[Meeting] = field(default_factory=list)
    items: dict[str, Any] = field(default_factory=dict)
    operations: dict[str, int] = field(default_factory=dict)

    def step(self) -> None:
        """One random change: create (always possible), move, re-room or cancel a live meeting."""
        live = [m for m in self.meetings if not m.cancelled]
        kind = self.rng.choice(["create", "create", "move", "reroom", "cancel"]) if live else "create"
        self.operations[kind] = self.operations.get(kind, 0) + 1
        if kind == "create":
            self._create()
            return
        meeting = self.rng.choice(live)
        item = self.items[meeting.uid]
        item.refresh()
        if kind == "move":
            meeting.slot = 1 - meeting.slot
            start, end = meeting.times(self.base)
            item.start, item.end = EWSDateTime.from_datetime(start), EWSDateTime.from_datetime(end)
            item.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        elif kind == "reroom":
            others = [r for r in ROOMS if r not in meeting.rooms]
            meeting.rooms = sorted(self.rng.sample(list(ROOMS), self.rng.randint(1, 2)) if not others else
                                   {*self.rng.sample(meeting.rooms, 1), self.rng.choice(others)})  # fmt: skip
            item.resources = meeting.rooms
            meeting.rerooms += 1
            item.save(update_fields=["resources"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        else:
            meeting.cancelled = True
            item.cancel()

    def _create(self) -> None:
        index = len(self.meetings)
        rooms = sorted(self.rng.sample(list(ROOMS), self.rng.choice([1, 1, 2])))
        meeting = Meeting(index=index, uid="", rooms=rooms)
        start, end = meeting.times(self.base)
        account = self.organiser.account
        item = CalendarItem(
            account=account, folder=account.calendar, subject=f"Crash churn {index}",
            start=EWSDateTime.from_datetime(start).astimezone(EWSTimeZone("Europe/Oslo")),
            end=EWSDateTime.from_datetime(end).astimezone(EWSTimeZone("Europe/Oslo")), resources=rooms,
        )  # fmt: skip
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        item.refresh()
        meeting.uid = str(item.uid)
        self.items[meeting.uid] = item
        self.meetings.append(meeting)


def run_xesync(config: Path, log: Path, point: str | None) -> int:
    """One ``xesync sync`` process on the config's state, with ``point`` armed; its exit code."""
    env = {k: v for k, v in os.environ.items() if k != "XESYNC_KILL_POINT"}
    if point:
        env["XESYNC_KILL_POINT"] = point
    with log.open("ab") as out:
        out.write(f"--- kill point {point}\n".encode())
        out.flush()
        done = subprocess.run(
            [sys.executable, str(HERE / "crashing_xesync.py"), "sync", "-c", str(config)],
            env=env, stdout=out, stderr=out, timeout=120, check=False,
        )  # fmt: skip
    return done.returncode


def choose_point(rng: random.Random, attempt: int, kills: dict[str, int]) -> str:
    """Every other attempt the named point killed least so far; else a random request, before or after."""
    if attempt % 2 == 0:
        named = min(NAMED, key=lambda k: kills.get(k, 0))
        return f"{named}:{rng.randint(1, 2)}"
    return f"request:{rng.randint(1, 30)}:{rng.choice(['before', 'after'])}"


def test_sigkill_at_random_and_dangerous_points_loses_and_duplicates_nothing(lab, tmp_path):
    """Killed at random and at every dangerous point while meetings churn, xesync ends with TMS holding
    exactly the expected conferences (owner, rooms, times) and every room copy accepted with one block."""
    rng = random.Random(seed())  # noqa: S311 - test data, not secrets
    now = datetime.now(UTC)
    lab.clock.set(now)  # xesync's processes read the wall clock
    cfg = write_config(lab, tmp_path, sync=NO_FUSE)
    config = cfg.source
    log = tmp_path / "runs.log"
    organiser = LabOrganiser(lab, "room-tromso@lab.example")
    churn = Churn(organiser, rng, now)
    kills, runs, by_point = 0, 0, {}
    target, per_round = KILLS * scale(), max(1, OPERATIONS * scale() // (KILLS * scale()))
    try:
        attempt = 0
        while kills < target and attempt < target * 4:
            for _ in range(per_round):
                churn.step()
            point = choose_point(rng, attempt, by_point)
            attempt += 1
            code = run_xesync(config, log, point)
            runs += 1
            if code == -9:
                kills += 1
                kind = point.split(":")[0]
                by_point[kind] = by_point.get(kind, 0) + 1
            else:
                assert code == 0, log.read_text()[-3000:]
        clean = [run_xesync(config, log, None) for _ in range(2)]
        assert clean == [0, 0], log.read_text()[-3000:]
        verdict = verify(lab, cfg, churn)
    finally:
        organiser.close()
    print(
        f"\nRELIABILITY crash: seed={seed()} scale={scale()} operations={sum(churn.operations.values())} "
        f"{churn.operations} meetings={len(churn.meetings)} runs={runs + 2} kills={kills} {by_point} "
        f"duplicates={verdict['duplicates']} losses={verdict['losses']} orphans={verdict['orphans']} "
        f"wrong={len(verdict['wrong'])}"
    )
    for line in (*verdict["wrong"], *map(str, verdict["extra"])):
        print("  ", line)
    assert kills >= target, (kills, runs)
    assert set(by_point) >= {*NAMED, "request"}
    assert verdict["duplicates"] == 0, (verdict, churn.meetings)
    assert verdict["losses"] == 0
    assert verdict["wrong"] == [], verdict
    # An orphan would be a cancelled meeting's conference left in TMS: the engine stores a pending
    # booking before its first save, so a cancel after any kill finds it and deletes it by key.
    assert verdict["orphans"] == 0


def verify(lab, cfg, churn: Churn) -> dict[str, Any]:
    """Compare TMS and the room calendars with what the organiser last sent."""
    live_conferences = [c for c in tms_control.conferences(lab.tms) if not c["deleted"]]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for conference in live_conferences:
        by_key.setdefault(conference["external_primary_key"], []).append(conference)
    expected = {external_key(m.uid): m for m in churn.meetings if not m.cancelled}
    cancelled = {external_key(m.uid) for m in churn.meetings if m.cancelled}
    # An orphan: a conference left for a meeting cancelled while xesync lay killed between the TMS save
    # and the store write (test_a_cancel_after_a_kill… below shows the engine now prevents it).
    orphans = len(set(by_key) & cancelled)
    duplicates = sum(len(v) - 1 for v in by_key.values()) + len(set(by_key) - set(expected) - cancelled)
    extra = [
        (c["conference_id"], c["title"], c["systems"]) for k, v in by_key.items() for c in v
        if len(v) > 1 or k not in expected
    ]  # fmt: skip
    losses = len(set(expected) - set(by_key))
    now = lab.clock.now()
    window = (now, now + timedelta(days=180))
    source = ExchangeCalendarSource(cfg.exchange, cfg.rooms, cfg.sync.lookahead)
    tms = TmsBookingSink(cfg.tms)
    try:
        copies = {room: {i.uid: i for i in source.changes(room, None, window=window).items} for room in ROOMS}
    finally:
        source.close()
    try:
        wrong = _compare(churn, by_key, expected, copies, tms)
    finally:
        tms.close()
    return {"duplicates": duplicates, "losses": losses, "orphans": orphans, "wrong": wrong, "extra": extra}


def _compare(churn: Churn, by_key, expected, copies, tms) -> list[str]:
    wrong: list[str] = []
    for key, meeting in expected.items():
        found = by_key.get(key, [])
        if len(found) == 1:
            wrong += _conference_wrong(churn, meeting, found[0], tms.find(key))
            wrong += _rooms_wrong(churn, meeting, copies)
    return wrong


def _conference_wrong(churn: Churn, meeting: Meeting, conference, saved) -> list[str]:
    wrong = []
    start, _ = meeting.times(churn.base)
    systems = sorted(ROOMS[r] for r in meeting.rooms)
    (occurrence,) = conference["occurrences"]
    if sorted(conference["systems"]) != systems:
        wrong.append(f"{meeting.index}: systems {conference['systems']} != {systems}")
    if occurrence["start"] != start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"):
        wrong.append(f"{meeting.index}: start {occurrence['start']} != {start}")
    if saved is None or saved.owner_username.lower() != "lab\\alice":
        wrong.append(f"{meeting.index}: owner {saved and saved.owner_username}")
    return wrong


def _rooms_wrong(churn: Churn, meeting: Meeting, copies) -> list[str]:
    wrong = []
    for room in meeting.rooms:
        copy = copies[room].get(meeting.uid)
        if copy is None or copy.cancelled:
            wrong.append(f"{meeting.index}: no live copy in {room}")
            continue
        blocks = dialin.find(copy.body, is_html=copy.body_is_html)
        if len(blocks) != 1:
            wrong.append(f"{meeting.index}: {len(blocks)} dial-in blocks in {room}")
        if copy.response is not Response.ACCEPT:
            wrong.append(f"{meeting.index}: {room} answered {copy.response}")
    if meeting.rerooms:
        # exchangelib sends the whole new resource list on a re-room, and the lab then shows the
        # organiser's tracking reset for every room, the kept ones too; what Exchange does here is
        # [unconfirmed], so the organiser's view is checked only for meetings never re-roomed (the
        # room copies above are checked for all).
        return wrong
    item = churn.items[meeting.uid]
    item.refresh()
    wrong += [
        f"{meeting.index}: organiser sees {a.mailbox.email_address} not accepted"
        for a in item.resources or ()
        if response_of(a.response_type) is not Response.ACCEPT
    ]
    return wrong


def test_a_cancel_after_a_kill_between_tms_save_and_store_write_deletes_the_conference(lab, tmp_path):
    """Killed right after its first TMS save, then the meeting is cancelled: the next run deletes it."""
    now = datetime.now(UTC)
    lab.clock.set(now)
    cfg = write_config(lab, tmp_path)
    log = tmp_path / "runs.log"
    organiser = LabOrganiser(lab, "room-tromso@lab.example")
    try:
        churn = Churn(organiser, random.Random(seed()), now)  # noqa: S311 - test data, not secrets
        churn._create()
        assert run_xesync(cfg.source, log, "after_tms_save:1") == -9
        live = [c for c in tms_control.conferences(lab.tms) if not c["deleted"]]
        assert len(live) == 1, live
        churn.items[churn.meetings[0].uid].cancel()
        assert run_xesync(cfg.source, log, None) == 0, log.read_text()[-2000:]
    finally:
        organiser.close()
    assert [c for c in tms_control.conferences(lab.tms) if not c["deleted"]] == []
