"""``xesync report``: bookings, failures and licence verdicts per organiser and per room, from the store.

Terminology
-----------

sitting
    One time a meeting's call runs (:mod:`xesync.licence_schedule`); the report counts sittings that
    start inside the period, so a weekly series counts once per week.
verdict of a sitting
    Its last licence check that is not a *before start* look (:class:`~xesync.model.CheckStage`).
PMP+ / SMP+
    ``pmp_confirmed`` and ``pmp_likely`` count as PMP+; ``smp_no_owner`` and ``smp_owner_unlicensed``
    as SMP+. ``owner_mismatch`` (someone else's licence, or SMP+), ``call_not_found`` and
    ``unverifiable`` are neither, and are shown apart.
SMP+ minutes that should have been PMP+
    The minutes of SMP+ sittings whose booking was predicted PMP+ at booking time: the organiser
    holds a personal licence, and the call did not use it. A booking whose prediction could not be
    made (CMS down) is not counted, because nothing says it should have been PMP+.
failure
    A room record left ``failed`` or ``declined`` in the period (a TMS refusal, a conflict, an
    unknown organiser, an error).

Three renderings: a terminal table, CSV (one row per organiser and per room, and a total), and one
self-contained HTML file (inline CSS and an inline SVG chart, no script, no external reference) that
reads offline. Every value from the store is escaped in HTML.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape

from xesync.licence_schedule import sittings
from xesync.model import BookingStatus, CheckStage, LicenceCheck, LicenceVerdict
from xesync.store import Store

PMP = frozenset({LicenceVerdict.PMP_CONFIRMED, LicenceVerdict.PMP_LIKELY})
SMP = frozenset({LicenceVerdict.SMP_NO_OWNER, LicenceVerdict.SMP_OWNER_UNLICENSED})
_VERDICTS = tuple(LicenceVerdict)


@dataclass(slots=True)
class Tally:
    """The counts for one organiser, one room, or everything."""

    booked: int = 0
    failures: int = 0
    verdicts: Counter[LicenceVerdict] = field(default_factory=Counter)
    smp_minutes_should_be_pmp: float = 0.0

    @property
    def pmp(self) -> int:
        """Sittings on a personal (PMP+) licence."""
        return sum(self.verdicts[v] for v in PMP)

    @property
    def smp(self) -> int:
        """Sittings on a shared (SMP+) licence."""
        return sum(self.verdicts[v] for v in SMP)

    @property
    def other(self) -> int:
        """Sittings whose licence is someone else's, or could not be told."""
        return sum(self.verdicts.values()) - self.pmp - self.smp


@dataclass(slots=True)
class Report:
    """The report over ``[since, until]``."""

    since: datetime
    until: datetime
    total: Tally = field(default_factory=Tally)
    organisers: dict[str, Tally] = field(default_factory=dict)
    rooms: dict[str, Tally] = field(default_factory=dict)

    def tallies(self, organiser: str, rooms: tuple[str, ...]) -> list[Tally]:
        """The tallies one sitting (or failure) counts in: the total, its organiser's, each room's."""
        out = [self.total, self.organisers.setdefault(organiser.lower(), Tally())]
        out.extend(self.rooms.setdefault(room.lower(), Tally()) for room in dict.fromkeys(rooms))
        return out


def build_report(store: Store, *, since: datetime, until: datetime) -> Report:
    """Count the store's bookings, failures and verdicts of sittings starting in ``[since, until]``."""
    report = Report(since=since, until=until)
    _count_bookings(report, store)
    _count_failures(report, store)
    _count_verdicts(report, store)
    return report


def _count_bookings(report: Report, store: Store) -> None:
    for booking in store.bookings(live_only=True):
        for sitting in sittings(booking, since=report.since, until=report.until):
            if report.since <= sitting.start <= report.until:
                for tally in report.tallies(booking.organiser, booking.rooms):
                    tally.booked += 1


def _count_failures(report: Report, store: Store) -> None:
    rooms = {s.room for s in store.room_states()}
    rooms.update(room for booking in store.bookings() for room in booking.rooms)
    for room in sorted(rooms):
        for record in store.records(room):
            failed = record.status in (BookingStatus.FAILED, BookingStatus.DECLINED)
            if failed and report.since <= record.updated_at <= report.until:
                for tally in report.tallies(record.organiser, (record.room,)):
                    tally.failures += 1


def _count_verdicts(report: Report, store: Store) -> None:
    predicted = {b.key: b.predicted_licence for b in store.bookings()}
    for check in final_verdicts(store.licence_history(since=report.since - timedelta(days=2))):
        start = check.start or check.checked_at
        if not report.since <= start <= report.until:
            continue
        booked_as = predicted.get((check.uid, check.occurrence), predicted.get((check.uid, None)))
        minutes = _minutes(check) if check.verdict in SMP and booked_as == "pmp" else 0.0
        for tally in report.tallies(check.organiser, check.rooms):
            tally.verdicts[check.verdict] += 1
            tally.smp_minutes_should_be_pmp += minutes


def final_verdicts(checks: list[LicenceCheck]) -> list[LicenceCheck]:
    """Each sitting's verdict: its last check that is not a *before start* look (``checks`` oldest first)."""
    last: dict[tuple[str, datetime | None], LicenceCheck] = {}
    for check in checks:
        if check.stage is not CheckStage.BEFORE_START:
            last[(check.uid, check.occurrence)] = check
    return list(last.values())


