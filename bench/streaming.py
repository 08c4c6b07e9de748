"""xesync as the service (``xesync run``): Outlook -> TMS latency and idle cost with EWS streaming.

Runs after the worker's import, on the same state directory, so the service starts warm. It gets the same
configuration with ``sync.interval`` = ``--stream-interval`` (default 60 s, the product's default: the
polling period of a room no live stream covers) and ``sync.stream_safety_interval`` = ``--stream-safety``
(default 1 h: the safety-net pass of a room its live stream covers).

- **Latency**: bookings through exchangelib at random moments (exponential gaps, mean ``--stream-gap``
  seconds), each measured for real from the send returning to TMS registering the key.
- **Idle cost**, three parts added up per room and hour:
  1. *interval passes*, measured in real time: every EWS request in an idle window of
     ``max(150 s, 2.5 x sync.interval)``, scaled to an hour (a room its stream covers should need none);
  2. *streams*, on the lab clock: each 30-minute step closes every stream (its ``ConnectionTimeout``), as
     the real server would, and the service reconnects (and catches up, if it must); two steps are an hour;
  3. *safety-net passes*, computed: the worker's measured idle pass x 3600 / ``sync.stream_safety_interval``
     (an hour of host time is too long to wait for in a benchmark).
"""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs import cpu_seconds, peak_rss_mb
from xesync.meetings import external_key

GROUP_SIZE = 200  # xesync.adapters.exchange_stream.GROUP_SIZE, not imported: the bench must not need it


def daemon_config(config: Path, interval_s: int, safety_s: int) -> Path:
    """A copy of ``config`` with ``sync.interval`` and ``sync.stream_safety_interval`` set."""
    path = config.with_name("xesync-run.toml")
    text = config.read_text(encoding="utf-8")
    lines = [
        f'interval = "{interval_s}s"\nstream_safety_interval = "{safety_s}s"'
        if line.startswith("interval = ")
        else line
        for line in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def settle(bench: Any, quiet_s: float = 3.0, limit_s: float = 600.0) -> float:
    """Wait until the lab sees no request for ``quiet_s`` seconds; how long that took."""
    started = time.monotonic()
    last, since = -1, time.monotonic()
    while time.monotonic() - started < limit_s:
        ews, tms = bench.counts()
        if ews + tms != last:
            last, since = ews + tms, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.25)
    return time.monotonic() - started


def measure(bench: Any, config: Path, idle_pass_per_room: float) -> dict[str, Any]:
    """Start ``xesync run``, measure latency and idle cost, stop it with SIGTERM."""
    args, lab = bench.args, bench.lab
    path = daemon_config(config, args.stream_interval, args.stream_safety)
    log = (bench.workdir / "xesync-run.log").open("ab")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xesync", "run", "-c", str(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    out: dict[str, Any] = {"interval_s": args.stream_interval, "safety_interval_s": args.stream_safety}
    try:
        groups = math.ceil(bench.rooms / GROUP_SIZE)
        deadline = time.monotonic() + 120 + bench.rooms / 10
        while lab.ews.hub.open_streams < groups and time.monotonic() < deadline:
            if proc.poll() is not None:
                return {**out, "error": f"xesync run exited {proc.returncode}; see its log"}
            time.sleep(0.5)
        if lab.ews.hub.open_streams < groups:
            return {**out, "error": f"{lab.ews.hub.open_streams} of {groups} streams open after the deadline"}
        out["streams"] = groups
        out["start_s"] = round(time.monotonic() - started + settle(bench), 1)
        out["latency"] = _latency(bench, proc)
        out["idle"] = _idle(bench, idle_pass_per_room)
        out["process"] = {
            "peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
            "cpu_s": round(cpu_seconds(proc.pid), 2),
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    return out


def _latency(bench: Any, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    args = bench.args
    rng = random.Random(1501)
    sent: dict[str, float] = {}
    cpu0 = cpu_seconds(proc.pid)
    for n in range(args.bookings):
        time.sleep(rng.expovariate(1 / args.stream_gap))
        meeting = bench.scenario.new_meeting(rng.choice(bench.scenario.rooms), f"Streamed {n}")
        if meeting is not None:
            uid, at = bench.outlook.book(meeting)
            sent[external_key(uid)] = at
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(bench.saves.at("xesync", k) is None for k in sent):
        time.sleep(0.25)
    took = [saved - at for key, at in sent.items() if (saved := bench.saves.at("xesync", key)) is not None]
    from bench.run import percentile  # noqa: PLC0415 - one definition, and run imports this module

    settle(bench)
    cpu = cpu_seconds(proc.pid) - cpu0
    return {
        "method": "streaming: measured from the send returning to TMS registering the key",
        "bookings": len(sent),
        "not_booked": len(sent) - len(took),
        "p50_s": round(percentile(took, 0.5), 2) if took else None,
        "p95_s": round(percentile(took, 0.95), 2) if took else None,
        "max_s": round(max(took), 2) if took else None,
        "cpu_s_per_1000_bookings": round(cpu / len(sent) * 1000, 2) if sent else None,
    }


def _idle(bench: Any, idle_pass_per_room: float) -> dict[str, Any]:
    lab, args = bench.lab, bench.args
    settle(bench)
    window = max(150.0, 2.5 * args.stream_interval)
    lab.requests.reset()
    time.sleep(window)
    ews, _tms = bench.counts()
    quiet_ops = lab.requests.snapshot("ews").get("ews", {}).get("operations", {})
    interval = ews / bench.rooms * 3600 / window
    lab.requests.reset()
    for _ in range(2):
        lab.clock.advance(1800)
        time.sleep(2)  # the stream ends when the lab clock passes its timeout; the service reconnects
        settle(bench)
    ews, _tms = bench.counts()
    ops = lab.requests.snapshot("ews").get("ews", {}).get("operations", {})
    streams = ews / bench.rooms
    safety = idle_pass_per_room * 3600 / args.stream_safety
    return {
        "idle_window_s": window,
        "ews_operations_in_idle_window": quiet_ops,
        "interval_ews_per_room_per_hour": round(interval, 3),
        "ews_operations_per_lab_hour": ops,
        "stream_ews_per_room_per_hour": round(streams, 3),
        "safety_ews_per_room_per_hour": round(safety, 3),
        "ews_per_room_per_hour": round(interval + streams + safety, 2),
    }
