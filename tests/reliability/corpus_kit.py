"""The hostile-input corpus: loading the case files of ``tests/corpus/`` and turning them into meetings.

A case names a meeting (the room copy's fields, relative to the corpus clock unless it gives a local
start), how it reaches xesync (``via``: ``source`` builds the room copy for the fake calendar source;
``outlook`` sends it with unmodified exchangelib as a lab user, so that the lab's Exchange stores and
expands it) and the decision expected. The schema is in ``tests/reliability/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from exchangelib import EWSDate, EWSDateTime, EWSTimeZone, HTMLBody
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, CalendarItem
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    WeeklyPattern,
)
from exchangelib.recurrence import (
    Recurrence as EwsRecurrence,
)

from xesync.meetings import Frequency, Occurrence, Recurrence, Response, RoomItem

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # the lab clock for the corpus (before the spring changes)
LOOKAHEAD = timedelta(days=180)
OSLO = "room-oslo@lab.example"
BERGEN = "room-bergen@lab.example"
TROMSO = "room-tromso@lab.example"
SYSTEMS = {OSLO: 11, BERGEN: 12, TROMSO: 13}
DECISIONS = frozenset({"booked", "declined", "skipped", "room_failed"})
CATEGORIES = frozenset(
    {"organiser", "duration", "series", "injection", "body", "unicode", "rooms", "dst", "all_day",
     "private", "subject_replaced"}
)  # fmt: skip


@dataclass
class Case:
    """One corpus case, with the slot the runner gave it."""

    id: str
    category: str
    via: str
    meeting: dict[str, Any]
    expect: dict[str, Any]
    then: dict[str, Any] | None = None
    note: str = ""
    index: int = 0
    uid: str = ""
    path: Path = field(default_factory=Path)

    @property
    def rooms(self) -> list[str]:
        """The rooms the meeting books (the first is where the organiser's copy lands for ``source``)."""
        default = TROMSO if self.via == "outlook" else OSLO
        return [r.lower() for r in self.meeting.get("rooms", [self.meeting.get("room", default)])]

    @property
    def organiser(self) -> str:
        """The organiser's address as the case gives it."""
        return str(self.meeting.get("organiser", "alice@lab.example"))

    @property
    def zone(self) -> ZoneInfo:
        """The meeting's time zone."""
        return ZoneInfo(self.meeting.get("time_zone", "Europe/Oslo"))

    def start(self) -> datetime:
        """The first start, aware, in the meeting's zone (each case its own day unless it names one)."""
        if "local_start" in self.meeting:
            return datetime.fromisoformat(self.meeting["local_start"]).replace(tzinfo=self.zone)
        offset = self.meeting.get("days", 2 + self.index)  # "days": a fixed offset (negative: the past)
        day = (NOW + timedelta(days=offset)).astimezone(self.zone)
        default_hour = 11 if self.via == "outlook" else 10  # the two engines share TMS: no clash
        hour = self.meeting.get("hour", default_hour)
        return datetime(day.year, day.month, day.day, hour, tzinfo=self.zone)

    def end(self) -> datetime:
        """The end: the start plus ``minutes`` (may be zero or negative), in real time."""
        start = self.start().astimezone(UTC)
        return (start + timedelta(minutes=self.meeting.get("minutes", 60))).astimezone(self.zone)

    def text(self, name: str, default: str = "") -> str:
        """A text field; ``body_repeat`` ``[chunk, n]`` builds a large body without a large file."""
        if name == "body" and "body_repeat" in self.meeting:
            chunk, times = self.meeting["body_repeat"]
            return str(chunk) * int(times)
        return str(self.meeting.get(name, default))


def load() -> list[Case]:
    """Every case file, in name order, each given a slot index within its ``via`` group."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for path in sorted(CORPUS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        case = Case(**data, path=path)
        case.index = seen.get(case.via, 0)
        seen[case.via] = case.index + 1
        cases.append(case)
    return cases


# -------------------------------------------------------------------------------- fake-source items


def local_dates(case: Case) -> list[datetime]:
    """The series' occurrence starts (local wall time kept across DST), inside the lookahead."""
    rec = case.meeting["recurrence"]
    first = case.start()
    freq = rec["frequency"]
    count = rec.get("count")
    until = _until(case, first)
    starts: list[datetime] = []
    i = 0
    horizon = NOW + LOOKAHEAD
    while True:
        if freq == "daily":
            local = first + timedelta(days=i)
        elif freq == "weekly":
            local = first + timedelta(weeks=i)
        elif freq == "monthly":
            month = first.month - 1 + i
            local = first.replace(year=first.year + month // 12, month=month % 12 + 1)
        else:
            local = first.replace(year=first.year + i)
        local = datetime.combine(local.date(), first.time(), tzinfo=case.zone)  # wall time, this zone
        if (count is not None and i >= count) or (until is not None and local.date() > until):
            break
        if local.astimezone(UTC) > horizon:
            break
        starts.append(local)
        i += 1
    return starts


def _until(case: Case, first: datetime) -> date | None:
    rec = case.meeting["recurrence"]
    if "years" in rec:
        return first.date().replace(year=first.year + int(rec["years"]))
    if "end_date" in rec:
        return date.fromisoformat(rec["end_date"])
    return None


def _recurrence(case: Case) -> Recurrence:
    rec, first = case.meeting["recurrence"], case.start()
    freq = Frequency(rec["frequency"])
    return Recurrence(
        frequency=freq, interval=1, start_date=first.date(), end_date=_until(case, first),
        count=rec.get("count"),
        weekdays=(first.isoweekday(),) if freq is Frequency.WEEKLY else (),
        day_of_month=first.day if freq in (Frequency.MONTHLY, Frequency.YEARLY) else None,
        month=first.month if freq is Frequency.YEARLY else None,
    )  # fmt: skip


def room_item(case: Case, room: str, *, overrides: dict[str, Any] | None = None) -> RoomItem:
    """The room copy the case describes, as the Exchange adapter would hand it to the engine."""
    meeting = {**case.meeting, **(overrides or {})}
    organiser = str(meeting.get("organiser", "alice@lab.example"))
    start, end = case.start(), case.end()
    attendees = {organiser.lower(), *case.rooms, *(a.lower() for a in meeting.get("extra_attendees", []))}
    fields: dict[str, Any] = {
        "room": room, "uid": case.uid, "item_id": f"{room}:{case.uid}", "change_key": "ck0",
        "subject": str(meeting.get("subject", f"Corpus {case.id}")), "organiser": organiser,
        "organiser_name": str(meeting.get("organiser_name", "Alice Example")), "start": start, "end": end,
        "time_zone": str(meeting.get("time_zone", "Europe/Oslo")), "all_day": bool(meeting.get("all_day")),
        "private": bool(meeting.get("private")), "attendees": frozenset(attendees) - {""},
        "location": case.text("location"), "body": case.text("body", "Agenda."),
        "response": Response.NO_RESPONSE,
    }  # fmt: skip
    if "recurrence" in meeting:
        duration = end - start
        occurrences = tuple(
            Occurrence(recurrence_id=s, start=s, end=s + duration)
            for s in local_dates(case)
            if s.astimezone(UTC) + duration > NOW
        )
        fields["recurrence"] = _recurrence(case)
        fields["occurrences"] = occurrences
        if occurrences:
            fields["start"], fields["end"] = occurrences[0].start, occurrences[0].end
    return RoomItem(**fields)


# -------------------------------------------------------------------------------- outlook sending


def send(organiser: Any, case: Case) -> str:
    """Send the case's meeting as ``organiser`` (a LabOrganiser: unmodified exchangelib); its UID."""
    account = organiser.account
    tz = EWSTimeZone(case.meeting.get("time_zone", "Europe/Oslo"))
    start, end = case.start(), case.end()
    item = CalendarItem(
        account=account, folder=account.calendar, subject=case.text("subject", f"Corpus {case.id}"),
        start=EWSDateTime.from_datetime(start).astimezone(tz),
        end=EWSDateTime.from_datetime(end).astimezone(tz),
        resources=case.rooms, location=case.text("location") or None,
    )  # fmt: skip
    body = case.text("body")
    if body:
        item.body = HTMLBody(body) if body.lstrip().startswith("<") else body
    if case.meeting.get("all_day"):
        day = start.date()
        item.is_all_day = True
        item.start, item.end = EWSDate.from_date(day), EWSDate.from_date(day + timedelta(days=1))
    if case.meeting.get("private"):
        item.sensitivity = "Private"
    if "recurrence" in case.meeting:
        item.recurrence = _ews_recurrence(case)
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    item.refresh()
    organiser._sent[item.uid] = item
    return str(item.uid)


def _ews_recurrence(case: Case) -> EwsRecurrence:
    rec, first = case.meeting["recurrence"], case.start()
    pattern: Any = {
        "daily": lambda: DailyPattern(interval=1),
        "weekly": lambda: WeeklyPattern(interval=1, weekdays=[first.isoweekday()]),
        "monthly": lambda: AbsoluteMonthlyPattern(interval=1, day_of_month=first.day),
        "yearly": lambda: AbsoluteYearlyPattern(day_of_month=first.day, month=first.month),
    }[rec["frequency"]]()
    until = _until(case, first)
    if "count" in rec:
        boundary: Any = NumberedPattern(start=first.date(), number=rec["count"])
    elif until is not None:
        boundary = EndDatePattern(start=first.date(), end=until)
    else:
        boundary = NoEndPattern(start=first.date())
    return EwsRecurrence(pattern=pattern, boundary=boundary)
