"""Benchmark: a full ``sync_items`` pass over many rooms of the lab's EWS simulator.

Loads ROOMS rooms x MEETINGS accepted meetings straight into the simulator (the ``seed`` control
action), then times one initial ``sync_items`` pass per room through unmodified exchangelib with
impersonation, ``only_fields`` and ``max_changes_returned=100``, as xesync's sync does.

    .venv/bin/python bench/ews_sync.py [--rooms 2000] [--meetings 50] [--threads 4]

Prints one JSON line. The figure goes in bench/README.md; tests never assert on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from exchangelib import BASIC, IMPERSONATION, Account, Build, Configuration, Credentials, EWSTimeZone, Version
from exchangelib.protocol import close_connections

from xesync.lab.fixture import LabRoom, load_fixture
from xesync.lab.runtime import Lab

FIELDS = [
    "uid",
    "subject",
    "start",
    "end",
    "changekey",
    "my_response_type",
    "is_cancelled",
    "type",
    "organizer",
]


def main() -> None:
    """Seed, sync every room once, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--meetings", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    base = load_fixture()
    rooms = tuple(
        LabRoom(email=f"room-{n:05d}@lab.example", name=f"Room {n}", tms_system_id=1000 + n)
        for n in range(args.rooms)
    )
    fixture = dataclasses.replace(
        base, rooms=rooms, clock_start=datetime(2026, 3, 1, 8, tzinfo=UTC), clock_frozen=True
    )
    with Lab(fixture, only=("ews",), directory=False) as lab:
        started = time.perf_counter()
        for room in rooms:
            lab.ews.control(
                "seed", "POST", {"room": room.email, "count": args.meetings, "start": "2026-03-02T08:00:00Z"}
            )
        seeded = time.perf_counter() - started
        section = lab.describe()["ews"]
        config = Configuration(
            service_endpoint=section["url"],
            credentials=Credentials(
                section["service_account"]["username"], section["service_account"]["password"]
            ),
            auth_type=BASIC,
            version=Version(build=Build(15, 1, 2507, 6)),
            max_connections=args.threads,
        )

        def sync(email: str) -> int:
            room = Account(email, config=config, autodiscover=False, access_type=IMPERSONATION,
                           default_timezone=EWSTimeZone("UTC"))  # fmt: skip
            return sum(1 for _ in room.calendar.sync_items(only_fields=FIELDS, max_changes_returned=100))

        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            changes = sum(pool.map(sync, [r.email for r in rooms]))
        elapsed = time.perf_counter() - started
        close_connections()
        requests = lab.requests.count("ews", "SyncFolderItems") + lab.requests.count("ews", "GetFolder")
    print(
        json.dumps(
            {
                "rooms": args.rooms,
                "meetings_per_room": args.meetings,
                "threads": args.threads,
                "items": changes,
                "seed_s": round(seeded, 2),
                "sync_s": round(elapsed, 2),
                "rooms_per_s": round(args.rooms / elapsed, 1),
                "items_per_s": round(changes / elapsed, 1),
                "requests": requests,
            }
        )
    )


if __name__ == "__main__":
    main()
