"""The licence proof end to end over the lab (issue 11's acceptance list).

An organiser books through unmodified exchangelib; ``xesync sync`` books the meeting into the TMS
simulator with the pre-flight prediction; moving the lab clock past the start makes the TMS simulator
run the meeting on the CMS simulator in one of its reused ``TMS_Scheduled_Meeting_<n>`` pool spaces
(passing the owner or not, ``owner_to_cms``); ``xesync verify`` (or the checker the daemon schedules)
then judges the call. ``explain`` and ``report`` read the chain back from the store.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from ews_lab import LabOrganiser

from xesync import config as config_mod
from xesync import wiring
from xesync.adapters.cms import CmsCallMonitor
from xesync.cli import app
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config
from xesync.model import CheckStage, LicenceVerdict

pytestmark = pytest.mark.slow

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
OSLO_TZ = ZoneInfo("Europe/Oslo")
TROMSO = "room-tromso@lab.example"


@pytest.fixture(scope="module")
def lab_module():
    """The whole lab, started once for this module."""
    with Lab() as lab:
        yield lab


@pytest.fixture
def lab(lab_module):
    """The lab reset to its fixture, its clock on NOW."""
    lab_module.reset()
    lab_module.clock.set(NOW)
    yield lab_module
    lab_module.clear_faults()
    lab_module.clock.set(datetime.now(UTC))


@pytest.fixture
def cfg(lab, tmp_path):
    """The configuration `xesync lab serve --write-config` writes, loaded by the production reader."""
    path = tmp_path / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=tmp_path / "state")
    return config_mod.load(path)


@pytest.fixture
def waits():
    """The CMS adapter's back-off waits, recorded instead of slept."""
    return []


@pytest.fixture
def xesync(cfg, lab, waits):
    """xesync wired on the lab (its clock the lab's); ``enforce_owner`` switches the fix-up on."""
    built = []

    def make(*, enforce_owner=False):
        settings = dataclasses.replace(cfg, cms=dataclasses.replace(cfg.cms, enforce_owner=enforce_owner))
        monitor = CmsCallMonitor(settings.cms, sleep=waits.append)
        wired = wiring.build(settings, clock=lab.clock.now, monitor=monitor)
        wired.stack.callback(monitor.close)
        built.append(wired)
        return wired

    yield make
    for wired in built:
        wired.close()


@pytest.fixture
def organisers(lab):
    """Lab users who book the tentative room through exchangelib, closed after the test."""
    made = []

    def make(address="alice@lab.example"):
        driver = LabOrganiser(lab, TROMSO, organiser=address)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


def at(days: int, hour: int) -> datetime:
    """``days`` after NOW at ``hour``:00 Oslo time."""
    day = (NOW + timedelta(days=days)).astimezone(OSLO_TZ).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=OSLO_TZ)


def tms_knobs(lab: Lab, **knobs) -> None:
    """How the TMS simulator passes the owner to CMS and resets its pool spaces."""
    lab.tms.control("knobs", "POST", knobs)


def cms_knobs(lab: Lab, **knobs) -> None:
    """CMS simulator knobs (re-evaluation of a running call's licence)."""
    lab.cms.control("knobs", "PUT", knobs)


def book(wired, organiser, subject: str, start: datetime, end: datetime):
    """Book through Outlook, sync, and return the stored booking."""
    uid = organiser.book(subject, start, end)
    assert wired.engine.sync().failed_rooms == []
    booking = wired.store.booking(uid)
    assert booking is not None
    assert booking.live
    return booking


def cli(cfg, *args: str) -> str:
    """Run an xesync command with the lab's configuration; return its stdout (exit status 0)."""
    result = CliRunner().invoke(app, [*args[:1], "-c", str(cfg.source), *args[1:]])
    assert result.exit_code == 0, result.output
    return result.stdout


def verify(cfg, lab, *extra: str) -> str:
    """`xesync verify` at the lab clock's time."""
    return cli(cfg, "verify", "--at", lab.clock.now().isoformat(), *extra)


def pool_space(wired, space_id: str):
    """The pool space as CMS shows it now."""
    return wired.monitor.space(space_id)


# ---------------------------------------------------------------------------------- acceptance


def test_tms_passing_the_owner_gives_pmp_confirmed_and_explain_shows_the_chain(xesync, organisers, lab, cfg):
    """Alice (PMP+) is predicted PMP+; before the start the space is not yet found, at the start
    `xesync verify` confirms her licence, and `explain` shows rooms, TMS, space, call and decisions."""
    tms_knobs(lab, owner_to_cms="ownerJid")
    wired = xesync()
    booking = book(wired, organisers(), "Quarterly numbers", at(1, 10), at(1, 11))
    assert booking.predicted_licence == "pmp"
    lab.clock.set(booking.start - timedelta(minutes=4))
    before = verify(cfg, lab)
    assert "call_not_found" in before
    assert "before the start" in before
    lab.clock.set(booking.start + timedelta(minutes=1))
    out = verify(cfg, lab)
    assert "pmp_confirmed" in out
    checks = wired.store.licence_history(uid=booking.uid)
    assert [c.stage for c in checks] == [CheckStage.BEFORE_START, CheckStage.AT_START]
    final = checks[-1]
    assert final.verdict is LicenceVerdict.PMP_CONFIRMED
    assert (final.owner_jid, final.matched_by, final.conference_id) == (
        "alice@lab.example", "title", booking.conference_id,
    )  # fmt: skip
    assert final.cospace_id
    assert final.call_id
    assert wired.checker.run_due(lab.clock.now()) == []  # nothing more due: the verdict stands
    text = cli(cfg, "explain", str(booking.conference_id))
    chain = (
        booking.uid, TROMSO, "accepted", f"conference {booking.conference_id}", "predicted licence PMP+",
        "pmp_confirmed", final.cospace_id, final.call_id, "alice@lab.example", "create_booking",
    )  # fmt: skip
    for part in chain:
        assert part in text, part


