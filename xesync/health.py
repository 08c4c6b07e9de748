"""Health: the per-room pass book and the optional listener serving ``/healthz`` and ``/metrics``.

Terminology:

- *pass*: one sync of one room (``sync_items`` after a wake-up or on the interval, or the nightly full
  reconcile). A *good* pass finished without a room-level failure; single meetings may still have
  failed inside it, and they show in ``xesync_bookings_total{outcome="failed"}``.
- *age* of a room: the time since its last good pass, or, before its first one, since the book began
  watching it (start-up, or the reload that added it), so a fresh start is healthy until a room has
  had the whole threshold to pass.
- *stale*: age at or past the threshold (``[metrics] stale_after``; by default three
  ``sync.interval``, at least five minutes, see :func:`stale_threshold`).
- *streamed* room: its last good pass began while its stream group's subscriptions were live, so a
  change wakes it and it needs a pass only every ``sync.stream_safety_interval``
  (:mod:`xesync.daemon_jobs`). Its threshold is the safety interval on top of the stale threshold
  (:func:`streamed_threshold`); it turns back to the plain one when its stream is lost or a pass fails.

Decisions:

- The listener is the standard library's ``ThreadingHTTPServer`` in a daemon thread: two read-only
  endpoints need no framework, and it never blocks the scheduler. ``/metrics`` is the
  :class:`~xesync.metrics.Metrics` registry, rendered by prometheus-client.
- It binds loopback only unless ``[metrics] allow_remote`` is true: the counters name rooms, and a
  scrape endpoint has no authentication. A host name is resolved and every address must be loopback.
- ``/healthz`` is JSON: ``200`` when every room is fresh, ``503`` when any is stale, with the age of
  each room's last good pass so the admin sees which one.
- :class:`HealthBook` takes an injected clock and keeps everything behind one lock: the engine writes
  from scheduler threads while the listener reads.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from xesync import events
from xesync.config import MetricsConfig, SyncConfig
from xesync.errors import ConfigError

if TYPE_CHECKING:
    # xesync.metrics imports HealthBook from here; the listener only needs the type.
    from xesync.metrics import Metrics

log = structlog.get_logger(__name__)

MIN_STALE_AFTER = timedelta(minutes=5)
STALE_INTERVALS = 3


def stale_threshold(metrics: MetricsConfig, sync_interval: timedelta) -> timedelta:
    """``[metrics] stale_after``, or three ``sync.interval`` but at least five minutes when unset."""
    if metrics.stale_after is not None:
        return metrics.stale_after
    return max(STALE_INTERVALS * sync_interval, MIN_STALE_AFTER)


def streamed_threshold(metrics: MetricsConfig, sync: SyncConfig) -> timedelta:
    """A streamed room's threshold: its safety-net period (never below ``sync.interval``) plus the stale one.

    A streamed room passes only every ``sync.stream_safety_interval``; the stale threshold on top is
    the same slack a polled room gets over its interval.
    """
    return max(sync.stream_safety_interval, sync.interval) + stale_threshold(metrics, sync.interval)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomHealth:
    """One room's line in the health report."""

    room: str
    last_good_pass: datetime | None
    last_failed_pass: datetime | None
    age: timedelta  # since the last good pass, or since watching began (see *age* above)
    healthy: bool
    streamed: bool = False

    def as_json(self) -> dict[str, Any]:
        """The room's entry in ``/healthz``."""
        return {
            "healthy": self.healthy,
            "age_seconds": round(self.age.total_seconds(), 3),
            "streamed": self.streamed,
            "last_good_pass": _iso(self.last_good_pass),
            "last_failed_pass": _iso(self.last_failed_pass),
        }


@dataclass(slots=True)
class _Entry:
    since: datetime
    last_good: datetime | None = None
    last_failed: datetime | None = None
    streamed: bool = False


