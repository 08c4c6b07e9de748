"""``xesync`` with a kill point armed: the process SIGKILLs itself at a named point or at the N-th request.

Run as ``python crashing_xesync.py sync -c CONFIG``; ``XESYNC_KILL_POINT`` chooses where it dies:

- ``request:N:before`` / ``request:N:after``: just before the N-th HTTP request of the process leaves
  (EWS or TMS, through ``requests``), or just after its answer arrived and before xesync read it;
- ``after_tms_save:N``: the N-th TMS save landed, nothing else happened (no room write-back, no store);
- ``after_room_writeback:N``: the N-th meeting's room write-back (accept, body) is done, not stored;
- ``after_store_write:N``: the N-th meeting's store transaction committed;
- ``mid_sync_state:N``: inside the N-th room's final transaction, after the sync state was written
  and before the commit.

SIGKILL gives no chance to clean up: no ``finally``, no ``atexit``, no SQLite rollback but its journal.
Unset, the CLI runs as it is. A test helper: nothing in ``xesync/`` knows it.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(owner: Any, name: str, nth: int, *, after: bool = True) -> None:
    real = getattr(owner, name)
    calls = [0]

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if not after and calls[0] == nth:
            _die()
        result = real(*args, **kwargs)
        if after and calls[0] == nth:
            _die()
        return result

    setattr(owner, name, wrapper)


def arm(point: str) -> None:
    """Arm the kill point ``point`` (see the module docstring)."""
    kind, _, rest = point.partition(":")
    if kind == "request":
        import requests.adapters  # noqa: PLC0415

        nth, _, when = rest.partition(":")
        _arm(requests.adapters.HTTPAdapter, "send", int(nth), after=when == "after")
        return
    nth = int(rest)
    if kind == "after_tms_save":
        from xesync.adapters.tms import TmsBookingSink  # noqa: PLC0415

        _arm(TmsBookingSink, "save", nth)
    elif kind == "after_room_writeback":
        from xesync.executor import Executor  # noqa: PLC0415

        _arm(Executor, "room", nth)
    elif kind == "after_store_write":
        from xesync.engine import Engine  # noqa: PLC0415

        _arm(Engine, "_write", nth)
    elif kind == "mid_sync_state":
        from xesync.store import Transaction  # noqa: PLC0415

        _arm(Transaction, "put_room_state", nth)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    if os.environ.get("XESYNC_KILL_POINT"):
        arm(os.environ["XESYNC_KILL_POINT"])
    from xesync.cli import app

    sys.exit(app(prog_name="xesync"))
