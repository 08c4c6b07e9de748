"""The hostile-input corpus through the engine: real TMS adapter on the lab's TMS, real LDAP, real EWS.

Every case in ``tests/corpus/`` (one JSON file each) is sent at once: ``outlook`` cases by a lab user
with unmodified exchangelib and read back by xesync's Exchange adapter, ``source`` cases (what
Outlook cannot produce: no organiser, negative durations, control characters, unknown rooms, …) as
room copies handed to the engine by the fake calendar source. Both engines book through xesync's
TMS adapter into the lab's TMS and resolve organisers through the lab's directory. Each case must end
in its expected decision, logged under its UID; no pass may crash; and TMS must hold exactly the
conferences of the cases expected to be booked.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from corpus_kit import (
    CATEGORIES,
    DECISIONS,
    NOW,
    OSLO,
    SYSTEMS,
    TROMSO,
    Case,
    load,
    local_dates,
    room_item,
    send,
)
from ews_lab import LabOrganiser
from fakes import FakeCalendarSource
from rkit import write_config
from structlog.testing import capture_logs

from xesync import dialin, events, wiring
from xesync.adapters.tms import TmsBookingSink
from xesync.meetings import Response, external_key

pytestmark = pytest.mark.slow

CASES = load()
REQUIRED = {
    "organiser-missing", "organiser-external", "organiser-changed", "duration-zero", "duration-negative",
    "series-five-years", "series-150-daily", "series-yearly", "series-no-end", "body-1mb",
    "unicode-emoji-subject", "unicode-rtl-subject", "unicode-control-subject", "room-unknown-calendar",
    "room-same-uid-two-rooms", "dst-oslo-weekly", "dst-new-york-weekly", "dst-sydney-weekly", "all-day",
    "private", "subject-is-organiser-name",
    *(f"injection-{k}-{f}" for k in ("xml", "html", "soap") for f in ("subject", "location", "body")),
}  # fmt: skip
DECISION_EVENTS = {
    events.MEETING_REFUSED, events.MEETING_SKIPPED, events.MEETING_DECLINED, events.BOOKING_REJECTED,
    events.BOOKING_CREATED, events.BOOKING_UPDATED, events.MEETING_ACCEPTED, events.ROOM_FAILED,
    events.MEETING_SUBJECT_REPLACED,
}  # fmt: skip


@dataclasses.dataclass
class Run:
    """What the corpus run left: logs per UID, TMS's conferences, the rooms' answers and copies."""

    logs: list[dict[str, Any]]
    conferences: dict[str, Any]
    occurrence_hours: dict[str, list[int]]
    responses: dict[str, dict[str, str]]  # uid -> room -> response
    bodies: dict[str, str]
    failed_rooms: list[str]
    tms_total: int


def _uid(case: Case) -> str:
    return f"corpus-{case.id}"


@pytest.fixture(scope="module")
def run(lab_module, tmp_path_factory) -> Run:
    """Send the whole corpus, sync both engines (twice for cases that change), collect the outcome."""
    lab = lab_module
    lab.reset()
    lab.clock.set(NOW)
    cfg = write_config(lab, tmp_path_factory.mktemp("corpus-source"))
    cfg_outlook = write_config(lab, tmp_path_factory.mktemp("corpus-outlook"))
    fake = FakeCalendarSource()
    by_source = wiring.build(cfg, source=fake, clock=lab.clock.now)
    by_outlook = wiring.build(cfg_outlook, clock=lab.clock.now)
    organisers: dict[str, LabOrganiser] = {}
    tms = TmsBookingSink(cfg.tms)
    configured = [r.email.lower() for r in cfg.rooms]
    try:
        for case in CASES:
            if case.via == "outlook":
                who = case.organiser
                organisers.setdefault(who, LabOrganiser(lab, TROMSO, organiser=who))
                case.uid = send(organisers[who], case)
            else:
                case.uid = _uid(case)
                for room in case.rooms:
                    fake.put(room_item(case, room))
        with capture_logs() as logs:
            first = by_source.engine.sync([*configured, "room-narvik@lab.example"])
            outlook = by_outlook.engine.sync()
            for case in CASES:
                if case.then:
                    for room in case.rooms:
                        fake.put(room_item(case, room, overrides=case.then))
            second = by_source.engine.sync()
        failed = first.failed_rooms + outlook.failed_rooms + second.failed_rooms
        conferences = {c.uid: tms.find(external_key(c.uid)) for c in CASES}
        hours = {
            c.uid: _occurrence_hours(tms, c, conferences[c.uid]) for c in CASES if "local_hour" in c.expect
        }
        responses, bodies = _answers(lab, by_outlook, fake, organisers)
        total = lab.state()["tms"]["conferences"]
    finally:
        tms.close()
        for organiser in organisers.values():
            organiser.close()
        by_source.close()
        by_outlook.close()
    return Run(list(logs), conferences, hours, responses, bodies, failed, total)


def _answers(lab, by_outlook, fake, organisers) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Each case's room responses and the body of its first room's copy now."""
    responses: dict[str, dict[str, str]] = {}
    bodies: dict[str, str] = {}
    now = lab.clock.now()
    window = (now, now + timedelta(days=180))
    for case in CASES:
        if case.via == "source":
            responses[case.uid] = {room: resp for room, uid, resp, _ in fake.responses if uid == case.uid}
            copy = fake.copy(case.rooms[0], case.uid)
            bodies[case.uid] = copy.body if copy is not None else ""
            continue
        responses[case.uid] = {TROMSO: str(organisers[case.organiser].response_seen(case.uid))}
        record = by_outlook.store.record(TROMSO, case.uid)
        if record is not None and record.item_id:
            copy = by_outlook.source.item(TROMSO, record.item_id, window=window)
            bodies[case.uid] = copy.body if copy is not None else ""
    return responses, bodies


