"""One side of the benchmark in its own process: xesync's engine, or a TMSXE-style calendar-view poller.

    .venv/bin/python -m bench.worker --side xesync|baseline --config xesync.toml

The orchestrator (:mod:`bench.run`) writes one JSON command a line on stdin and reads one JSON answer a
line on stdout; it measures this process (peak RSS, CPU seconds) from ``/proc``. Logs go to stderr, which
the orchestrator sends to a file.

- ``{"cmd": "pass"}``: one pass over every room; answers ``{"seconds", "failed_rooms", "meetings"}``.
- ``{"cmd": "quit"}``: close and exit.

**xesync** is the production engine as ``xesync sync`` builds it (:func:`xesync.wiring.build`): incremental
``SyncFolderItems`` with the stored sync state, then TMS and the room write-back.

**The baseline** does what a TMSXE-style poller does on each interval: for every room, one ``FindItem``
``CalendarView`` over the look-ahead (UID, subject, times, organiser, changekey), compared with what it saw
last; a new or changed meeting is saved to TMS (``SaveConference`` by external key, through xesync's own
TMS adapter, under its own ``ExternalSourceId``), a meeting that spans rooms once with all of them. It books
a series as one conference at its first occurrence in the view and writes nothing back to the room; both
make it cheaper than the real thing, so its figures flatter it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xesync import config as config_mod
from xesync import logs
from xesync.config.model import Config
from xesync.meetings import ConferenceRequest, Owner, external_key

BASELINE_SOURCE = "tmsxe-baseline"
VIEW_FIELDS = ("uid", "subject", "start", "end", "organizer", "changekey", "type")


class XesyncSide:
    """xesync's engine, built as ``xesync sync`` builds it."""

    def __init__(self, cfg: Config) -> None:
        from xesync import wiring  # noqa: PLC0415 - exchangelib is heavy; only this side needs the engine

        self.wired = wiring.build(cfg)

    def run_pass(self) -> dict[str, Any]:
        """One incremental pass over every room."""
        report = self.wired.engine.sync()
        return {
            "failed_rooms": len(report.failed_rooms),
            "meetings": sum(len(r.meetings) for r in report.rooms),
        }

    def close(self) -> None:
        """Close the store and adapters."""
        self.wired.close()


class BaselineSide:
    """A TMSXE-style poller: a calendar view of every room each interval, compared with the last one."""

    def __init__(self, cfg: Config) -> None:
        from exchangelib import IMPERSONATION, Account, EWSTimeZone  # noqa: PLC0415

        from xesync.adapters.exchange_session import build_configuration  # noqa: PLC0415
        from xesync.adapters.tms import TmsBookingSink  # noqa: PLC0415

        self.cfg = cfg
        self.workers = cfg.exchange.max_connections
        config = build_configuration(cfg.exchange, None)
        tz = EWSTimeZone("UTC")
        self.accounts = {
            r.email.lower(): Account(
                r.email, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=tz
            )
            for r in cfg.rooms
        }
        self.systems = {r.email.lower(): r.tms_system_id for r in cfg.rooms}
        self.sink = TmsBookingSink(dataclasses.replace(cfg.tms, external_source_id=BASELINE_SOURCE))
        self.seen: dict[str, dict[str, str]] = {}  # room -> uid -> changekey
        self.booked: dict[str, set[int]] = {}  # uid -> the systems TMS holds for it
        self.lock = threading.Lock()
        self.netbios = cfg.tms.username.split("\\")[0] if "\\" in cfg.tms.username else ""

    def run_pass(self) -> dict[str, Any]:
        """One pass: every room's view, in parallel, each room's changes saved as it is read."""
        with ThreadPoolExecutor(self.workers) as pool:
            results = list(pool.map(self._room, list(self.accounts)))
        return {"failed_rooms": sum(1 for r in results if r < 0), "meetings": sum(max(r, 0) for r in results)}

    def _room(self, room: str) -> int:
        from exchangelib import EWSDateTime  # noqa: PLC0415

        now = datetime.now(UTC)
        start = EWSDateTime.from_datetime(now)
        end = EWSDateTime.from_datetime(now + self.cfg.sync.lookahead)
        try:
            rows = list(self.accounts[room].calendar.view(start=start, end=end).only(*VIEW_FIELDS))
        except Exception:  # noqa: BLE001 - a poller logs and moves on to the next room
            return -1
        first: dict[str, Any] = {}
        for row in rows:
            if row.uid not in first or row.start < first[row.uid].start:
                first[row.uid] = row
        last = self.seen.get(room, {})
        changed = [row for uid, row in first.items() if last.get(uid) != row.changekey]
        self.seen[room] = {uid: row.changekey for uid, row in first.items()}
        for row in changed:
            self._book(room, row)
        return len(changed)

    def _book(self, room: str, row: Any) -> None:
        with self.lock:
            systems = self.booked.setdefault(row.uid, set())
            systems.add(self.systems[room])
            ids = tuple(sorted(systems))
        organiser = row.organizer.email_address if row.organizer else ""
        user = organiser.split("@")[0]
        request = ConferenceRequest(
            external_key=external_key(row.uid),
            title=row.subject or "",
            start=datetime.fromtimestamp(row.start.timestamp(), UTC),
            end=datetime.fromtimestamp(row.end.timestamp(), UTC),
            owner=Owner(username=f"{self.netbios}\\{user}", email=organiser) if organiser else None,
            system_ids=ids,
        )
        try:
            self.sink.save(request)
        except Exception:  # noqa: BLE001 - a refused booking is the poller's problem, not the benchmark's
            with self.lock:
                self.booked[row.uid].discard(self.systems[room])

    def close(self) -> None:
        """Close the TMS client."""
        self.sink.close()


def main() -> None:
    """Serve commands on stdin until ``quit``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("xesync", "baseline"), required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    cfg = config_mod.load(args.config)
    logs.configure(cfg.logging, stream=sys.stderr)
    side: XesyncSide | BaselineSide = XesyncSide(cfg) if args.side == "xesync" else BaselineSide(cfg)
    _answer({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        started = time.perf_counter()
        result = side.run_pass()
        _answer({"seconds": round(time.perf_counter() - started, 3), **result})
    side.close()


def _answer(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
