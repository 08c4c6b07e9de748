"""The benchmark scenario: a generated lab fixture with R rooms, a directory of organisers, M meetings a room.

Everything is drawn from one seeded random generator, so a run is repeatable:

- **Rooms** ``room-NNNNN@lab.example`` (TMS system 10000 + n), AutoAccept, no conflicts, as TMSXE sites
  configure their rooms.
- **Organisers** ``user-NNNN@lab.example``, all in the directory (a generated LDIF served by slapd, the same
  schema as the shipped ``lab.ldif``); :data:`PMP_SHARE` of them PMP+ through the ``cms-pmp`` group.
- **Meetings**: M a room (the room is the first resource), one hour, on working days in the next
  :data:`DAYS` days between 08:00 and 17:00 Europe/Oslo. :data:`SERIES_SHARE` are weekly series of 4 to 12
  occurrences; :data:`MULTI_ROOM_SHARE` book 2 or 3 rooms. No two meetings overlap in a room, so every
  room accepts and the figures are not about conflicts.

The shares are this benchmark's assumption of a typical site (most meetings single, a minority recurring,
few spanning rooms), not a published statistic.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from xesync.lab.fixture import DEFAULT_FIXTURE, LabFixture, parse_fixture

SERIES_SHARE = 0.15
MULTI_ROOM_SHARE = 0.10
PMP_SHARE = 0.6
DAYS = 120
ZONE = "Europe/Oslo"
HOURS = range(8, 17)
BASE_DN = "dc=lab,dc=example"
PEOPLE = f"ou=people,{BASE_DN}"


@dataclass(frozen=True, slots=True)
class Latency:
    """Injected latency per service, in milliseconds."""

    ews: int = 30
    tms: int = 50
    cms: int = 20


@dataclass(slots=True)
class Meeting:
    """One meeting the scenario sends: who, when, which rooms, and whether it repeats weekly."""

    organiser: str
    subject: str
    start: datetime
    rooms: list[str]
    weekly: int | None = None

    def body(self) -> dict[str, Any]:
        """The EWS simulator's ``POST /lab/ews/meetings`` body."""
        out: dict[str, Any] = {
            "organizer": self.organiser,
            "subject": self.subject,
            "start": self.start.isoformat(),
            "end": (self.start + timedelta(hours=1)).isoformat(),
            "rooms": self.rooms,
            "timezone": ZONE,
        }
        if self.weekly:
            out["recurrence"] = {"pattern": "weekly", "interval": 1, "count": self.weekly}
        return out


@dataclass(slots=True)
class Scenario:
    """Rooms, organisers and the meetings to load, plus where the generated fixture lives."""

    rooms: list[str]
    users: list[str]
    meetings: list[Meeting]
    fixture: LabFixture
    busy: set[tuple[str, int, int]] = field(default_factory=set)  # (room, day, hour) taken
    rng: random.Random = field(default_factory=random.Random)
    day0: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def series(self) -> int:
        """How many meetings are series."""
        return sum(1 for m in self.meetings if m.weekly)

    @property
    def multi_room(self) -> int:
        """How many meetings book more than one room."""
        return sum(1 for m in self.meetings if len(m.rooms) > 1)

    def free_slot(self, rooms: list[str], weeks: int = 1) -> tuple[int, int] | None:
        """A (day, hour) free in every room for ``weeks`` consecutive weeks, or ``None`` after 60 tries."""
        for _ in range(60):
            day = self.rng.randrange(1, DAYS - 7 * (weeks - 1))
            if self._weekday(day) >= 5:  # noqa: PLR2004 - Saturday and Sunday
                continue
            hour = self.rng.choice(HOURS)
            taken = {(r, day + 7 * w, hour) for r in rooms for w in range(weeks)}
            if not taken & self.busy:
                self.busy |= taken
                return day, hour
        return None

    def _weekday(self, day: int) -> int:
        return (self.day0 + timedelta(days=day)).astimezone(ZoneInfo(ZONE)).weekday()

    def at(self, day: int, hour: int) -> datetime:
        """The local start of slot (``day`` from today, ``hour``)."""
        date = (self.day0 + timedelta(days=day)).astimezone(ZoneInfo(ZONE)).date()
        return datetime(date.year, date.month, date.day, hour, tzinfo=ZoneInfo(ZONE))

    def new_meeting(self, primary: str, subject: str) -> Meeting | None:
        """One more meeting with ``primary`` as first room, drawn with the scenario's shares."""
        rooms = [primary]
        if self.rng.random() < MULTI_ROOM_SHARE and len(self.rooms) > 2:  # noqa: PLR2004
            extra = self.rng.sample([r for r in self.rooms if r != primary], self.rng.choice((1, 2)))
            rooms += extra
        weekly = self.rng.randint(4, 12) if self.rng.random() < SERIES_SHARE else None
        slot = self.free_slot(rooms, weekly or 1)
        if slot is None:
            return None
        organiser = self.rng.choice(self.users)
        return Meeting(organiser, subject, self.at(*slot), rooms, weekly)


