"""Writes the benchmark's results: ``latest.json``, ``latest.md`` and ``scale.svg`` (no plotting library).

The SVG is drawn by hand: two panels against room count on a log axis, import wall time (xesync and the
baseline) and peak RSS (xesync and the baseline).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """What the figures came from."""
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parents[1],
    ).stdout.strip()  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
    }


def write(sizes: list[dict[str, Any]], args: argparse.Namespace, out: Path) -> None:
    """Write the three files for the sizes measured so far."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}  # the command line, to reproduce the run
    data = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": settings,
        "sizes": sizes,
    }
    (out / "latest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "latest.md").write_text(markdown(data), encoding="utf-8")
    (out / "scale.svg").write_text(svg(sizes), encoding="utf-8")


def previous(out: Path) -> list[dict[str, Any]]:
    """The sizes of ``out/latest.json``, or none."""
    path = out / "latest.json"
    if not path.exists():
        return []
    sizes: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["sizes"]
    return sizes


def rerender(out: Path) -> None:
    """Write ``latest.md`` and ``scale.svg`` again from ``latest.json`` (after a change to this module)."""
    data = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    (out / "latest.md").write_text(markdown(data), encoding="utf-8")
    (out / "scale.svg").write_text(svg(data["sizes"]), encoding="utf-8")


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"  # noqa: PLR2004
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(data: dict[str, Any]) -> str:  # noqa: C901, PLR0912 - one table after another
    """The results as Markdown tables, one row per room count and side."""
    m = data["machine"]
    s = data["settings"]
    lines = [
        f"# Benchmark results ({data['date']})",
        "",
        (
            f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, "
            f"commit {m['commit']}. Latency injected: EWS {s['ews_ms']} ms, TMS {s['tms_ms']} ms, "
            f"CMS {s['cms_ms']} ms; EWS concurrency {s['concurrency']}."
        ),
        "",
        "## Scenario",
        "",
        "| Rooms | Meetings/room | Meetings | Series | Multi-room | Organisers | Load into lab |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for z in data["sizes"]:
        lines.append(  # noqa: PERF401 - a loop reads better than a comprehension of f-strings here
            f"| {_fmt(z['rooms'])} | {z['meetings_per_room']} | {_fmt(z['meetings'])} | {_fmt(z['series'])} "
            f"| {_fmt(z['multi_room'])} | {_fmt(z['organisers'])} | {_fmt(z['load_s'])} s |"
        )
    lines += [
        "",
        "## Initial import",
        "",
        (
            "Bound = (EWS requests x EWS latency + TMS requests x TMS latency) ÷ concurrency. "
            "Worker CPU and Lab CPU are the two processes' CPU seconds in the same window; on 2 cores their "
            "sum against the wall time says how CPU-bound the import was (the lab runs in the orchestrator)."
        ),
        "",
        (
            "| Rooms | Side | Wall | EWS req | TMS req | Bound | Ratio (target ≤ 1.3) | Bookings "
            "| Failed rooms "
            "| Worker CPU | Lab CPU |"
        ),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for z in data["sizes"]:
        for side in ("xesync", "baseline"):
            i = _get(z, side, "import") or {}
            lines.append(
                f"| {_fmt(z['rooms'])} | {side} | {_fmt(i.get('wall_s'))} s | {_fmt(i.get('ews_requests'))} "
                f"| {_fmt(i.get('tms_requests'))} | {_fmt(i.get('bound_s'))} s "
                f"| {_fmt(i.get('ratio_to_bound'))} "
                f"| {_fmt(i.get('bookings'))} | {_fmt(i.get('failed_rooms'))} | {_fmt(i.get('cpu_s'))} s "
                f"| {_fmt(i.get('lab_cpu_s'))} s |"
            )
    lines += [
        "",
        "## Idle cost (EWS requests per room per hour; target ≤ 2 for xesync, the 1-minute poller costs 60)",
        "",
        "| Rooms | Side | Idle pass | EWS req/room/pass | Interval | EWS req/room/hour |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for z in data["sizes"]:
        for side in ("xesync", "baseline"):
            idle = _get(z, side, "idle") or {}
            for interval, per_hour in (idle.get("ews_per_room_per_hour") or {}).items():
                lines.append(
                    f"| {_fmt(z['rooms'])} | {side} | {_fmt(idle.get('pass_s'))} s "
                    f"| {_fmt(idle.get('ews_per_room_per_pass'))} | {interval} | {_fmt(per_hour)} |"
                )
    lines += [
        "",
        "## Outlook → TMS latency (target p95 ≤ 2 s with streaming; the 5-minute poller averages ~150 s)",
        "",
        "| Rooms | Side | Method | Bookings | Not booked | Mode | p50 | p95 |",
        "|---:|---|---|---:|---:|---|---:|---:|",
    ]
    for z in data["sizes"]:
        for side in ("xesync", "baseline"):
            lat = _get(z, side, "latency") or {}
            modes = [k for k in lat if k.endswith("s") and isinstance(lat[k], dict)]
            for mode in modes:
                lines.append(
                    f"| {_fmt(z['rooms'])} | {side} | {lat.get('method', '')} | {_fmt(lat.get('bookings'))} "
                    f"| {_fmt(lat.get('not_booked'))} | {mode} | {_fmt(lat[mode].get('p50_s'))} s "
                    f"| {_fmt(lat[mode].get('p95_s'))} s |"
                )
    lines += [
        "",
        "## xesync as the service (`xesync run`, EWS streaming wake-ups)",
        "",
        (
            "Latency measured for real, send to TMS. Idle cost per room and hour: the interval passes "
            "measured in a real-time idle window, the streams on the lab clock (each 30-minute step closes "
            "them), and the safety-net passes computed from the measured idle pass."
        ),
        "",
        (
            "| Rooms | Streams | Interval / safety net | Bookings | Not booked | p50 | p95 | max "
            "| EWS/room/hour (interval passes + streams + "
            "safety net = total) | Peak RSS | CPU per 1,000 bookings |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for z in data["sizes"]:
        st = _get(z, "xesync", "streaming") or {}
        if "error" in st:
            lines.append(f"| {_fmt(z['rooms'])} | - | - | - | - | - | - | - | error: {st['error']} | - | - |")
            continue
        lat, idle, proc = st.get("latency") or {}, st.get("idle") or {}, st.get("process") or {}
        lines.append(
            f"| {_fmt(z['rooms'])} | {_fmt(st.get('streams'))} | {_fmt(st.get('interval_s'))} s / "
            f"{_fmt(st.get('safety_interval_s'))} s "
            f"| {_fmt(lat.get('bookings'))} | {_fmt(lat.get('not_booked'))} | {_fmt(lat.get('p50_s'))} s "
            f"| {_fmt(lat.get('p95_s'))} s | {_fmt(lat.get('max_s'))} s "
            f"| {_fmt(idle.get('interval_ews_per_room_per_hour'))} "
            f"+ {_fmt(idle.get('stream_ews_per_room_per_hour'))} "
            f"+ {_fmt(idle.get('safety_ews_per_room_per_hour'))}"
            f" = **{_fmt(idle.get('ews_per_room_per_hour'))}** | {_fmt(proc.get('peak_rss_mb'))} MB "
            f"| {_fmt(lat.get('cpu_s_per_1000_bookings'))} s |"
        )
    lines += [
        "",
        "## Process cost (target ≤ 300 MB RSS at 5,000 rooms)",
        "",
        "| Rooms | Side | Peak RSS | CPU total | CPU per 1,000 bookings (import) |",
        "|---:|---|---:|---:|---:|",
    ]
    for z in data["sizes"]:
        for side in ("xesync", "baseline"):
            p = _get(z, side, "process") or {}
            lines.append(
                f"| {_fmt(z['rooms'])} | {side} | {_fmt(p.get('peak_rss_mb'))} MB | {_fmt(p.get('cpu_s'))} s "
                f"| {_fmt(p.get('cpu_s_per_1000_bookings'))} s |"
            )
    return "\n".join(lines) + "\n"


def svg(sizes: list[dict[str, Any]]) -> str:
    """Two panels: import wall time and peak RSS against rooms (log x), xesync and the baseline."""
    width, height, pad = 760, 320, 56
    panel_w = (width - 3 * pad) / 2
    colours = {"xesync": "#1f77b4", "baseline": "#d62728"}
    rooms = [z["rooms"] for z in sizes]
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="11">'
        ),
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    panels = (
        ("Initial import wall time (s)", ("import", "wall_s")),
        ("Peak RSS (MB)", ("process", "peak_rss_mb")),
    )
    for index, (title, path) in enumerate(panels):
        x0 = pad + index * (panel_w + pad)
        y0, y1 = pad / 2 + 16, height - pad
        values = [_get(z, side, *path) or 0 for z in sizes for side in colours]
        top = _nice(max(values, default=1) or 1)
        lo, hi = math.log10(min(rooms, default=1)), math.log10(max(rooms, default=10))
        span = (hi - lo) or 1.0

        def x(r: float, x0: float = x0, lo: float = lo, span: float = span) -> float:
            return x0 + (math.log10(r) - lo) / span * panel_w if len(rooms) > 1 else x0 + panel_w / 2

        def y(v: float, y0: float = y0, y1: float = y1, top: float = top) -> float:
            return y1 - v / top * (y1 - y0)

        parts.append(f'<text x="{x0}" y="{pad / 2}" font-size="13">{title}</text>')
        parts.append(f'<line x1="{x0}" y1="{y1}" x2="{x0 + panel_w}" y2="{y1}" stroke="black"/>')
        parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>')
        for tick in range(5):
            v = top * tick / 4
            parts.append(f'<text x="{x0 - 6}" y="{y(v) + 4}" text-anchor="end">{v:g}</text>')
            parts.append(f'<line x1="{x0}" y1="{y(v)}" x2="{x0 + panel_w}" y2="{y(v)}" stroke="#ddd"/>')
        parts += [f'<text x="{x(r)}" y="{y1 + 16}" text-anchor="middle">{r:,}</text>' for r in rooms]
        parts.append(
            f'<text x="{x0 + panel_w / 2}" y="{y1 + 34}" text-anchor="middle">rooms (log scale)</text>'
        )
        for side, colour in colours.items():
            points = [(x(z["rooms"]), y(_get(z, side, *path) or 0)) for z in sizes if _get(z, side, *path)]
            if points:
                path_d = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
                parts.append(f'<polyline points="{path_d}" fill="none" stroke="{colour}" stroke-width="2"/>')
                parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points]
    for n, (side, colour) in enumerate(colours.items()):
        parts.append(f'<rect x="{pad + n * 120}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{pad + n * 120 + 14}" y="{height - 5}">{side}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice(value: float) -> float:
    """The next 1, 2 or 5 times a power of ten at or above ``value``."""
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


if __name__ == "__main__":
    rerender(Path(__file__).parent / "results")