def _minutes(check: LicenceCheck) -> float:
    if check.start is None or check.end is None:
        return 0.0
    return max(0.0, (check.end - check.start).total_seconds() / 60)


# ---------------------------------------------------------------------------------- renderings

_COLUMNS = ("booked", "failed", "PMP+", "SMP+", "other", "SMP+ min should be PMP+")


def _cells(t: Tally) -> tuple[str, ...]:
    return (
        str(t.booked),
        str(t.failures),
        str(t.pmp),
        str(t.smp),
        str(t.other),
        f"{t.smp_minutes_should_be_pmp:g}",
    )


def _sections(report: Report) -> list[tuple[str, list[tuple[str, Tally]]]]:
    return [
        ("ORGANISER", sorted(report.organisers.items())),
        ("ROOM", sorted(report.rooms.items())),
    ]


def render_table(report: Report) -> str:
    """The report as aligned columns for a terminal."""
    lines = [f"xesync report {report.since.isoformat()} to {report.until.isoformat()}", ""]
    for title, rows in [*_sections(report), ("TOTAL", [("all", report.total)])]:
        table = [(title, *(c.upper() for c in _COLUMNS)), *((name, *_cells(t)) for name, t in rows)]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table)
        lines.append("")
    verdicts = ", ".join(
        f"{v.value} {report.total.verdicts[v]}" for v in _VERDICTS if report.total.verdicts[v]
    )
    lines.append(f"Verdicts: {verdicts or 'none'}")
    return "\n".join(lines) + "\n"


def render_csv(report: Report) -> str:
    """The report as CSV: one row per organiser, per room, and the total, every verdict a column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["scope", "name", "booked", "failed", "pmp", "smp", "other", "smp_minutes_should_be_pmp"]
        + [v.value for v in _VERDICTS]
    )
    rows = [(scope.lower(), name, t) for scope, items in _sections(report) for name, t in items]
    rows.append(("total", "all", report.total))
    for scope, name, t in rows:
        writer.writerow(
            [scope, name, t.booked, t.failures, t.pmp, t.smp, t.other, f"{t.smp_minutes_should_be_pmp:g}"]
            + [t.verdicts[v] for v in _VERDICTS]
        )
    return out.getvalue()


_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right}th:first-child,td:first-child"
    "{text-align:left}caption{text-align:left;font-weight:bold}.pmp{fill:#2e7d32}.smp{fill:#ef6c00}"
    ".other{fill:#9e9e9e}"
)
_BAR_H, _LABEL_W, _BAR_W = 22, 220, 480


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page with an inline SVG chart of PMP+ / SMP+ per organiser."""
    period = f"{report.since.isoformat()} to {report.until.isoformat()}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>xesync licence report {escape(period)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>xesync licence report</h1>",
        f"<p>Sittings starting from {escape(period)}.</p>",
        _chart(report),
    ]
    for title, rows in [*_sections(report), ("Total", [("all", report.total)])]:
        parts.append(f"<table><caption>{escape(title.title())}</caption><thead><tr>")
        parts.append("".join(f"<th>{escape(c)}</th>" for c in (title.title(), *_COLUMNS)))
        parts.append("</tr></thead><tbody>")
        for name, t in rows:
            cells = "".join(f"<td>{escape(c)}</td>" for c in (name, *_cells(t)))
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _chart(report: Report) -> str:
    """Stacked horizontal bars per organiser: PMP+, SMP+ and other sittings."""
    rows = sorted(report.organisers.items())
    most = max((t.pmp + t.smp + t.other for _, t in rows), default=0) or 1
    height = _BAR_H * (len(rows) + 2)
    width = _LABEL_W + _BAR_W + 60
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-labelledby="chart-title">'
        ),
        '<title id="chart-title">PMP+ and SMP+ sittings per organiser</title>',
    ]
    for index, (name, t) in enumerate(rows):
        y = _BAR_H * index + 4
        out.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(name)}</text>')
        x = float(_LABEL_W)
        for css, count in (("pmp", t.pmp), ("smp", t.smp), ("other", t.other)):
            if not count:
                continue
            w = _BAR_W * count / most
            label = f"{name}: {count} {css.upper() + '+' if css != 'other' else 'other'}"
            out.append(
                f'<rect class="{css}" data-organiser="{escape(name)}" data-kind="{css}" '
                f'data-count="{count}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{_BAR_H - 6}">'
                f"<title>{escape(label)}</title></rect>"
            )
            x += w
        out.append(
            f'<text x="{x + 4:.1f}" y="{y + 14}" font-size="12">{t.pmp}/{t.pmp + t.smp + t.other}</text>'
        )
    legend_y = _BAR_H * len(rows) + 18
    for offset, (css, text) in enumerate((("pmp", "PMP+"), ("smp", "SMP+"), ("other", "other"))):
        x = _LABEL_W + offset * 90
        out.append(f'<rect class="{css}" x="{x}" y="{legend_y - 10}" width="12" height="12"/>')
        out.append(f'<text x="{x + 16}" y="{legend_y}" font-size="12">{text}</text>')
    out.append("</svg>")
    return "\n".join(out)
