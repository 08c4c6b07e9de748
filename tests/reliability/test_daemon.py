"""The daemon under SIGKILL and under an outage: ``xesync run`` as systemd runs it, against the lab.

Crash: while a lab user churns meetings through exchangelib, ``xesync run`` (interval 1 s) is killed
with SIGKILL after a random number of requests reached the lab, and started again on the same state,
as ``Restart=on-failure`` does. At the end one more daemon runs until everything converged, then
stops on SIGTERM; TMS and the rooms are checked as in :mod:`test_crash`.

Outage: Exchange answers 500 to everything; ``/healthz`` turns 503 once the rooms' last good pass is
older than ``[metrics] stale_after``, a meeting sent during the outage is not lost, and after the
recovery ``/healthz`` is 200 again and the meeting is booked. Waits are wait-until with generous
bounds; nothing asserts on how long anything took.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ews_lab import LabOrganiser
from polling import wait_until
from rkit import NO_FUSE, daemon_config, free_port, scale, seed
from test_crash import NAMED, Churn, verify

from xesync.adapters.tms import TmsBookingSink
from xesync.meetings import Response, external_key

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
KILLS = 6  # x XESYNC_RELIABILITY_SCALE
TROMSO = "room-tromso@lab.example"


class Daemon:
    """``xesync run`` in its own process (through crashing_xesync.py, so a named point can be armed)."""

    def __init__(self, config: Path, log: Path, point: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"XESYNC_KILL_POINT", "NOTIFY_SOCKET"}}
        if point:
            env["XESYNC_KILL_POINT"] = point
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "crashing_xesync.py"), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=self._log, env=env,
        )  # fmt: skip

    def kill(self) -> int:
        """SIGKILL it (if it still runs); its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()
        return code


def clean(verdict: dict) -> bool:
    """No loss, no duplicate, nothing wrong."""
    return verdict["losses"] == 0 and verdict["duplicates"] == 0 and not verdict["wrong"]


def total_requests(lab) -> int:
    """Every request the lab's simulators saw since the last reset."""
    return sum(s["total"] for s in lab.requests.snapshot().values())


def test_xesync_run_sigkilled_at_random_converges_without_duplicates_or_losses(lab, tmp_path):
    """``xesync run`` SIGKILLed at random moments (and at named points) while meetings churn ends, after a
    clean run, with TMS and every room exactly as the organiser left them."""
    rng = random.Random(seed())  # noqa: S311 - test data, not secrets
    now = datetime.now(UTC)
    lab.clock.set(now)
    cfg = daemon_config(lab, tmp_path, interval="1s", sync=NO_FUSE)
    log = tmp_path / "daemon.log"
    organiser = LabOrganiser(lab, TROMSO)
    churn = Churn(organiser, rng, now)
    kills = 0
    try:
        for attempt in range(KILLS * scale()):
            for _ in range(rng.randint(2, 5)):
                churn.step()
            point = f"{NAMED[attempt % len(NAMED)]}:1" if attempt % 3 == 2 else None
            daemon = Daemon(cfg.source, log, point)
            target = total_requests(lab) + rng.randint(1, 40)
            with contextlib.suppress(AssertionError):  # nothing left to do: the kill lands on an idle daemon
                wait_until(
                    "the daemon to work", lambda t=target, d=daemon: total_requests(lab) >= t or d.proc.poll()
                )
            kills += daemon.kill() == -signal.SIGKILL
        final = Daemon(cfg.source, log)
        try:
            wait_until(
                "convergence",
                lambda: (
                    (v := verify(lab, cfg, churn))["losses"] == 0 and v["duplicates"] == 0 and not v["wrong"]
                ),
                timeout=120,
            )
        finally:
            assert final.stop() == 0, log.read_text()[-3000:]
        verdict = verify(lab, cfg, churn)
    finally:
        organiser.close()
    print(
        f"\nRELIABILITY daemon-crash: seed={seed()} scale={scale()} "
        f"operations={sum(churn.operations.values())} meetings={len(churn.meetings)} kills={kills} "
        f"duplicates={verdict['duplicates']} "
        f"losses={verdict['losses']} orphans={verdict['orphans']} wrong={len(verdict['wrong'])}"
    )
    assert kills >= KILLS * scale() - 1  # a named point may fire before the random kill: both are kills
    assert verdict["duplicates"] == 0
    assert verdict["losses"] == 0
    assert verdict["wrong"] == []


def healthz(port: int) -> int:
    """The status ``/healthz`` answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            json.loads(answer.read())
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_healthz_turns_unhealthy_during_an_exchange_outage_and_healthy_after(lab, tmp_path):
    """During an EWS outage (every request fails and the open stream is cut) /healthz turns 503 and the
    meeting sent meanwhile waits; after recovery /healthz is 200 again and the meeting is booked and
    accepted."""
    lab.clock.set(datetime.now(UTC))
    port = free_port()
    cfg = daemon_config(lab, tmp_path, interval="1s", metrics_port=port)
    path = cfg.source
    path.write_text(path.read_text(encoding="utf-8") + 'stale_after = "3s"\n', encoding="utf-8")
    log = tmp_path / "daemon.log"
    alice = LabOrganiser(lab, TROMSO)
    daemon = Daemon(path, log)
    tms = TmsBookingSink(cfg.tms)
    try:
        wait_until("healthy", lambda: healthz(port) == 200)
        # A room its live stream covers needs no pass for an hour and is healthy that long: the outage
        # must cut the stream too (the lab's faults hit new requests only), as a real one would.
        lab.inject(service="ews", kind="http_status", status=500)
        lab.ews.hub.close_streams()
        wait_until("unhealthy", lambda: healthz(port) == 503)
        start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
        lab.clear_faults()  # let Alice send her meeting, then Exchange goes down again for xesync
        uid = alice.book("Sent during the outage", start, start + timedelta(hours=1))
        lab.inject(service="ews", kind="http_status", status=500)
        lab.ews.hub.close_streams()
        wait_until("still unhealthy", lambda: healthz(port) == 503)
        assert tms.find(external_key(uid)) is None
        lab.clear_faults()
        wait_until("healthy again", lambda: healthz(port) == 200)
        wait_until("the backlog to drain", lambda: tms.find(external_key(uid)) is not None)
        wait_until("the room to accept", lambda: alice.response_seen(uid) is Response.ACCEPT)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        secrets = [s.reveal() for s in (cfg.exchange.password, cfg.tms.password, cfg.cms.password) if s]
        assert "xesync_" in metrics
        assert [s for s in secrets if s in metrics + log.read_text()] == []  # nor in the daemon's log
    finally:
        tms.close()
        alice.close()
        assert daemon.stop() == 0, log.read_text()[-3000:]
