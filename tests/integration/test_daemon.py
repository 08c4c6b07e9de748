"""``xesync run`` as a subprocess against the lab, and ``xesync check`` against the lab.

The daemon runs as systemd would run it: its own process, a fake ``$NOTIFY_SOCKET`` (an AF_UNIX
datagram socket this test binds), JSON log lines on stderr. The lab runs in the test process on the
wall clock (the daemon has no other clock), and unmodified exchangelib books as a lab user. Waits are
wait-until with generous timeouts; nothing asserts on how long anything took.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from ews_lab import LabOrganiser
from polling import wait_until

from xesync import config as config_mod
from xesync.adapters.tms import TmsBookingSink
from xesync.cli import app
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config
from xesync.meetings import external_key

pytestmark = pytest.mark.slow

TROMSO = "room-tromso@lab.example"


class Notifications:
    """The fake systemd side: a datagram socket that records every ``sd_notify`` message."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                self.messages.append(self.sock.recv(4096).decode())

    def seen(self, assignment: str) -> bool:
        """Whether any message carried ``assignment`` (e.g. ``READY=1``)."""
        return any(assignment in message.split("\n") for message in list(self.messages))

    def close(self) -> None:
        """Stop reading and close the socket."""
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Daemon:
    """A running ``xesync run`` subprocess, its JSON log and the notifications it sent."""

    def __init__(self, config: Path, workdir: Path, *, watchdog_usec: int = 2_000_000) -> None:
        self.log_path = workdir / "daemon.log"
        self.notify = Notifications(workdir)
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path), "WATCHDOG_USEC": str(watchdog_usec)}
        env.pop("WATCHDOG_PID", None)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xesync", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
        )

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far."""
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out

    def named(self, event: str) -> list[dict[str, Any]]:
        """The log lines whose event is ``event``."""
        return [e for e in self.events() if e.get("event") == event]

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon."""
        self.proc.send_signal(signum)

    def stop(self) -> None:
        """Kill the daemon by its PID if it still runs, and release everything."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
        self.notify.close()


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


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    lab: Lab, workdir: Path, *, interval: str, metrics_port: int | None = None, exchange: str = ""
) -> Path:
    """The lab's configuration with ``sync.interval``, extra ``[exchange]`` lines and, when given, a
    ``[metrics]`` listener."""
    path = workdir / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=workdir / "state")
    text = path.read_text(encoding="utf-8").replace("[sync]\n", f'[sync]\ninterval = "{interval}"\n', 1)
    text = text.replace("[exchange]\n", f"[exchange]\n{exchange}", 1)
    if metrics_port is not None:
        text += f'\n[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {metrics_port}\n'
    path.write_text(text, encoding="utf-8")
    return path


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


def conferences(lab: Lab) -> int:
    """How many conferences TMS holds."""
    return int(lab.state()["tms"]["conferences"])


def soon(days: int, hour: int) -> tuple[datetime, datetime]:
    """A one-hour meeting ``days`` from now at ``hour``:00 UTC."""
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return start, start + timedelta(hours=1)


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


def lab_rooms(lab: Lab) -> list[str]:
    """The lab's room mailboxes, lower case."""
    return [r["email"].lower() for r in lab.describe()["ews"]["rooms"]]


def syncs(lab: Lab, room: str) -> int:
    """``SyncFolderItems`` requests for ``room`` since the request log's last reset."""
    mailboxes = lab.requests.snapshot("ews").get("ews", {}).get("mailboxes", {})
    return int(mailboxes.get(room, {}).get("SyncFolderItems", 0))


def connects(daemon: Daemon) -> list[dict[str, Any]]:
    """The daemon's ``ews.stream_connected`` lines, in order."""
    return daemon.named("ews.stream_connected")


def caught_up_after(daemon: Daemon, rooms: list[str], connect: int) -> bool:
    """Whether every room finished a pass logged after the ``connect``-th (0-based) stream connect."""
    seen, done = 0, set()
    for event in daemon.events():
        if event.get("event") == "ews.stream_connected":
            seen += 1
        elif event.get("event") == "room.synced" and seen > connect:
            done.add(event.get("room"))
    return done >= set(rooms)


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


def quiet(lab: Lab, seconds: float = 2.0) -> None:
    """Wait until no request reached the lab for ``seconds`` (the service has settled)."""

    def total() -> int:
        snap = lab.requests.snapshot()
        return sum(int(s.get("total", 0)) for s in snap.values())

    last, since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = total()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.1)
    pytest.fail("the lab did not go quiet")


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