def _occurrence_hours(tms: TmsBookingSink, case: Case, conference: Any) -> list[int]:
    if conference is None:
        return []
    out = []
    for local in local_dates(case)[:4]:  # the same wall time on each of the first occurrences
        occurrence = tms.find_occurrence(external_key(case.uid), local)
        if occurrence is not None:
            out.append(occurrence.start.astimezone(case.zone).hour)
    return out


def _events(run: Run, uid: str) -> list[dict[str, Any]]:
    return [e for e in run.logs if e.get("uid") == uid and e.get("event") in DECISION_EVENTS]


def _reasons(entries: list[dict[str, Any]]) -> str:
    return " | ".join(str(e.get("reason") or e.get("error") or "") for e in entries)


def test_the_corpus_covers_every_category_with_fifty_cases_or_more():
    """The corpus has 50+ well-formed cases, covering every category of the issue and each named case."""
    assert len(CASES) >= 50
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    assert {c.category for c in CASES} == CATEGORIES
    assert set(ids) >= REQUIRED
    assert {c.expect["decision"] for c in CASES} <= DECISIONS
    assert {c.via for c in CASES} == {"source", "outlook"}


def test_no_pass_crashed_and_tms_holds_exactly_the_booked_cases(run):
    """No pass failed a configured room, nothing logged an unexpected error, and TMS has one conference per
    booked case and nothing else."""
    assert run.failed_rooms == ["room-narvik@lab.example"]
    unexpected = [e for e in run.logs if e.get("event") in (events.ERROR_UNEXPECTED, events.MEETING_FAILED)]
    assert unexpected == []
    assert not [e for e in run.logs if e.get("log_level") == "error" and e.get("event") != events.ROOM_FAILED]
    booked = [c for c in CASES if c.expect["decision"] == "booked"]
    assert run.tms_total == len(booked)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_case_ends_in_its_expected_logged_decision(run, case):
    """The case ends in its expected decision, logged under its UID; TMS holds what that decision means."""
    expect = case.expect
    entries = _events(run, case.uid)
    names = Counter(e["event"] for e in entries)
    conference = run.conferences[case.uid]
    decision = expect["decision"]
    if decision == "room_failed":
        failed = [e for e in run.logs if e.get("event") == events.ROOM_FAILED and e.get("room") in case.rooms]
        assert failed, run.logs[-5:]
        assert expect["reason"] in _reasons(failed)
        assert conference is None
        return
    if decision != "booked":
        assert conference is None, f"{case.id} was booked: {conference}"
        wanted = {"declined": events.MEETING_REFUSED, "skipped": events.MEETING_SKIPPED}[decision]
        refusals = [e for e in entries if e["event"] in (wanted, events.BOOKING_REJECTED)]
        assert refusals, entries
        assert expect["reason"] in _reasons(refusals), _reasons(refusals)
        responses = set(run.responses[case.uid].values())
        if decision == "declined":
            assert responses == {str(Response.DECLINE) if case.via == "outlook" else "decline"}, responses
        else:
            assert "accept" not in responses
        return
    assert conference is not None, f"{case.id} not booked: {_reasons(entries)}"
    assert names[events.BOOKING_CREATED] == 1, entries
    owner = expect.get("owner") or "LAB\\" + case.organiser.split("@", maxsplit=1)[0].lower()
    assert conference.owner_username.lower() == owner.lower()
    assert sorted(conference.system_ids) == expect.get("systems", [SYSTEMS[case.rooms[0]]])
    if "title" in expect:
        assert conference.title == expect["title"]
    if "title_prefix" in expect:
        assert conference.title.startswith(expect["title_prefix"])
        assert len(conference.title) <= expect["title_max"]
    if "event" in expect:
        assert names[expect["event"]] >= 1, entries
    if "local_hour" in expect:
        hours = run.occurrence_hours[case.uid]
        assert len(hours) >= 2, hours
        assert set(hours) == {expect["local_hour"]}, hours
    accepted = run.responses[case.uid]
    if case.via == "outlook":
        assert accepted == {TROMSO: str(Response.ACCEPT)}
    else:
        assert set(accepted.values()) == {"accept"}, accepted
        assert set(accepted) == {r for r in case.rooms if r in SYSTEMS}
    body = run.bodies.get(case.uid, "")
    assert len(dialin.find(body, is_html=body.lstrip().startswith("<"))) == 1, body[:400]
    if case.via == "source" and "body" in case.meeting:
        assert case.text("body").replace("\x00", "")[:40] in body or case.meeting["body"][:10] in body


