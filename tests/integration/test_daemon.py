"""``xesync run`` as a subprocess against the lab, and ``xesync check`` against the lab.

The daemon runs as systemd would run it: its own process, a fake ``$NOTIFY_SOCKET`` (an AF_UNIX
datagram socket this test binds), JSON log lines on stderr. The lab runs in the test process on the
wall clock (the daemon has no other clock), and unmodified exchangelib books as a lab user. Waits are
wait-until with generous timeouts; nothing asserts on how long anything took. The harness (the notify
socket, the daemon subprocess, the lab probes) is tests/daemon_kit.py; all tests stay in this module
so that its lab starts once.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from daemon_kit import (
    Daemon,
    caught_up_after,
    conferences,
    connects,
    free_port,
    lab_rooms,
    quiet,
    soon,
    syncs,
    write_config,
)
from ews_lab import LabOrganiser
from polling import wait_until

from xesync import config as config_mod
from xesync.adapters.tms import TmsBookingSink
from xesync.cli import app
from xesync.lab import Lab
from xesync.meetings import external_key

pytestmark = pytest.mark.slow

TROMSO = "room-tromso@lab.example"


@pytest.fixture(scope="module")
def lab_module() -> Iterator[Lab]:
    """The whole lab for this module."""
    with Lab() as lab:
        yield lab


@pytest.fixture
def lab(lab_module: Lab) -> Iterator[Lab]:
    """The lab, reset, on the wall clock (the daemon reads the wall clock)."""
    lab_module.reset()
    lab_module.clock.set(datetime.now(UTC))
    yield lab_module
    lab_module.reset()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory (AF_UNIX paths are limited to 108 bytes) for the socket, config and log."""
    path = Path(tempfile.mkdtemp(prefix="xesync-daemon-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_daemon(workdir: Path) -> Iterator[Callable[[Path], Daemon]]:
    """Start ``xesync run`` on a config; every daemon started is stopped by PID afterwards."""
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config, workdir)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def alice(lab: Lab) -> Iterator[LabOrganiser]:
    """Alice, a PMP+ user, booking the tentative room."""
    driver = LabOrganiser(lab, TROMSO)
    yield driver
    driver.close()


def test_the_service_notifies_systemd_books_reloads_safely_and_stops_cleanly(
    lab: Lab, workdir: Path, start_daemon: Callable[[Path], Daemon], alice: LabOrganiser
) -> None:
    """READY and WATCHDOG reach the socket, a booking reaches TMS and /metrics, a broken SIGHUP is
    refused with its problems while the daemon runs on, and SIGTERM exits 0 after daemon.stopped."""
    port = free_port()
    config = write_config(lab, workdir, interval="2s", metrics_port=port)
    daemon = start_daemon(config)
    wait_until("READY=1", lambda: daemon.notify.seen("READY=1"))
    wait_until("WATCHDOG=1", lambda: daemon.notify.seen("WATCHDOG=1"))
    assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in daemon.notify.messages)

    alice.book("Daemon booking", *soon(3, 10))
    wait_until("the booking in TMS", lambda: conferences(lab) == 1)
    metrics = wait_until(
        "the booking counter",
        lambda: (
            (body := urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
            and 'xesync_bookings_total{outcome="booked"} 1.0' in body
            and body
        ),
    )
    assert "xesync_room_passes_total" in metrics
    # A meeting starting within cms.check_lead (5 minutes) is checked on CMS as soon as it is booked:
    # the licence job runs after the pass and counts the check's verdict.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=3)
    alice.book("Starts in three minutes", start, start + timedelta(minutes=30))
    wait_until("the booking in TMS", lambda: conferences(lab) == 2)
    wait_until(
        "a licence verdict counted",
        lambda: (
            'xesync_licence_verdicts_total{verdict="'
            in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        ),
    )

    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace('interval = "2s"', 'interval = "soon"\nbogus = 1'), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    refused = wait_until("the refused reload", lambda: daemon.named("config.reload_refused"))
    problems = " ".join(refused[0]["problems"])
    assert "sync.interval" in problems
    assert "bogus" in problems
    assert daemon.proc.poll() is None
    alice.book("After the refused reload", *soon(4, 10))
    wait_until("a booking under the old configuration", lambda: conferences(lab) == 3)

    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert daemon.named("daemon.stopping")
    assert daemon.named("daemon.stopped")
    assert daemon.notify.seen("STOPPING=1")


def test_a_meeting_of_three_rooms_is_booked_once_and_its_organiser_mailed_once(
    lab: Lab, workdir: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    """Under the service, the three rooms a meeting invites are woken together and passed together: one
    conference with their three systems, one confirmation to the organiser, one body write per copy."""
    config = write_config(lab, workdir, interval="60s")
    daemon = start_daemon(config)
    wait_until("READY=1", lambda: daemon.notify.seen("READY=1"))
    wait_until("the streams", lambda: lab.ews.hub.open_streams >= 1)  # type: ignore[union-attr]
    bob = LabOrganiser(lab, TROMSO, organiser="bob@lab.example")
    try:
        quiet(lab)
        lab.requests.reset()
        rooms = [TROMSO, "room-oslo@lab.example", "room-bergen@lab.example"]
        uid = bob.book_rooms("All hands", *soon(5, 13), rooms)
        tms = TmsBookingSink(config_mod.load(config).tms)
        try:
            wait_until(
                "the conference with three systems",
                lambda: (found := tms.find(external_key(uid))) is not None and len(found.system_ids) == 3,
            )
            quiet(lab)
        finally:
            tms.close()
        writes = lab.requests.snapshot("ews")["ews"]["operations"].get("UpdateItem", 0)
        assert writes == len(rooms)  # each copy's dial-in body, once
        confirmations = [body for _, body in bob.inbox() if "All hands" in body]
        assert len(confirmations) == 1, confirmations
    finally:
        bob.close()


def test_a_resumed_stream_catches_up_nobody_and_new_subscriptions_catch_up_every_room(
    lab: Lab, workdir: Path, start_daemon: Callable[[Path], Daemon], alice: LabOrganiser
) -> None:
    """After the lab's ConnectionTimeout the group resumes its subscriptions without one SyncFolderItems
    for the rooms nobody changed, and a booking still reaches TMS through it; when the lab drops the
    subscriptions, the group subscribes anew and passes over every room."""
    daemon = start_daemon(write_config(lab, workdir, interval="1h"))
    wait_until("READY=1", lambda: daemon.notify.seen("READY=1"))
    rooms = lab_rooms(lab)
    wait_until("the first stream", lambda: connects(daemon))
    assert connects(daemon)[0]["catch_up"] is True
    wait_until("the catch-up passes", lambda: caught_up_after(daemon, rooms, 0))

    lab.requests.reset()
    lab.clock.advance(1800)  # past ConnectionTimeout: the lab closes the stream in order
    resumed = wait_until("the resumed stream", lambda: connects(daemon)[1:])
    assert resumed[0]["reconnect"] is True
    assert resumed[0]["catch_up"] is False
    alice.book("Through the resumed stream", *soon(3, 11))
    wait_until("the booking in TMS", lambda: conferences(lab) == 1)
    assert lab.requests.count("ews", "Subscribe") == 0
    assert syncs(lab, TROMSO) >= 1
    untouched = [room for room in rooms if room != TROMSO]
    assert untouched
    assert [syncs(lab, room) for room in untouched] == [0] * len(untouched)

    lab.requests.reset()
    with lab.ews.hub.cond:
        lab.ews.hub.subs.clear()  # the server forgot them: the next connect is refused
        lab.ews.hub.cond.notify_all()
    renewed = wait_until("new subscriptions", lambda: [c for c in connects(daemon)[2:] if c["catch_up"]])
    assert renewed
    assert daemon.named("ews.stream_failed")
    assert lab.requests.count("ews", "Subscribe") >= len(rooms)
    wait_until("a catch-up pass over every room", lambda: all(syncs(lab, room) >= 1 for room in rooms))


def test_with_events_dropped_between_connections_every_connect_catches_up(
    lab: Lab, workdir: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    """With the lab's streaming_keeps_events off and exchange.stream_catch_up = "every_connect", a stream
    resumed after its ConnectionTimeout passes over every room again."""
    lab.ews.settings = dataclasses.replace(lab.ews.settings, streaming_keeps_events=False)
    config = write_config(lab, workdir, interval="1h", exchange='stream_catch_up = "every_connect"\n')
    daemon = start_daemon(config)
    wait_until("READY=1", lambda: daemon.notify.seen("READY=1"))
    rooms = lab_rooms(lab)
    wait_until("the first stream", lambda: connects(daemon))
    wait_until("the catch-up passes", lambda: caught_up_after(daemon, rooms, 0))

    lab.requests.reset()
    lab.clock.advance(1800)
    resumed = wait_until("the resumed stream", lambda: connects(daemon)[1:])
    assert resumed[0]["catch_up"] is True
    assert lab.requests.count("ews", "Subscribe") == 0
    wait_until("a catch-up pass over every room", lambda: all(syncs(lab, room) >= 1 for room in rooms))


def test_a_configuration_error_exits_2_before_ready(
    lab: Lab, workdir: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    """An invalid configuration ends `xesync run` with exit 2 and no READY=1."""
    config = write_config(lab, workdir, interval="never")
    daemon = start_daemon(config)
    assert daemon.proc.wait(30) == 2
    assert not daemon.notify.seen("READY=1")


def test_check_passes_against_the_lab_and_names_a_missing_system_with_its_fix(
    lab: Lab, workdir: Path
) -> None:
    """`xesync check` passes every line against the lab; with one room's system gone from TMS that
    line fails with the fix, and the exit status is non-zero."""
    config = write_config(lab, workdir, interval="60s")
    passed = CliRunner().invoke(app, ["check", "-c", str(config)])
    assert passed.exit_code == 0, passed.output
    assert "FAIL" not in passed.output
    for name in ("exchange reachable", f"exchange room {TROMSO}", "tms api version", "tms book on behalf",
                 "tms system 13", "cms multiparty licensing", "state directory"):  # fmt: skip
        assert any(line.startswith("PASS") and name in line for line in passed.output.splitlines()), name
    with lab.tms.store.lock:
        del lab.tms.store.systems[13]
    failed = CliRunner().invoke(app, ["check", "-c", str(config)])
    assert failed.exit_code == 1
    lines = failed.output.splitlines()
    (line,) = [i for i, text in enumerate(lines) if text.startswith("FAIL") and "tms system 13" in text]
    assert "fix:" in lines[line + 1]
    assert "tms_system_id" in lines[line + 1]
    assert sum(text.startswith("FAIL") for text in lines) == 1
