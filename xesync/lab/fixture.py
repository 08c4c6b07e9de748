"""The lab fixture: who and what the simulators start with (``config/lab.toml`` by default).

The shared parts (domain, clock, rooms, users, directory) are parsed here. Each simulator's own table
(``[ews]``, ``[tms]``, ``[cms]``) is handed to that simulator as a mapping, and the simulator parses its
own knobs, so that a knob lives next to the behaviour it switches.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_FIXTURE = DATA_DIR / "lab.toml"


class FixtureError(ValueError):
    """The lab fixture is invalid; names the file and key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LabRoom:
    """A room mailbox and the TMS system it maps to.

    ``settings`` are the room's calendar-processing settings for the EWS simulator
    (``automate_processing``, ``allow_conflicts``, ``booking_window_days``, ...), parsed there.
    """

    email: str
    name: str
    tms_system_id: int
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabUser:
    """A person: an Outlook organiser, maybe in the directory, maybe PMP+ licensed."""

    email: str
    name: str
    username: str
    password: str
    pmp: bool
    in_directory: bool

    @property
    def first_name(self) -> str:
        """First word of the display name."""
        return self.name.split(" ", 1)[0]

    @property
    def last_name(self) -> str:
        """Rest of the display name."""
        return self.name.split(" ", 1)[1] if " " in self.name else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LabDirectory:
    """The directory the lab serves (slapd when installed, else the LDIF on ldap3's mock strategy)."""

    ldif: Path
    base_dn: str
    bind_dn: str
    password: str
    pmp_group_dn: str
    serve: str = "auto"  # auto | slapd | mock | off


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryLink:
    """How a simulator (CMS LDAP sync) reaches the running directory.

    ``url`` is ``ldap://127.0.0.1:PORT`` for a real slapd, or ``ldif:///abs/path.ldif`` when the
    directory runs on ldap3's mock strategy.
    """

    url: str
    bind_dn: str
    password: str
    base_dn: str
    pmp_group_dn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceLink:
    """How one simulator reaches another over HTTP (TMS → CMS)."""

    url: str
    username: str
    password: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LabFixture:
    """The whole fixture."""

    path: Path
    domain: str
    netbios: str
    clock_start: datetime | None
    clock_frozen: bool
    rooms: tuple[LabRoom, ...]
    users: tuple[LabUser, ...]
    directory: LabDirectory | None
    ews: Mapping[str, Any]
    tms: Mapping[str, Any]
    cms: Mapping[str, Any]

    def user(self, email: str) -> LabUser | None:
        """A user by e-mail (case-insensitive)."""
        key = email.casefold()
        return next((u for u in self.users if u.email.casefold() == key), None)

    def room(self, email: str) -> LabRoom | None:
        """A room by e-mail (case-insensitive)."""
        key = email.casefold()
        return next((r for r in self.rooms if r.email.casefold() == key), None)


def load_fixture(path: Path | None = None) -> LabFixture:
    """Read and check a fixture file (default: the shipped ``lab.toml``)."""
    path = path or DEFAULT_FIXTURE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FixtureError(f"{path}: {exc}") from None
    return parse_fixture(data, path)


def _req(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise FixtureError(f"{where}.{key}: must be a {kind.__name__}")
    return value


def parse_fixture(data: Mapping[str, Any], path: Path) -> LabFixture:
    """Build a :class:`LabFixture` from parsed TOML; ``path`` anchors relative file names."""
    lab = data.get("lab", {})
    clock = lab.get("clock")
    if clock is not None and not isinstance(clock, datetime):
        try:
            clock = datetime.fromisoformat(str(clock))
        except ValueError:
            raise FixtureError(f"{path}: lab.clock must be an ISO-8601 time with offset") from None
    if clock is not None and clock.tzinfo is None:
        raise FixtureError(f"{path}: lab.clock needs a UTC offset (e.g. 2026-12-01T08:00:00Z)")
    rooms = tuple(
        LabRoom(
            email=_req(r, "email", str, f"rooms[{i}]"),
            name=_req(r, "name", str, f"rooms[{i}]"),
            tms_system_id=_req(r, "tms_system_id", int, f"rooms[{i}]"),
            settings={k: v for k, v in r.items() if k not in {"email", "name", "tms_system_id"}},
        )
        for i, r in enumerate(data.get("rooms", []))
    )
    users = tuple(
        LabUser(
            email=_req(u, "email", str, f"users[{i}]"),
            name=_req(u, "name", str, f"users[{i}]"),
            username=_req(u, "username", str, f"users[{i}]"),
            password=_req(u, "password", str, f"users[{i}]"),
            pmp=bool(u.get("pmp", False)),
            in_directory=bool(u.get("in_directory", True)),
        )
        for i, u in enumerate(data.get("users", []))
    )
    directory = None
    if "ldap" in data:
        d = data["ldap"]
        directory = LabDirectory(
            ldif=(path.parent / _req(d, "ldif", str, "ldap")).resolve(),
            base_dn=_req(d, "base_dn", str, "ldap"),
            bind_dn=_req(d, "bind_dn", str, "ldap"),
            password=_req(d, "password", str, "ldap"),
            pmp_group_dn=_req(d, "pmp_group_dn", str, "ldap"),
            serve=str(d.get("serve", "auto")),
        )
        if directory.serve not in {"auto", "slapd", "mock", "off"}:
            raise FixtureError(f"{path}: ldap.serve must be auto, slapd, mock or off")
    return LabFixture(
        path=path,
        domain=str(lab.get("domain", "lab.example")),
        netbios=str(lab.get("netbios", "LAB")),
        clock_start=clock,
        clock_frozen=bool(lab.get("clock_frozen", False)),
        rooms=rooms,
        users=users,
        directory=directory,
        ews=data.get("ews", {}),
        tms=data.get("tms", {}),
        cms=data.get("cms", {}),
    )
