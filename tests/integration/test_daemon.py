"""``xesync run`` as a subprocess against the lab, and ``xesync check`` against the lab.

The daemon runs as systemd would run it: its own process, a fake ``$NOTIFY_SOCKET`` (an AF_UNIX
datagram socket this test binds), JSON log lines on stderr. The lab runs in the test process on the
wall clock (the daemon has no other clock), and unmodified exchangelib books as a lab user. Waits are
wait-until with generous timeouts; nothing asserts on how long anything took.
"""

from __future__ import annotations

import contextlib
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

from xesync.cli import app
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config

pytestmark = pytest.mark.slow

TROMSO = "room-tromso@lab.example"
WAIT = 60.0  # generous: a functional bound, not a latency figure


def wait_until(what: str, condition: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


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


def write_config(lab: Lab, workdir: Path, *, interval: str, metrics_port: int | None = None) -> Path:
    """The lab's configuration with ``sync.interval`` and, when given, a ``[metrics]`` listener."""
    path = workdir / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=workdir / "state")
    text = path.read_text(encoding="utf-8").replace("[sync]\n", f'[sync]\ninterval = "{interval}"\n', 1)
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


def test_streaming_wakes_a_room_and_a_dropped_stream_is_followed_by_a_catch_up_pass(
    lab: Lab, workdir: Path, start_daemon: Callable[[Path], Daemon], alice: LabOrganiser
) -> None:
    """With an hour's interval a booking still reaches TMS through a notification; a stream the lab
    closes and whose reconnect it drops is opened again, and every room is passed over after it."""
    config = write_config(lab, workdir, interval="1h")
    daemon = start_daemon(config)
    wait_until("READY=1", lambda: daemon.notify.seen("READY=1"))
    wait_until("the stream", lambda: daemon.named("ews.stream_connected"))
    rooms = [r["email"].lower() for r in lab.describe()["ews"]["rooms"]]
    wait_until("the first passes", lambda: {e["room"] for e in daemon.named("room.synced")} >= set(rooms))

    alice.book("Woken by a notification", *soon(3, 11))
    wait_until("the booking in TMS", lambda: conferences(lab) == 1)

    lab.requests.reset()
    lab.inject(service="ews", kind="drop_connection", operation="GetStreamingEvents", count=1)
    seen = len(daemon.events())
    lab.ews.hub.close_streams()
    reconnected = wait_until(
        "the stream again",
        lambda: [e for e in daemon.named("ews.stream_connected") if e.get("reconnect")],
    )
    assert reconnected
    # The closed stream's reopening was dropped; the next attempt (exchangelib's retry or ours) held.
    assert lab.requests.count("ews", "GetStreamingEvents") >= 2

    def caught_up() -> bool:
        mailboxes = lab.requests.snapshot("ews")["ews"]["mailboxes"]
        after = daemon.events()[seen:]
        synced = {e.get("room") for e in after if e.get("event") == "room.synced"}
        asked = all(mailboxes.get(r, {}).get("SyncFolderItems", 0) >= 1 for r in rooms)
        return asked and synced >= set(rooms)

    wait_until("a catch-up pass over every room", caught_up)
    assert wait_until("an open stream", lambda: lab.state()["ews"]["open_streams"] == 1)

    alice.book("After the reconnect", *soon(4, 11))
    wait_until("the second booking in TMS", lambda: conferences(lab) == 2)


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