def test_no_owner_from_tms_without_fix_up_is_smp_no_owner(xesync, organisers, lab, cfg):
    """TMS passing no owner (as traced on 15.3) and no fix-up: the call runs on SMP+, smp_no_owner."""
    tms_knobs(lab, owner_to_cms="none")
    wired = xesync()
    booking = book(wired, organisers(), "Stand-up", at(1, 9), at(1, 10))
    lab.clock.set(booking.start + timedelta(minutes=1))
    (check,) = wired.checker.run_due(lab.clock.now())
    assert check.verdict is LicenceVerdict.SMP_NO_OWNER
    assert "TMS passed no owner" in check.reason
    assert check.fixup_in_time is None
    assert "smp_no_owner" in cli(cfg, "explain", "Stand-up")


def test_fix_up_with_cms_re_evaluating_gives_pmp_and_leaves_the_pool_space_without_owner(
    xesync, organisers, lab, cfg
):
    """With enforce_owner and a CMS that re-evaluates, the late owner gives PMP+; after the end xesync
    clears the owner it set, so the reused pool space carries none; explain shows both changes."""
    tms_knobs(lab, owner_to_cms="none", reset_clears_owner=False)
    cms_knobs(lab, reevaluate_on_owner_change=True)
    wired = xesync(enforce_owner=True)
    booking = book(wired, organisers(), "Design crit", at(2, 13), at(2, 14))
    lab.clock.set(booking.start + timedelta(minutes=1))
    (check,) = wired.checker.run_due(lab.clock.now())
    assert check.verdict is LicenceVerdict.PMP_CONFIRMED
    assert check.fixup_in_time is False
    assert pool_space(wired, check.cospace_id).owner_jid == "alice@lab.example"
    assert wired.checker.next_due(lab.clock.now()) == booking.end  # the clear
    lab.clock.set(booking.end + timedelta(minutes=1))
    assert pool_space(wired, check.cospace_id).name.startswith("TMS_Scheduled_Meeting_")  # TMS reset it
    assert wired.checker.run_due(lab.clock.now()) == []
    space = pool_space(wired, check.cospace_id)
    assert space.owner is None
    assert wired.checker.next_due(lab.clock.now()) is None
    text = cli(cfg, "explain", booking.uid)
    assert "set_cms_owner applied" in text
    assert "clear_cms_owner applied" in text


def test_fix_up_without_re_evaluation_is_smp_no_owner_because_the_owner_came_too_late(
    xesync, organisers, lab
):
    """With enforce_owner and a CMS that fixes the licence at start: smp_no_owner, the owner came too late."""
    tms_knobs(lab, owner_to_cms="none")
    cms_knobs(lab, reevaluate_on_owner_change=False)
    wired = xesync(enforce_owner=True)
    booking = book(wired, organisers(), "Design crit", at(2, 15), at(2, 16))
    lab.clock.set(booking.start + timedelta(minutes=1))
    (check,) = wired.checker.run_due(lab.clock.now())
    assert check.verdict is LicenceVerdict.SMP_NO_OWNER
    assert "too late" in check.reason
    assert check.fixup_in_time is False


def test_an_organiser_outside_the_pmp_group_is_predicted_smp_and_found_unlicensed(
    xesync, organisers, lab, cfg
):
    """Carol is predicted SMP+ at booking (told what to ask IT for), and smp_owner_unlicensed at the start."""
    tms_knobs(lab, owner_to_cms="ownerJid")
    wired = xesync()
    carol = organisers("carol@lab.example")
    booking = book(wired, carol, "Budget", at(3, 10), at(3, 11))
    assert booking.predicted_licence == "smp"
    assert "carol" in booking.predicted_reason
    assert any("ask IT" in body for _, body in carol.inbox())
    lab.clock.set(booking.start + timedelta(minutes=1))
    out = verify(cfg, lab)
    assert "smp_owner_unlicensed" in out
    text = cli(cfg, "explain", "Budget")
    assert "predicted licence SMP+" in text
    assert "smp_owner_unlicensed" in text


