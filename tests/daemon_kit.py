"""The harness for the daemon tests: a fake systemd notify socket, an ``xesync run`` subprocess, and
probes of the lab (its config, its request log, the daemon's JSON log) that those tests wait on."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xesync.lab import Lab
from xesync.lab.serve import write_lab_config


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


def conferences(lab: Lab) -> int:
    """How many conferences TMS holds."""
    return int(lab.state()["tms"]["conferences"])


def soon(days: int, hour: int) -> tuple[datetime, datetime]:
    """A one-hour meeting ``days`` from now at ``hour``:00 UTC."""
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return start, start + timedelta(hours=1)


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
