"""``xesync report`` from a real state store: counts per organiser and room, CSV, self-contained HTML."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from xesync.model import (
    Booking,
    BookingStatus,
    CheckStage,
    LicenceCheck,
    LicenceVerdict,
    SyncRecord,
    TmsState,
)
from xesync.report import build_report, render_csv, render_html, render_table
from xesync.store import Store

T0 = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
OSLO, BERGEN = "room-oslo@lab.example", "room-bergen@lab.example"
EVIL = '<script>alert("x")</script>@lab.example'


def booking(
    uid: str, organiser: str, rooms: tuple[str, ...], start: datetime, predicted: str | None
) -> Booking:
    """A live one-hour booking."""
    return Booking(
        uid=uid, external_key=f"k-{uid}", conference_id=1, organiser=organiser, rooms=rooms, subject=uid,
        start=start, end=start + timedelta(hours=1), content_hash="h", state=TmsState.SAVED, updated_at=T0,
        predicted_licence=predicted,
    )  # fmt: skip


def check(b: Booking, verdict: LicenceVerdict, stage: CheckStage = CheckStage.AT_START) -> LicenceCheck:
    """A verdict on the booking's one sitting."""
    return LicenceCheck(
        room=b.rooms[0], uid=b.uid, verdict=verdict, reason="r", checked_at=b.start + timedelta(minutes=1),
        organiser=b.organiser, rooms=b.rooms, subject=b.subject, start=b.start, end=b.end, stage=stage,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path):
    """A store with Alice's PMP+ and SMP+ meetings, Bob's unverifiable one, and one declined record."""
    with Store.open(tmp_path / "s" / "x.db") as s:
        a1 = booking("A1", "alice@lab.example", (OSLO,), T0, "pmp")
        a2 = booking("A2", "alice@lab.example", (OSLO, BERGEN), T0 + timedelta(hours=2), "pmp")
        b1 = booking("B1", EVIL, (BERGEN,), T0 + timedelta(hours=4), None)
        old = booking("OLD", "alice@lab.example", (OSLO,), T0 - timedelta(days=30), "pmp")
        with s.transaction() as tx:
            for b in (a1, a2, b1, old):
                tx.upsert_booking(b)
            for c in (
                check(a1, LicenceVerdict.CALL_NOT_FOUND, CheckStage.BEFORE_START),
                check(a1, LicenceVerdict.PMP_CONFIRMED),
                check(a2, LicenceVerdict.UNVERIFIABLE),
                check(a2, LicenceVerdict.SMP_NO_OWNER, CheckStage.RETRY),
                check(b1, LicenceVerdict.UNVERIFIABLE),
                check(old, LicenceVerdict.SMP_NO_OWNER),
            ):
                tx.add_licence_check(c)
            tx.upsert_record(
                SyncRecord(
                    room=BERGEN,
                    uid="D1",
                    content_hash="h",
                    status=BookingStatus.DECLINED,
                    organiser=EVIL,
                    start=T0,
                    end=T0 + timedelta(hours=1),
                    subject="Clash",
                    updated_at=T0,
                )
            )
        yield s


def built(store):
    """The report for the week before T0 + 1 day."""
    return build_report(store, since=T0 - timedelta(days=6), until=T0 + timedelta(days=1))


def test_counts_per_organiser_and_room_use_each_sittings_last_verdict(store):
    """Alice: 2 booked, 1 PMP+, 1 SMP+ (the retry's verdict), 60 SMP+ minutes that should have been PMP+."""
    report = built(store)
    alice = report.organisers["alice@lab.example"]
    assert (alice.booked, alice.failures, alice.pmp, alice.smp, alice.other) == (2, 0, 1, 1, 0)
    assert alice.smp_minutes_should_be_pmp == 60
    bergen = report.rooms[BERGEN]
    assert (bergen.booked, bergen.failures, bergen.smp, bergen.other) == (2, 1, 1, 1)
    assert report.total.verdicts[LicenceVerdict.CALL_NOT_FOUND] == 0  # the before-start look is no verdict
    assert (report.total.booked, report.total.pmp, report.total.smp, report.total.other) == (3, 1, 1, 1)


def test_an_smp_sitting_without_a_pmp_prediction_is_not_counted_as_lost_minutes(store):
    """A verdict of SMP+ for a meeting not predicted PMP+ adds no 'should have been PMP+' minutes."""
    with store.transaction() as tx:
        b = booking("C1", "carol@lab.example", (OSLO,), T0 + timedelta(hours=6), "smp")
        tx.upsert_booking(b)
        tx.add_licence_check(check(b, LicenceVerdict.SMP_OWNER_UNLICENSED))
    carol = built(store).organisers["carol@lab.example"]
    assert (carol.smp, carol.smp_minutes_should_be_pmp) == (1, 0)


def test_csv_has_a_row_per_organiser_room_and_total_with_every_verdict(store):
    """The CSV parses back into the same counts, with one column per verdict."""
    rows = list(csv.DictReader(io.StringIO(render_csv(built(store)))))
    assert {(r["scope"], r["name"]) for r in rows} == {
        ("organiser", "alice@lab.example"), ("organiser", EVIL.lower()), ("room", OSLO), ("room", BERGEN),
        ("total", "all"),
    }  # fmt: skip
    total = next(r for r in rows if r["scope"] == "total")
    assert (total["pmp_confirmed"], total["smp_no_owner"], total["unverifiable"], total["failed"]) == (
        "1", "1", "1", "1",
    )  # fmt: skip


def test_table_names_every_organiser_and_room(store):
    """The terminal table lists organisers, rooms and the verdict totals."""
    text = render_table(built(store))
    for part in ("alice@lab.example", OSLO, BERGEN, "pmp_confirmed 1", "smp_no_owner 1"):
        assert part in text


class Page(HTMLParser):
    """Parses the report: elements seen, the chart's bars, external references, text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.bars: list[dict[str, str]] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        """Record the tag, the bars' data attributes and any src/href."""
        values = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "rect" and "data-kind" in values:
            self.bars.append(values)
        self.external.extend(v for k, v in values.items() if k in {"src", "href"})

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        """Keep the text."""
        self.text.append(data)


def test_html_is_one_self_contained_page_with_an_svg_chart_and_escaped_values(store):
    """The HTML parses, holds one inline SVG whose bars match the counts, loads nothing, and escapes names."""
    html = render_html(built(store))
    page = Page()
    page.feed(html)
    page.close()
    assert page.tags.count("svg") == 1
    assert "script" not in page.tags
    assert page.external == []
    assert {(b["data-organiser"], b["data-kind"], b["data-count"]) for b in page.bars} == {
        ("alice@lab.example", "pmp", "1"), ("alice@lab.example", "smp", "1"), (EVIL.lower(), "other", "1"),
    }  # fmt: skip
    assert EVIL.lower() in "".join(page.text)  # shown as text, not markup
