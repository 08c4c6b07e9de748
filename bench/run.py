"""The scale benchmark: xesync against a TMSXE-style poller, side by side on one lab and one scenario.

    .venv/bin/python -m bench.run --rooms 100,1000,5000 [--meetings 10,4,1]
        [--ews-ms 30] [--tms-ms 50] [--cms-ms 20] [--concurrency 10] [--bookings 200]

For each room count: generate the scenario (:mod:`bench.scenario`), start the lab in this process with the
injected latency, load the meetings, then measure **xesync** (its own process) and, after TMS is reset,
the **baseline** poller (its own process) on the same calendars:

1. *initial import*: one pass from an empty state; wall time, EWS and TMS requests (the lab's request
   log), and the ratio to the bound (EWS requests x EWS latency + TMS requests x TMS latency) / concurrency;
2. *idle cost*: one more pass with nothing changed; EWS requests per room per pass, times the passes an
   hour makes at the interval (xesync's ``sync.interval``; the baseline's 5 and 1 minutes);
3. *Outlook -> TMS latency* over ``--bookings`` bookings made through exchangelib as organisers. A poller
   only looks at its interval, so a booking made at a random moment waits for the next pass: uniform on
   [0, P), P = max(interval, pass duration). That wait is drawn; what follows it (the pass reaching the
   room and saving to TMS) is measured, from the pass's start to TMS registering the key;
4. *cost*: peak RSS and CPU seconds of the worker process, CPU per 1,000 bookings of the import.

Results go to ``bench/results/latest.json`` and ``latest.md`` (:mod:`bench.report`), and the plot to
``bench/results/scale.svg``. Nothing here is asserted: targets are reported beside the figures.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report, streaming
from bench.probes import Outlook, SaveLog, load
from bench.procs import Worker
from bench.scenario import Latency, Scenario, generate
from bench.worker import BASELINE_SOURCE
from xesync import logs
from xesync.config import LoggingConfig
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config
from xesync.meetings import external_key

RESULTS = Path(__file__).parent / "results"
XESYNC_SOURCE = "xesync"
XESYNC_INTERVAL_S = 60  # sync.interval's default
BASELINE_INTERVALS_S = (300, 60)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear between ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


def lab_cpu() -> float:
    """CPU seconds of this process (the lab's simulators and the bookers) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_config(lab: Lab, scenario: Scenario, workdir: Path, concurrency: int) -> Path:
    """The configuration ``xesync lab serve --write-config`` writes, with the benchmark's concurrency."""
    path = workdir / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=scenario.fixture, state_dir=workdir / "state")
    text = path.read_text(encoding="utf-8")
    text = text.replace("[exchange]\n", f"[exchange]\nmax_connections = {concurrency}\n", 1)
    text = text.replace("[sync]\n", f'[sync]\ninterval = "{XESYNC_INTERVAL_S}s"\n', 1)
    path.write_text(text, encoding="utf-8")
    return path