class HealthBook:
    """Records each room's pass results and judges freshness against a threshold.

    :param rooms: the room keys to watch (the engine's room key, e.g. the mailbox address).
    :param threshold: a room whose last good pass is this old or older is stale.
    :param streamed_threshold: the same for a streamed room (default: ``threshold``).
    :param clock: returns the current aware time; injected so tests move time without sleeping.
    """

    def __init__(
        self,
        rooms: Iterable[str],
        *,
        threshold: timedelta,
        streamed_threshold: timedelta | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if threshold <= timedelta(0):
            raise ValueError("threshold must be positive")
        self._threshold = threshold
        self._streamed_threshold = max(threshold, streamed_threshold or threshold)
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._rooms = {room: _Entry(since=now) for room in rooms}

    @property
    def threshold(self) -> timedelta:
        """The age at which a room turns stale."""
        return self._threshold

    def set_rooms(
        self,
        rooms: Iterable[str],
        *,
        threshold: timedelta | None = None,
        streamed_threshold: timedelta | None = None,
    ) -> None:
        """Watch exactly ``rooms`` from now on (a reload): kept rooms keep their history.

        :param threshold: a new threshold, when the reloaded configuration changed it.
        :param streamed_threshold: a new threshold for streamed rooms.
        """
        if threshold is not None and threshold <= timedelta(0):
            raise ValueError("threshold must be positive")
        with self._lock:
            now = self._clock()
            self._rooms = {room: self._rooms.get(room) or _Entry(since=now) for room in rooms}
            if threshold is not None:
                self._threshold = threshold
            self._streamed_threshold = max(self._threshold, streamed_threshold or self._threshold)

    def record_pass(self, room: str, *, ok: bool, streamed: bool = False) -> None:
        """Record that ``room`` finished a pass now; ``ok`` says whether it was good.

        A room not yet watched is added, so a pass is never lost to an ordering slip at reload.

        :param streamed: the pass began under a live stream (see *streamed* above); a failed pass
            is never streamed.
        """
        with self._lock:
            now = self._clock()
            entry = self._rooms.setdefault(room, _Entry(since=now))
            entry.streamed = ok and streamed
            if ok:
                entry.last_good = now
            else:
                entry.last_failed = now

    def unstream(self, rooms: Iterable[str]) -> None:
        """``rooms`` lost their stream: judge them on the plain threshold again."""
        with self._lock:
            for room in rooms:
                entry = self._rooms.get(room)
                if entry is not None:
                    entry.streamed = False

    def rooms(self) -> tuple[RoomHealth, ...]:
        """Every watched room's health, judged now, in room-key order."""
        with self._lock:
            now = self._clock()
            return tuple(self._judge(room, entry, now) for room, entry in sorted(self._rooms.items()))

    def healthy(self) -> bool:
        """Whether every watched room is fresh (true when no room is watched)."""
        return all(room.healthy for room in self.rooms())

    def report(self) -> dict[str, Any]:
        """The ``/healthz`` document: overall status, the threshold, and every room."""
        rooms = self.rooms()
        healthy = all(room.healthy for room in rooms)
        return {
            "status": "ok" if healthy else "stale",
            "stale_after_seconds": self._threshold.total_seconds(),
            "streamed_stale_after_seconds": self._streamed_threshold.total_seconds(),
            "rooms": {room.room: room.as_json() for room in rooms},
        }

    def status_line(self) -> str:
        """A one-line summary for systemd's ``STATUS=``: rooms, stale rooms, the newest good pass."""
        rooms = self.rooms()
        stale = sum(not room.healthy for room in rooms)
        goods = [room.last_good_pass for room in rooms if room.last_good_pass is not None]
        last = max(goods).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if goods else "none yet"
        return f"rooms {len(rooms)}, stale {stale}, last good pass {last}"

    def _judge(self, room: str, entry: _Entry, now: datetime) -> RoomHealth:
        # A clock stepped backwards must not make a room look fresher than "just now".
        age = max(now - (entry.last_good or entry.since), timedelta(0))
        threshold = self._streamed_threshold if entry.streamed else self._threshold
        return RoomHealth(
            room=room,
            last_good_pass=entry.last_good,
            last_failed_pass=entry.last_failed,
            age=age,
            healthy=age < threshold,
            streamed=entry.streamed,
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, app: HealthServer) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "xesync"

    def do_GET(self) -> None:
        app = cast("_Server", self.server).app
        path = urlsplit(self.path).path
        try:
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, app.metrics.render())
            elif path == "/healthz":
                report = app.book.report()
                body = json.dumps(report, sort_keys=True).encode()
                self._reply(200 if report["status"] == "ok" else 503, "application/json", body)
            else:
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")
        except Exception:
            log.exception(events.HEALTH_REQUEST_FAILED, path=path)
            self._reply(500, "text/plain; charset=utf-8", b"internal error\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        # Every scrape would otherwise write a line to stderr; the counters are the record.
        return


class HealthServer:
    """The optional ``[metrics]`` listener: ``/metrics`` and ``/healthz`` over HTTP in a daemon thread.

    Construction validates the host; :meth:`start` binds and serves; :meth:`close` stops.

    :raises ConfigError: the host is not loopback and ``allow_remote`` is false, or does not resolve.
    """

    def __init__(
        self,
        metrics: Metrics,
        book: HealthBook,
        *,
        host: str = "127.0.0.1",
        port: int = 9464,
        allow_remote: bool = False,
    ) -> None:
        self.metrics = metrics
        self.book = book
        self._family, self._bind_host = _resolve(host, allow_remote=allow_remote)
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: MetricsConfig, metrics: Metrics, book: HealthBook) -> HealthServer:
        """Build the listener the ``[metrics]`` section describes (whether enabled is the caller's call)."""
        return cls(metrics, book, host=config.host, port=config.port, allow_remote=config.allow_remote)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the health listener is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        """Bind and serve in a daemon thread; return the bound address.

        :raises ConfigError: the address cannot be bound (in use, or not local).
        """
        if self._server is not None:
            return self.address
        try:
            self._server = _Server((self._bind_host, self._port), self._family, self)
        except OSError as exc:
            problem = f"metrics.port: cannot listen on {self._host}:{self._port}: {exc.strerror or exc}"
            raise ConfigError([problem]) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # shutdown() waits up to one poll interval; SIGTERM should not wait long for it.
            kwargs={"poll_interval": 0.1},
            name="xesync-health",
            daemon=True,
        )
        self._thread.start()
        host, port = self.address
        log.info(events.HEALTH_STARTED, host=host, port=port)
        return host, port

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice or before :meth:`start`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        log.info(events.HEALTH_STOPPED)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(host: str, *, allow_remote: bool) -> tuple[socket.AddressFamily, str]:
    """The address family and bind address for ``host``; refuse non-loopback unless allowed."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM) if host else []
    except socket.gaierror as exc:
        raise ConfigError([f"metrics.host: {host!r} does not resolve: {exc.strerror}"]) from exc
    if not infos:
        raise ConfigError([f"metrics.host: {host!r} is not an address to listen on"])
    addresses = [(info[0], str(info[4][0])) for info in infos]
    if not allow_remote and not all(ipaddress.ip_address(a).is_loopback for _, a in addresses):
        problem = (
            f"metrics.host: {host!r} is not a loopback address and the endpoint has no authentication; "
            "listen on 127.0.0.1 behind a reverse proxy, or set metrics.allow_remote = true"
        )
        raise ConfigError([problem])
    # A name with both families (localhost) binds IPv4, which every host has even where IPv6 is off.
    return next((a for a in addresses if a[0] == socket.AF_INET), addresses[0])


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
