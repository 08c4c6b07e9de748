"""The demo's one table (a row per meeting, the columns issue 12 names, each checked) and its command."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

import click

from xesync import logs
from xesync.config import LoggingConfig
from xesync.lab.demo import DemoError, DemoReport, Row, room_names, run_demo

HEADERS = ("meeting", "organiser", "rooms", "TMS id", "room response", "CMS owner", "licence verdict", "")
NONE = "-"


def cells(row: Row) -> tuple[str, ...]:
    """The row's cells, in :data:`HEADERS` order; the last one says whether it is as expected."""
    meeting = row.meeting
    if row.as_expected:
        mark = "ok"
    else:
        wanted = row.expected.value if row.expected else NONE
        mark = f"UNEXPECTED: want {wanted}, room {meeting.expected_response.value}"
    return (
        f"{meeting.subject} ({meeting.label})",
        f"{meeting.organiser} ({meeting.who})",
        room_names(meeting.rooms),
        str(row.tms_id) if row.tms_id is not None else NONE,
        "/".join(sorted({r.value for r in row.responses})) or NONE,
        row.cms_owner or NONE,
        row.verdict.value if row.verdict is not None else f"{NONE} (not booked)",
        mark,
    )


def render(report: DemoReport) -> str:
    """The table as text: a heading, the rows (each scenario under its own line), and the reasons."""
    rows: Sequence[tuple[str, ...]] = [cells(r) for r in report.rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    day = report.day.isoformat() if report.day else "?"
    out = [
        f"xesync demo: Outlook bookings for {day} (Europe/Oslo); directory on {report.directory}",
        "",
        line(HEADERS),
        line(["-" * w for w in widths]),
    ]
    scenario = "main"
    notes: list[str] = []
    for row, values in zip(report.rows, rows, strict=True):
        if row.scenario != scenario:
            scenario = row.scenario
            out.append(f"-- the one-off again, on a fresh lab where {scenario}:")
        out.append(line(values))
        if row.why and row.scenario == "main":
            notes.append(f"  {row.meeting.subject}: declined because {row.why}")
    out += ["", *(["Why the declined meetings were declined:", *notes, ""] if notes else [])]
    out += [
        "Licence verdicts: xesync's licence checker, run at the times it asks for, as the daemon runs it.",
        "Every meeting got its expected verdict." if report.ok else "SOME MEETINGS ARE NOT AS EXPECTED.",
    ]
    return "\n".join(out) + "\n"


def command(*, verbose: bool) -> None:
    """``xesync demo``: progress on stderr, the table on stdout; :class:`DemoError` unless all is right."""
    logs.configure(LoggingConfig(level="error"), stream=sys.stderr, verbose=verbose)
    started = time.monotonic()

    def progress(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:4.1f}s] {line}", err=True)

    # SIGTERM unwinds like Ctrl-C does, so the lab (slapd included) and the temporary files go too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        report = run_demo(progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(render(report), nl=False)
    wrong = [r for r in report.rows if not r.as_expected]
    if wrong:
        names = ", ".join(f"{r.meeting.subject} ({r.scenario})" for r in wrong)
        raise DemoError(f"{len(wrong)} meeting(s) did not get the expected verdict or response: {names}")


EXIT_TERMINATED = 128 + signal.SIGTERM


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    raise SystemExit(EXIT_TERMINATED)
