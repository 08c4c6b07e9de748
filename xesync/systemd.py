"""The systemd notify protocol (``sd_notify``), spoken over ``$NOTIFY_SOCKET`` with the standard library.

A service with ``Type=notify`` tells systemd how it is doing by sending datagrams of newline-separated
``KEY=VALUE`` assignments to the AF_UNIX socket named in ``$NOTIFY_SOCKET`` (``sd_notify(3)``):

- ``READY=1``: start-up is complete; ``systemctl start`` returns, dependants start.
- ``RELOADING=1`` with ``MONOTONIC_USEC=``: a reload (SIGHUP) has begun; ``READY=1`` ends it.
- ``STOPPING=1``: shutdown has begun.
- ``STATUS=<text>``: one line that ``systemctl status`` shows.
- ``WATCHDOG=1``: still alive; due at least every ``$WATCHDOG_USEC`` microseconds or systemd kills
  and (``Restart=``) restarts the service. ``sd_watchdog_enabled(3)``: honour ``$WATCHDOG_USEC``
  only when ``$WATCHDOG_PID`` is unset or names this process, and ping at half the interval.

Decisions:

- No dependency. The protocol is one ``sendto`` per message; the ``systemd`` and ``sdnotify``
  packages add nothing we need, and python-systemd needs libsystemd headers to build.
- Addresses: a path (``/run/systemd/notify``) or an abstract-namespace name written with a leading
  ``@``, which becomes a leading NUL byte on the wire. Other forms (``vsock:`` since systemd 253) are
  not spoken; they log :data:`~xesync.events.SYSTEMD_NOTIFY_FAILED` once and are ignored.
- One fresh socket per message, as libsystemd does: nothing to keep open across fork or reload, and
  the scheduler's threads may call at once without a lock.
- Notification is best effort. A failed send never raises into the daemon: a missed ``STATUS=`` is
  harmless, and a missed ``WATCHDOG=1`` is exactly what the watchdog exists to notice. The first
  failure of an outage is logged; repeats are not (a watchdog ping every few seconds would flood the
  journal), and the next success re-arms the log.
- Without ``$NOTIFY_SOCKET`` (a terminal, a test, ``Type=simple``) every call is a silent no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from datetime import timedelta

import structlog

from xesync import events

log = structlog.get_logger(__name__)


class Notifier:
    """Sends ``sd_notify`` messages to the socket systemd named in the environment.

    :param environ: the environment to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
        ``WATCHDOG_PID`` from; :data:`os.environ` when omitted.
    :param pid: the process id ``WATCHDOG_PID`` is compared with; :func:`os.getpid` when omitted.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _wire_address(env.get("NOTIFY_SOCKET", ""))
        self._socket_name = env.get("NOTIFY_SOCKET", "")
        self._interval = _watchdog_interval(env, os.getpid() if pid is None else pid)
        self._failing = False

    @property
    def enabled(self) -> bool:
        """Whether systemd asked for notifications (``$NOTIFY_SOCKET`` is set)."""
        return bool(self._socket_name)

    def ready(self, status: str | None = None) -> None:
        """Send ``READY=1`` (and ``STATUS=`` when given): start-up or a reload has finished."""
        self._send(("READY=1", *_status_line(status)))

    def reloading(self) -> None:
        """Send ``RELOADING=1`` with ``MONOTONIC_USEC=``: a configuration reload has begun.

        End the reload with :meth:`ready`, also when the new configuration was refused.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(("RELOADING=1", f"MONOTONIC_USEC={usec}"))

    def status(self, text: str) -> None:
        """Send ``STATUS=<text>``, the one line ``systemctl status`` shows; line breaks become spaces."""
        self._send(_status_line(text))

    def watchdog(self) -> None:
        """Send ``WATCHDOG=1``: the service is alive. Call it every :meth:`watchdog_interval`."""
        self._send(("WATCHDOG=1",))

    def stopping(self, status: str | None = None) -> None:
        """Send ``STOPPING=1`` (and ``STATUS=`` when given): shutdown has begun."""
        self._send(("STOPPING=1", *_status_line(status)))

    def watchdog_interval(self) -> timedelta | None:
        """How often to call :meth:`watchdog`: half of ``$WATCHDOG_USEC``, or ``None`` when not asked.

        ``None`` when ``$WATCHDOG_USEC`` is unset, not a positive integer, or ``$WATCHDOG_PID``
        names another process (the watchdog is then some other process's duty).
        """
        return self._interval

    def _send(self, assignments: tuple[str, ...]) -> None:
        if not self._socket_name or not assignments:
            return
        if self._address is None:
            self._failed(ValueError("unsupported NOTIFY_SOCKET address"))
            return
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            self._failed(exc)
            return
        self._failing = False

    def _failed(self, exc: Exception) -> None:
        if self._failing:
            return
        self._failing = True
        log.warning(
            events.SYSTEMD_NOTIFY_FAILED,
            socket=self._socket_name,
            error=type(exc).__name__,
            detail=str(exc),
        )


def _wire_address(name: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as :meth:`socket.sendto` takes it; ``None`` for forms we do not speak."""
    if name.startswith("/"):
        return name
    if name.startswith("@") and len(name) > 1:
        # The abstract namespace: a leading NUL, and the name is exactly the bytes that follow.
        return b"\0" + name[1:].encode()
    return None


def _watchdog_interval(env: Mapping[str, str], pid: int) -> timedelta | None:
    raw_pid = env.get("WATCHDOG_PID")
    if raw_pid:
        try:
            if int(raw_pid) != pid:
                return None
        except ValueError:
            return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return timedelta(microseconds=usec // 2)


def _status_line(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.split()),)
