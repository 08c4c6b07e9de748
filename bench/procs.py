"""Child processes of the benchmark: a worker on stdin/stdout, and what ``/proc`` says about its cost.

Peak RSS is ``VmHWM`` (the high-water mark of the resident set since the process started); CPU seconds
are ``utime + stime`` from ``/proc/<pid>/stat``, both read by the orchestrator so the process measured
does nothing extra to be measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

TICKS = os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


class Worker:
    """``python -m bench.worker`` for one side, driven one command at a time."""

    def __init__(self, side: str, config: Path, log: Path) -> None:
        self.side = side
        self._log: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", "--side", side, "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"{side} worker did not start: {ready}")

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def run_pass(self) -> dict[str, Any]:
        """One pass over every room; the worker's answer."""
        return self._ask({"cmd": "pass"})

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None  # noqa: S101 - set by Popen(stdin=PIPE)
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None  # noqa: S101 - set by Popen(stdout=PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.side} worker exited ({self.proc.wait()}); see its log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def cost(self) -> dict[str, float]:
        """Peak RSS (MB) and CPU seconds so far."""
        return {"peak_rss_mb": round(peak_rss_mb(self.pid), 1), "cpu_s": round(cpu_seconds(self.pid), 2)}

    def close(self) -> None:
        """Ask the worker to quit, wait for it, and stop it by its pid if it does not."""
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self._log.close()