def test_a_case_booked_in_one_room_books_no_other(run):
    """Single-room cases book the room they name: nothing in Oslo's calendar lands in Tromsø's system."""
    for case in CASES:
        conference = run.conferences[case.uid]
        if conference is not None and len(case.rooms) == 1 and "systems" not in case.expect:
            assert conference.system_ids == (SYSTEMS[case.rooms[0]],), case.id
    assert OSLO in SYSTEMS


def test_one_poison_meeting_does_not_stop_its_room(tmp_path):
    """A meeting whose save raises an unexpected error fails alone; the room's other meetings are booked."""
    from engine_kit import OSLO as KIT_OSLO  # noqa: PLC0415
    from engine_kit import Kit, meeting  # noqa: PLC0415

    kit = Kit(tmp_path)
    poison, good = meeting("POISON", room=KIT_OSLO), meeting("GOOD", room=KIT_OSLO, hours=1)
    good = dataclasses.replace(good, start=good.start + timedelta(hours=3), end=good.end + timedelta(hours=3))
    kit.source.put(poison)
    kit.source.put(good)
    real_save = kit.sink.save

    def save(request):
        if request.external_key == external_key("POISON"):
            raise ValueError("All strings must be XML compatible")
        return real_save(request)

    kit.sink.save = save
    try:
        report = kit.sync()
    finally:
        kit.close()
    assert kit.sink.find(external_key("GOOD")) is not None
    assert report.failed_rooms == []