def user_count(rooms: int) -> int:
    """Organisers in the directory: one for every five rooms, at least 20 and at most 1,000."""
    return max(20, min(1000, rooms // 5))


def generate(rooms: int, meetings_per_room: int, workdir: Path, *, seed: int = 15) -> Scenario:
    """Write the fixture (TOML) and the directory (LDIF) under ``workdir`` and draw the meetings."""
    rng = random.Random(seed)
    room_list = [f"room-{n:05d}@lab.example" for n in range(rooms)]
    users = [f"user-{n:04d}@lab.example" for n in range(user_count(rooms))]
    pmp = {u for u in users if rng.random() < PMP_SHARE}
    workdir.mkdir(parents=True, exist_ok=True)
    ldif = workdir / "bench.ldif"
    ldif.write_text(_ldif(users, pmp), encoding="utf-8")
    data = tomllib.loads(DEFAULT_FIXTURE.read_text(encoding="utf-8"))
    data["lab"].pop("clock", None)  # the lab clock is the real time, so xesync's own clock agrees
    data["lab"]["clock_frozen"] = False
    data["ldap"]["ldif"] = str(ldif)
    data["ldap"]["serve"] = "slapd"
    data["rooms"] = [
        {
            "email": room,
            "name": f"Room {n:05d}",
            "tms_system_id": 10000 + n,
            "automate_processing": "AutoAccept",
            "allow_conflicts": False,
            "booking_window_days": 180,
        }
        for n, room in enumerate(room_list)
    ]
    data["users"] = [
        {
            "email": u,
            "name": f"User {u[5:9]}",
            "username": u.split("@")[0],
            "password": "bench-pw",
            "pmp": u in pmp,
            "in_directory": True,
        }
        for u in users
    ]
    fixture = parse_fixture(data, workdir / "bench.toml")
    scenario = Scenario(rooms=room_list, users=users, meetings=[], fixture=fixture, rng=rng)
    for n, room in enumerate(room_list):
        for k in range(meetings_per_room):
            meeting = scenario.new_meeting(room, f"Bench {n}/{k}")
            if meeting is not None:
                scenario.meetings.append(meeting)
    return scenario


def _ldif(users: list[str], pmp: set[str]) -> str:
    """The directory: base, service account, the organisers, and the ``cms-pmp`` group."""
    out = [
        "version: 1",
        "",
        (
            f"dn: {BASE_DN}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
            "dc: lab\no: bench"
        ),
        "",
    ]
    for ou in ("people", "groups", "service"):
        out += [f"dn: ou={ou},{BASE_DN}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {ou}", ""]
    out += [
        (
            f"dn: cn=svc-xesync,ou=service,{BASE_DN}\nobjectClass: top\nobjectClass: applicationProcess\n"
            "objectClass: simpleSecurityObject\ncn: svc-xesync\nuserPassword: lab-ldap-secret"
        ),
        "",
    ]
    for user in users:
        uid = user.split("@")[0]
        name = f"User {uid[5:]}"
        out += [
            (
                f"dn: uid={uid},{PEOPLE}\nobjectClass: top\nobjectClass: inetOrgPerson\n"
                "objectClass: xesyncAdUser\n"
                f"uid: {uid}\nsAMAccountName: {uid}\ncn: {name}\ndisplayName: {name}\ngivenName: User\n"
                f"sn: {uid[5:]}\nmail: {user}\nuserPrincipalName: {user}\nproxyAddresses: SMTP:{user}\n"
                "userPassword: bench-pw"
            ),
            "",
        ]
    members = "\n".join(f"member: uid={u.split('@')[0]},{PEOPLE}" for u in sorted(pmp))
    out += [
        (
            f"dn: cn=cms-pmp,ou=groups,{BASE_DN}\nobjectClass: top\nobjectClass: groupOfNames\n"
            f"cn: cms-pmp\n{members}"
        )
    ]
    return "\n".join(out) + "\n"