def test_a_stale_owner_on_a_reused_pool_space_is_owner_mismatch(xesync, organisers, lab):
    """Bob's owner survives TMS's reset of the pool space, so Alice's next meeting there is owner_mismatch."""
    tms_knobs(lab, owner_to_cms="ownerJid", reset_clears_owner=False)
    wired = xesync()
    bobs = book(wired, organisers("bob@lab.example"), "Bob's sync", at(4, 9), at(4, 10))
    lab.clock.set(bobs.start + timedelta(minutes=1))
    (first,) = wired.checker.run_due(lab.clock.now())
    assert first.verdict is LicenceVerdict.PMP_CONFIRMED
    lab.clock.set(bobs.end + timedelta(minutes=1))
    tms_knobs(lab, owner_to_cms="none")
    alices = book(wired, organisers(), "Alice's sync", at(4, 11), at(4, 12))
    lab.clock.set(alices.start + timedelta(minutes=1))
    (check,) = wired.checker.run_due(lab.clock.now())
    assert check.verdict is LicenceVerdict.OWNER_MISMATCH
    assert check.owner_jid == "bob@lab.example"
    assert check.cospace_id == first.cospace_id


def test_cms_down_is_unverifiable_retried_and_the_sync_goes_on(xesync, organisers, lab, waits):
    """With CMS refusing, the verdict is unverifiable and due again; a new meeting still books (its
    prediction unknown); once CMS is back, the retry confirms PMP+."""
    tms_knobs(lab, owner_to_cms="ownerJid")
    wired = xesync()
    alice = organisers()
    booking = book(wired, alice, "Board", at(5, 10), at(5, 11))
    lab.clock.set(booking.start + timedelta(minutes=1))
    lab.inject(service="cms", kind="http_status", status=503)
    (down,) = wired.checker.run_due(lab.clock.now())
    assert down.verdict is LicenceVerdict.UNVERIFIABLE
    assert "retried" in down.reason
    assert waits  # the adapter backed off before giving up
    assert wired.checker.next_due(lab.clock.now()) == down.checked_at + timedelta(minutes=2)
    later = book(wired, alice, "Booked while CMS is down", at(6, 10), at(6, 11))
    assert later.predicted_licence is None
    assert "CMS could not be asked" in later.predicted_reason
    lab.clear_faults()
    lab.clock.set(down.checked_at + timedelta(minutes=2))
    (retried,) = wired.checker.run_due(lab.clock.now())
    assert retried.stage is CheckStage.RETRY
    assert retried.verdict is LicenceVerdict.PMP_CONFIRMED


def test_report_counts_the_verdicts_per_organiser_and_room_in_table_csv_and_html(
    xesync, organisers, lab, cfg, tmp_path
):
    """One PMP+ and one SMP+ sitting: the report counts both, the SMP+ minutes Alice should have had on
    PMP+, and its HTML parses with the chart's bars present."""
    wired = xesync()
    alice = organisers()
    good = book(wired, alice, "On licence", at(1, 9), at(1, 10))
    bad = book(wired, alice, "Shared licence", at(1, 12), at(1, 13))
    for booking, owner_to_cms in ((good, "ownerJid"), (bad, "none")):
        tms_knobs(lab, owner_to_cms=owner_to_cms)  # read by the TMS simulator when the meeting starts
        lab.clock.set(booking.start + timedelta(minutes=1))
        wired.checker.run_due(lab.clock.now())
    manual = verify(cfg, lab, "--meeting", bad.uid)
    assert "smp_no_owner" in manual
    assert "manual" in manual
    ambiguous = CliRunner().invoke(app, ["explain", "-c", str(cfg.source), "licence"])
    assert ambiguous.exit_code == 2
    assert "2 meetings match 'licence'" in ambiguous.output
    until = ("--since", "7d", "--until", (bad.end + timedelta(hours=1)).isoformat())
    table = cli(cfg, "report", *until)
    assert "alice@lab.example" in table
    assert TROMSO in table
    rows = list(csv.DictReader(io.StringIO(cli(cfg, "report", *until, "--format", "csv"))))
    mine = next(r for r in rows if r["scope"] == "organiser" and r["name"] == "alice@lab.example")
    assert (mine["booked"], mine["pmp"], mine["smp"], mine["smp_no_owner"]) == ("2", "1", "1", "1")
    assert mine["smp_minutes_should_be_pmp"] == "60"
    room = next(r for r in rows if r["scope"] == "room" and r["name"] == TROMSO)
    assert (room["pmp"], room["smp"]) == ("1", "1")
    html_path = tmp_path / "report.html"
    cli(cfg, "report", *until, "--format", "html", "--output", str(html_path))
    bars = _Bars()
    bars.feed(html_path.read_text(encoding="utf-8"))
    assert bars.svg == 1
    assert {(b["data-kind"], b["data-count"]) for b in bars.rects if "data-kind" in b} == {
        ("pmp", "1"),
        ("smp", "1"),
    }
    assert bars.external == []


class _Bars(HTMLParser):
    """Collects the SVG chart's bars and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.svg = 0
        self.rects: list[dict[str, str]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        """Count the svg, keep each rect's attributes, note src/href attributes."""
        values = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self.svg += 1
        if tag == "rect":
            self.rects.append(values)
        self.external.extend(v for k, v in values.items() if k in {"src", "href"})

    handle_startendtag = handle_starttag
