"""``xesync demo``: the table it prints, the verdict for every meeting, and nothing left running.

The expected table is written out here on its own (not read from :mod:`xesync.lab.demo`), so that a
change to the demo's scenarios or verdicts shows up as a failure.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from xesync.lab.demo import demo_day, run_demo
from xesync.lab.demo_table import render

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# meeting, organiser, rooms, TMS id booked?, room response, CMS owner, licence verdict; per scenario.
EXPECTED = {
    "main": [
        ("Quarterly numbers (one-off)", "alice@lab.example", "Tromso", True, "accept",
         "alice@lab.example", "pmp_confirmed"),
        ("Weekly planning (weekly series)", "carol@lab.example", "Oslo", True, "accept",
         "carol@lab.example", "smp_owner_unlicensed"),
        ("Design review (two rooms)", "bob@lab.example", "Oslo + Bergen", True, "accept",
         "bob@lab.example", "pmp_confirmed"),
        ("Partner call (external organiser)", "erin@partner.example", "Tromso", False, "decline",
         "-", "- (not booked)"),
        ("Budget (conflict)", "dave@lab.example", "Tromso", False, "decline", "-", "- (not booked)"),
    ],
    "TMS passes no owner to CMS": [
        ("Quarterly numbers (one-off)", "alice@lab.example", "Tromso", True, "accept", "-", "smp_no_owner"),
    ],
    "TMS passes no owner, and cms.enforce_owner is on": [
        ("Quarterly numbers (one-off)", "alice@lab.example", "Tromso", True, "accept",
         "alice@lab.example", "pmp_confirmed"),
    ],
}  # fmt: skip
SECTION = re.compile(r"^-- the one-off again, on a fresh lab where (?P<scenario>.+):$")


def parse_table(text: str) -> dict[str, list[tuple[object, ...]]]:
    """The table's rows by scenario, each as EXPECTED spells it, plus the row's last cell."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("meeting "))
    found: dict[str, list[tuple[object, ...]]] = {}
    scenario = "main"
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        section = SECTION.match(line)
        if section:
            scenario = section["scenario"]
            continue
        meeting, organiser, rooms, tms_id, response, owner, verdict, mark = re.split(r"\s{2,}", line)
        found.setdefault(scenario, []).append(
            (meeting, organiser.split(" (")[0], rooms, tms_id.isdigit(), response, owner, verdict, mark)
        )
    return found


def session_members(sid: int) -> list[int]:
    """PIDs of the live processes in session ``sid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


def start_demo(tmp_path) -> subprocess.Popen[str]:
    """`python -m xesync demo` in a session of its own, its temporary files under ``tmp_path``."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("XESYNC_CONFIG", None)  # the demo needs no configuration
    return subprocess.Popen(
        [sys.executable, "-m", "xesync", "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_make_demo_prints_every_expected_verdict_and_leaves_no_process(tmp_path):
    """`xesync demo` as a subprocess exits 0, prints every meeting with its expected verdict, and leaves
    no process of its session (slapd included) running."""
    child = start_demo(tmp_path)
    # The check below must see a live session: here the demo's own process is still in it.
    assert child.pid in session_members(child.pid)
    try:
        out, err = child.communicate(timeout=110)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, 9)
    assert child.returncode == 0, err
    table = parse_table(out)
    wanted = {scenario: [(*row, "ok") for row in rows] for scenario, rows in EXPECTED.items()}
    assert table == wanted
    assert "Every meeting got its expected verdict." in out
    assert "lab stopped" in err  # progress went to stderr, stdout is the table
    assert session_members(child.pid) == []
    assert list(tmp_path.iterdir()) == []  # the temporary configuration and store are gone


def test_sigterm_stops_the_demo_with_its_lab_and_temporary_files(tmp_path):
    """SIGTERM while the demo runs ends it with 143, with no process and no temporary file left."""
    child = start_demo(tmp_path)
    try:
        for line in child.stderr:  # wait until the lab (and slapd, when installed) is up
            if "lab up" in line:
                break
        else:
            pytest.fail(f"the demo ended before the lab was up: {child.wait()}")
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, 9)
    assert child.returncode == 128 + signal.SIGTERM
    assert session_members(child.pid) == []
    assert list(tmp_path.iterdir()) == []


def test_the_demo_runs_on_the_mock_directory_without_slapd():
    """With the directory on ldap3's mock, the demo reaches the same verdicts, reporting progress."""
    lines: list[str] = []
    report = run_demo(progress=lines.append, directory="mock")
    assert "mock" in report.directory
    table = parse_table(render(report))
    assert {s: [row[:-1] for row in rows] for s, rows in table.items()} == EXPECTED
    assert report.ok
    assert any("xesync pass" in line for line in lines)
    assert lines[-1] == "lab stopped"


@pytest.mark.parametrize(
    ("today", "day"),
    [
        (date(2026, 11, 26), date(2026, 11, 27)),  # Thursday -> Friday
        (date(2026, 11, 27), date(2026, 11, 30)),  # Friday -> Monday
        (date(2026, 11, 28), date(2026, 11, 30)),  # Saturday -> Monday
    ],
)
def test_the_meetings_are_on_the_next_weekday(today, day):
    """The demo books its meetings on the next weekday, so that a weekend run looks like a work day."""
    assert demo_day(today) == day
