"""``xesync demo``: the whole job, end to end, on the built-in lab, in one process and about a minute.

What it does, in order:

1. starts the lab (:class:`~xesync.lab.Lab`: EWS, TMS and CMS simulators on 127.0.0.1, the directory
   on slapd when installed, else the fixture's LDIF on ldap3's mock) and writes the configuration
   ``xesync lab serve --write-config`` would, into a temporary directory it removes at the end;
2. books as Outlook users through unmodified exchangelib (:class:`~xesync.lab.outlook.OutlookUser`):
   a one-off by a PMP+ user, a weekly series by a user outside the PMP+ group, a two-room meeting, a
   meeting by an organiser outside the directory, and then a meeting over the first one's slot;
3. runs xesync's own engine (built by :func:`xesync.wiring.build`, the lab's directory and clock
   handed in) pass after pass until a pass changes nothing;
4. follows xesync's licence checker as the daemon's licence job does, on the lab clock: asks it
   when the next check is due (:meth:`~xesync.licence_service.LicenceChecker.next_due`), moves the
   clock there (the simulated TMS starts and ends the calls on the simulated CMS as the clock
   passes them) and runs what is due (:meth:`~xesync.licence_service.LicenceChecker.run_due`);
5. does it again for the one-off with TMS passing no owner to CMS (``smp_no_owner``), and once more
   with ``cms.enforce_owner`` on, where xesync sets the owner itself (``pmp_confirmed``).

The result is a :class:`DemoReport`; :mod:`xesync.lab.demo_table` renders it. Each scenario runs on
a lab reset to its fixture and a fresh state store, so that a pool space's owner left over from an
earlier call (cms-api.md §4.1 item 8) cannot colour the next scenario's verdict.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from xesync import config as config_mod
from xesync import wiring
from xesync.config.model import Config
from xesync.errors import XesyncError
from xesync.lab.fixture import FixtureError, LabFixture, load_fixture
from xesync.lab.outlook import OutlookUser
from xesync.lab.runtime import Lab
from xesync.lab.serve import write_lab_config
from xesync.licence_service import LicenceChecker
from xesync.meetings import Response
from xesync.model import Booking, CheckStage, LicenceCheck, LicenceVerdict

Progress = Callable[[str], None]

ZONE = ZoneInfo("Europe/Oslo")
MAX_PASSES = 6  # a quiet lab settles in three: book and answer, see the answer's changekey, nothing
DAY_ENDS = time(13, 0)  # the licence schedule is followed until then (local time on the demo day)


class DemoError(XesyncError):
    """The demo could not run to the end (the lab would not start, or xesync never settled)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Meeting:
    """One meeting an Outlook user books in the demo, and what xesync should make of it.

    :ivar label: what the row stands for.
    :ivar who: what the organiser is in the directory.
    :ivar start: local wall-clock time on the demo day (Europe/Oslo).
    :ivar expected: the licence verdict the demo expects, ``None`` when the meeting is not booked.
    :ivar expected_response: what the room should answer.
    """

    label: str
    subject: str
    organiser: str
    who: str
    rooms: tuple[str, ...]
    start: time
    minutes: int
    weekly: int | None = None
    expected: LicenceVerdict | None
    expected_response: Response


OSLO, BERGEN, TROMSO = "room-oslo@lab.example", "room-bergen@lab.example", "room-tromso@lab.example"