class Bench:
    """One room count's measurements."""

    def __init__(self, lab: Lab, scenario: Scenario, args: argparse.Namespace, workdir: Path) -> None:
        self.lab, self.scenario, self.args, self.workdir = lab, scenario, args, workdir
        self.saves = SaveLog(lab)
        self.outlook = Outlook(lab)
        self.rooms = len(scenario.rooms)
        self.latency = Latency(args.ews_ms, args.tms_ms, args.cms_ms)

    def counts(self) -> tuple[int, int]:
        """EWS and TMS requests since the last reset (authentication legs excluded)."""
        snap = self.lab.requests.snapshot()
        ews = snap.get("ews", {}).get("operations", {})
        tms = snap.get("tms", {}).get("operations", {})
        return (
            sum(n for op, n in ews.items() if not op.startswith("(")),
            sum(n for op, n in tms.items() if not op.startswith("(")),
        )

    def side(self, name: str, config: Path, source: str, intervals: tuple[int, ...]) -> dict[str, Any]:
        """Import, idle and latency for one side, in its own process."""
        worker = Worker(name, config, self.workdir / f"{name}.log")
        try:
            out: dict[str, Any] = {"import": self.initial_import(worker, source)}
            out["idle"] = self.idle(worker, intervals)
            out["latency"] = self.poll_latency(worker, source, intervals)
            out["process"] = worker.cost()
            imported = out["import"]["bookings"]
            out["process"]["cpu_s_per_1000_bookings"] = (
                round(out["import"]["cpu_s"] / imported * 1000, 2) if imported else None
            )
        finally:
            worker.close()
        return out

    def initial_import(self, worker: Worker, source: str) -> dict[str, Any]:
        """One pass from an empty state."""
        self.lab.requests.reset()
        cpu0, lab0 = worker.cost()["cpu_s"], lab_cpu()
        answer = worker.run_pass()
        ews, tms = self.counts()
        ops = self.lab.requests.snapshot("ews").get("ews", {}).get("operations", {})
        bound = (ews * self.latency.ews + tms * self.latency.tms) / 1000 / self.args.concurrency
        return {
            "wall_s": answer["seconds"],
            "ews_requests": ews,
            "tms_requests": tms,
            "bound_s": round(bound, 2),
            "ratio_to_bound": round(answer["seconds"] / bound, 2) if bound else None,
            "bookings": self.saves.count(source),
            "ews_operations": ops,
            "failed_rooms": answer["failed_rooms"],
            "cpu_s": round(worker.cost()["cpu_s"] - cpu0, 2),
            "lab_cpu_s": round(lab_cpu() - lab0, 2),
        }

    def idle(self, worker: Worker, intervals: tuple[int, ...]) -> dict[str, Any]:
        """A pass with nothing changed, and what it costs an hour at each interval.

        One settling pass first: the import's own write-backs (body, acceptance) come back as changes once.
        """
        worker.run_pass()
        self.lab.requests.reset()
        answer = worker.run_pass()
        ews, tms = self.counts()
        ops = self.lab.requests.snapshot("ews").get("ews", {}).get("operations", {})
        per_pass = ews / self.rooms
        return {
            "pass_s": answer["seconds"],
            "ews_per_room_per_pass": round(per_pass, 3),
            "tms_requests": tms,
            "ews_operations": ops,
            "ews_per_room_per_hour": {
                f"{i}s": round(per_pass * 3600 / max(i, answer["seconds"]), 1) for i in intervals
            },
        }

    def poll_latency(self, worker: Worker, source: str, intervals: tuple[int, ...]) -> dict[str, Any]:
        """Bookings in batches, one pass after each; waits drawn, passes measured (module docstring, 3)."""
        rng = random.Random(1500)
        processed: list[float] = []
        durations: list[float] = []
        missed = 0
        batches = max(1, self.args.bookings // self.args.batch)
        for _ in range(batches):
            keys = []
            for n in range(self.args.batch):
                meeting = self.scenario.new_meeting(rng.choice(self.scenario.rooms), f"Latency {n}")
                if meeting is None:
                    continue
                uid, _sent = self.outlook.book(meeting)
                keys.append(external_key(uid))
            started = time.monotonic()
            answer = worker.run_pass()
            durations.append(answer["seconds"])
            for key in keys:
                saved = self.saves.at(source, key)
                if saved is None:
                    missed += 1
                else:
                    processed.append(saved - started)
        out: dict[str, Any] = {
            "method": "poll: wait uniform on [0, max(interval, pass)) + measured pass-to-TMS time",
            "bookings": len(processed) + missed,
            "not_booked": missed,
            "pass_s": durations,
            "processing_p50_s": round(percentile(processed, 0.5), 2) if processed else None,
        }
        for interval in intervals:
            period = max(interval, *durations)
            total = [rng.uniform(0, period) + p for p in processed]
            out[f"{interval}s"] = {
                "p50_s": round(percentile(total, 0.5), 1) if total else None,
                "p95_s": round(percentile(total, 0.95), 1) if total else None,
            }
        return out


def run_size(rooms: int, meetings: int, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one room count, on a fresh lab."""
    workdir = Path(tempfile.mkdtemp(prefix=f"xesync-bench-{rooms}-"))
    try:
        started = time.perf_counter()
        scenario = generate(rooms, meetings, workdir)
        with Lab(scenario.fixture) as lab:
            lab_start = time.perf_counter() - started
            for service, ms in (("ews", args.ews_ms), ("tms", args.tms_ms), ("cms", args.cms_ms)):
                if ms:
                    lab.inject(service=service, kind="latency", ms=ms)
            loaded = time.perf_counter()
            load(lab, scenario)
            load_s = time.perf_counter() - loaded
            config = write_config(lab, scenario, workdir, args.concurrency)
            bench = Bench(lab, scenario, args, workdir)
            try:
                result: dict[str, Any] = {
                    "rooms": rooms,
                    "meetings_per_room": meetings,
                    "meetings": len(scenario.meetings),
                    "series": scenario.series,
                    "multi_room": scenario.multi_room,
                    "organisers": len(scenario.users),
                    "lab_start_s": round(lab_start, 1),
                    "load_s": round(load_s, 1),
                }
                result["xesync"] = bench.side("xesync", config, XESYNC_SOURCE, (XESYNC_INTERVAL_S,))
                if args.streaming and rooms > args.stream_max_rooms:
                    result["xesync"]["streaming"] = {"error": f"not run above {args.stream_max_rooms} rooms"}
                elif args.streaming:
                    idle = result["xesync"]["idle"]["ews_per_room_per_pass"]
                    try:
                        result["xesync"]["streaming"] = streaming.measure(bench, config, idle)
                    except Exception as exc:  # noqa: BLE001 - the service is new; report, measure the rest
                        result["xesync"]["streaming"] = {"error": f"{type(exc).__name__}: {exc}"}
                lab.tms.reset()  # type: ignore[union-attr] - the baseline books the same rooms afresh
                bench.saves.attach()
                result["baseline"] = bench.side("baseline", config, BASELINE_SOURCE, BASELINE_INTERVALS_S)
            finally:
                bench.outlook.close()
    except BaseException:
        sys.stderr.write(f"bench: {rooms} rooms failed; the workers' logs are in {workdir}\n")
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> None:
    """Parse, run each room count, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", default="100,1000,5000")
    parser.add_argument(
        "--meetings", default="10,4,1", help="meetings per room, one for each room count (the last repeats)"
    )
    parser.add_argument("--ews-ms", type=int, default=30)
    parser.add_argument("--tms-ms", type=int, default=50)
    parser.add_argument("--cms-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--bookings", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="bookings between two poller passes")
    parser.add_argument(
        "--streaming", action=argparse.BooleanOptionalAction, default=True, help="also measure `xesync run`"
    )
    parser.add_argument("--stream-interval", type=int, default=60, help="sync.interval for `xesync run`")
    parser.add_argument(
        "--stream-safety", type=int, default=3600, help="sync.stream_safety_interval for `xesync run`"
    )
    parser.add_argument(
        "--stream-gap", type=float, default=0.5, help="mean seconds between streamed bookings"
    )
    parser.add_argument(
        "--stream-max-rooms", type=int, default=5000, help="measure `xesync run` up to this many rooms"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge", action="store_true", help="keep the other room counts of --out/latest.json"
    )
    args = parser.parse_args()
    logs.configure(LoggingConfig(level="warning"), stream=sys.stderr)
    sizes: list[dict[str, Any]] = []
    kept = report.previous(args.out) if args.merge else []
    per_room = [int(m) for m in args.meetings.split(",")]
    for n, rooms in enumerate(int(r) for r in args.rooms.split(",")):
        meetings = per_room[min(n, len(per_room) - 1)]
        sizes.append(run_size(rooms, meetings, args))
        done = {z["rooms"] for z in sizes}
        merged = sorted([z for z in kept if z["rooms"] not in done] + sizes, key=lambda z: z["rooms"])
        report.write(merged, args, args.out)  # after each size, so a long run leaves what it has


if __name__ == "__main__":
    main()