# Who is who comes from the lab fixture (config/lab.toml, xesync/lab/data/lab.ldif).
ONE_OFF = Meeting(
    label="one-off", subject="Quarterly numbers", organiser="alice@lab.example", who="PMP+",
    rooms=(TROMSO,), start=time(9, 0), minutes=60,
    expected=LicenceVerdict.PMP_CONFIRMED, expected_response=Response.ACCEPT,
)  # fmt: skip
FIRST_ROUND = (
    ONE_OFF,
    Meeting(
        label="weekly series", subject="Weekly planning", organiser="carol@lab.example", who="outside PMP+",
        rooms=(OSLO,), start=time(9, 0), minutes=45, weekly=4,
        expected=LicenceVerdict.SMP_OWNER_UNLICENSED, expected_response=Response.ACCEPT,
    ),
    Meeting(
        label="two rooms", subject="Design review", organiser="bob@lab.example", who="PMP+ by a nested group",
        rooms=(OSLO, BERGEN), start=time(10, 0), minutes=60,
        expected=LicenceVerdict.PMP_CONFIRMED, expected_response=Response.ACCEPT,
    ),
    Meeting(
        label="external organiser", subject="Partner call", organiser="erin@partner.example",
        who="outside the directory", rooms=(TROMSO,), start=time(11, 0), minutes=60,
        expected=None, expected_response=Response.DECLINE,
    ),
)  # fmt: skip
# Booked after the first round has settled, so that the one-off holds the slot in TMS.
CONFLICT = Meeting(
    label="conflict", subject="Budget", organiser="dave@lab.example", who="outside PMP+",
    rooms=(TROMSO,), start=time(9, 30), minutes=60,
    expected=None, expected_response=Response.DECLINE,
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """A re-run of the one-off under other settings."""

    label: str
    tms_knobs: dict[str, Any] = field(default_factory=dict)
    cms_knobs: dict[str, Any] = field(default_factory=dict)
    enforce_owner: bool = False
    expected: LicenceVerdict


VARIANTS = (
    Variant(
        label="TMS passes no owner to CMS",
        tms_knobs={"owner_to_cms": "none"},
        expected=LicenceVerdict.SMP_NO_OWNER,
    ),
    # xesync can set the owner only once TMS has picked the pool space, i.e. at the start: this
    # helps only on a CMS that re-evaluates the licence when the owner changes (cms-api.md §6.3,
    # [unconfirmed]); the lab's knob says it does.
    Variant(
        label="TMS passes no owner, and cms.enforce_owner is on",
        tms_knobs={"owner_to_cms": "none"},
        cms_knobs={"reevaluate_on_owner_change": True},
        enforce_owner=True,
        expected=LicenceVerdict.PMP_CONFIRMED,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the demo's table.

    :ivar responses: each room's response as the organiser's copy in Outlook shows it.
    :ivar why: the reason xesync gave when it declined, from its audit trail.
    """

    scenario: str
    meeting: Meeting
    tms_id: int | None
    responses: tuple[Response, ...]
    cms_owner: str | None
    verdict: LicenceVerdict | None
    expected: LicenceVerdict | None
    why: str = ""

    @property
    def as_expected(self) -> bool:
        """Whether the verdict and every room's response are what the demo expects."""
        return self.verdict == self.expected and all(
            r is self.meeting.expected_response for r in self.responses
        )


@dataclass(slots=True)
class DemoReport:
    """What the demo found."""

    directory: str = ""
    day: date | None = None
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every row is as expected."""
        return bool(self.rows) and all(r.as_expected for r in self.rows)


def demo_day(today: date) -> date:
    """The day the meetings are on: the next weekday after ``today``."""
    day = today + timedelta(days=1)
    while day.isoweekday() > 5:  # noqa: PLR2004 - Saturday and Sunday
        day += timedelta(days=1)
    return day


def run_demo(*, progress: Progress, today: date | None = None, directory: str = "auto") -> DemoReport:
    """Run every scenario on one lab and return the table's rows.

    :param progress: called with one short line per step (the CLI writes them to stderr).
    :param today: the day before the meetings (default: today in Europe/Oslo).
    :param directory: where the lab's directory runs: ``auto`` (slapd when installed, else the
        mock), ``slapd`` or ``mock``.
    :raises DemoError: the lab would not start, or xesync did not settle.
    """
    day = demo_day(today or datetime.now(ZONE).date())
    report = DemoReport(day=day)
    progress("starting the lab: EWS, TMS and CMS simulators on 127.0.0.1, and a directory")
    with ExitStack() as stack:
        try:
            lab = stack.enter_context(Lab(_fixture(directory)))
        except (OSError, RuntimeError, ValueError, FixtureError) as exc:
            raise DemoError(f"the lab did not start: {exc}") from exc
        stack.callback(progress, "lab stopped")
        kind = "OpenLDAP slapd" if lab.directory_kind == "slapd" else "ldap3's mock, from the lab LDIF"
        report.directory = kind
        progress(f"lab up; the directory runs on {kind}")
        workdir = _workdir(stack)
        report.rows += _scenario(lab, workdir / "main", day, progress, variant=None)
        for number, variant in enumerate(VARIANTS, start=1):
            report.rows += _scenario(lab, workdir / f"variant-{number}", day, progress, variant=variant)
    return report


def _workdir(stack: ExitStack) -> Path:
    """A private temporary directory, removed with ``stack``.

    Its removal is registered before it is made: a SIGTERM between the two (the demo turns it into
    an exit that unwinds the stack) then cannot leave it behind, as it could with ``mkdtemp``.
    """
    path = Path(tempfile.gettempdir()) / f"xesync-demo-{secrets.token_hex(8)}"
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    path.mkdir(mode=0o700)
    return path


def _fixture(directory: str) -> LabFixture:
    fixture = load_fixture()
    if fixture.directory is None or directory not in {"auto", "slapd", "mock"}:
        raise DemoError(f"directory {directory!r}: choose auto, slapd or mock (the fixture must have [ldap])")
    return dataclasses.replace(fixture, directory=dataclasses.replace(fixture.directory, serve=directory))


def _scenario(
    lab: Lab, workdir: Path, day: date, progress: Progress, *, variant: Variant | None
) -> list[Row]:
    lab.reset()  # the fixture again: empty calendars, no conferences, no spaces in use, default knobs
    lab.clock.set(datetime.combine(day - timedelta(days=1), time(16, 0), tzinfo=ZONE))
    if variant is not None:
        progress(f"again, the one-off alone, on a fresh lab where {variant.label}")
        _set_knobs(lab, variant)
    cfg = _config(lab, workdir, enforce_owner=variant is not None and variant.enforce_owner)
    with ExitStack() as stack:
        wired, checker = _xesync(lab, cfg, stack)
        outlook = _Outlook(lab.describe()["ews"], stack)
        booked = outlook.book([ONE_OFF] if variant else FIRST_ROUND, day, progress)
        _settle(wired, progress)
        if variant is None:
            booked += outlook.book([CONFLICT], day, progress)
            _settle(wired, progress)
        until = datetime.combine(day, DAY_ENDS, tzinfo=ZONE)
        verdicts = _follow_licence_schedule(lab, checker, until, progress)
        return [
            Row(
                scenario="main" if variant is None else variant.label,
                meeting=meeting,
                tms_id=_tms_id(wired.store.booking(uid)),
                responses=tuple(outlook.response(meeting, uid, room) for room in meeting.rooms),
                cms_owner=verdicts[uid].owner_jid if uid in verdicts else None,
                verdict=verdicts[uid].verdict if uid in verdicts else None,
                expected=meeting.expected if variant is None else variant.expected,
                why=_declined_because(wired, uid),
            )
            for meeting, uid in booked
        ]


def _set_knobs(lab: Lab, variant: Variant) -> None:
    sims = lab.simulators()
    if variant.tms_knobs:
        sims["tms"].control("knobs", "POST", dict(variant.tms_knobs))
    if variant.cms_knobs:
        sims["cms"].control("knobs", "PUT", dict(variant.cms_knobs))


def _config(lab: Lab, workdir: Path, *, enforce_owner: bool) -> Config:
    """The configuration ``xesync lab serve --write-config`` writes, read by the production reader."""
    path = workdir / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=workdir / "state")
    cfg = config_mod.load(path)
    if enforce_owner and cfg.cms is not None:
        cfg = dataclasses.replace(cfg, cms=dataclasses.replace(cfg.cms, enforce_owner=True))
    return cfg


def _xesync(lab: Lab, cfg: Config, stack: ExitStack) -> tuple[wiring.Wired, LicenceChecker]:
    """xesync's engine and licence checker over the lab, with its directory and its clock."""
    directory = lab.directory_port()
    close = getattr(directory, "close", None)
    if close is not None:
        stack.callback(close)
    wired = wiring.build(cfg, directory=directory, clock=lab.clock.now)
    stack.callback(wired.close)
    if wired.checker is None:  # pragma: no cover - the lab's configuration always has [cms]
        raise DemoError("xesync was built without a licence checker: the configuration has no [cms]")
    return wired, wired.checker


class _Outlook:
    """The demo's Outlook users, each signed in once per scenario."""

    def __init__(self, ews: dict[str, Any], stack: ExitStack) -> None:
        self.ews, self.stack = ews, stack
        self.users: dict[str, OutlookUser] = {}

    def user(self, address: str) -> OutlookUser:
        if address not in self.users:
            self.users[address] = self.stack.enter_context(OutlookUser(self.ews, address))
        return self.users[address]

    def book(self, meetings: Sequence[Meeting], day: date, progress: Progress) -> list[tuple[Meeting, str]]:
        booked = []
        for meeting in meetings:
            start = datetime.combine(day, meeting.start, tzinfo=ZONE)
            end = start + timedelta(minutes=meeting.minutes)
            uid = self.user(meeting.organiser).book(
                meeting.subject, start, end, meeting.rooms, weekly=meeting.weekly
            )
            series = f", weekly x{meeting.weekly}" if meeting.weekly else ""
            progress(
                f"  {meeting.organiser} books {meeting.subject!r} in {room_names(meeting.rooms)} "
                f"at {meeting.start:%H:%M}{series}"
            )
            booked.append((meeting, uid))
        return booked

    def response(self, meeting: Meeting, uid: str, room: str) -> Response:
        return self.user(meeting.organiser).room_response(uid, room)


def _settle(wired: wiring.Wired, progress: Progress) -> None:
    """Run passes until one applies nothing, as the daemon's interval jobs would."""
    for number in range(1, MAX_PASSES + 1):
        report = wired.engine.sync()
        if report.failed_rooms:
            raise DemoError(f"xesync's pass failed for {', '.join(report.failed_rooms)}")
        changed = [m for room in report.rooms for m in room.meetings if m.applied or m.outcome == "failed"]
        outcomes = ", ".join(sorted({m.outcome for m in changed}))
        progress(f"  xesync pass {number}: {len(changed)} change(s)" + (f" ({outcomes})" if outcomes else ""))
        if not changed:
            return
    raise DemoError(f"xesync did not settle in {MAX_PASSES} passes")


def _follow_licence_schedule(
    lab: Lab, checker: LicenceChecker, until: datetime, progress: Progress
) -> dict[str, LicenceCheck]:
    """Do what the daemon's licence job does, on the lab clock: jump to the checker's next due time,
    run what is due, until ``until``. Each jump runs the lab's clock listeners first, so the simulated
    TMS has started (or ended) the calls on CMS by then.

    :returns: each meeting's first verdict (its first sitting's, not the look before the start).
    """
    verdicts: dict[str, LicenceCheck] = {}
    while (due := checker.next_due(lab.clock.now())) is not None and due <= until:
        if due > lab.clock.now():
            lab.clock.set(due)
        checks = checker.run_due(lab.clock.now())
        for check in checks:
            if check.stage is not CheckStage.BEFORE_START:
                verdicts.setdefault(check.uid, check)
        if checks:
            progress(f"lab clock {lab.clock.now().astimezone(ZONE):%H:%M}: {_summary(checks)}")
    lab.clock.set(until)  # past the last end: the calls are over, the fix-ups undone
    return verdicts


def _summary(checks: Sequence[LicenceCheck]) -> str:
    stages = sorted({c.stage.value.replace("_", " ") for c in checks if c.stage is not None})
    verdicts = ", ".join(sorted({c.verdict.value for c in checks}))
    return f"{len(checks)} licence check(s) ({', '.join(stages)}): {verdicts}"


def _tms_id(booking: Booking | None) -> int | None:
    return booking.conference_id if booking is not None and booking.live else None


def _declined_because(wired: wiring.Wired, uid: str) -> str:
    for entry in reversed(wired.store.audit(uid=uid)):
        if entry.action == "decline_meeting":
            return entry.reason
    return ""


def room_names(rooms: Sequence[str]) -> str:
    """``room-oslo@lab.example`` → ``Oslo``, joined with ``+``."""
    return " + ".join(r.split("@")[0].removeprefix("room-").capitalize() for r in rooms)
