"""Metrics: the Prometheus counters and histograms the engine and the daemon feed.

What is counted (every name is prefixed ``xesync_``; counters end ``_total`` on the wire):

- ``room_passes_total{room,kind,outcome}`` and ``room_pass_duration_seconds{kind}``: room passes.
- ``bookings_total{outcome}``: booking actions (created, updated, cancelled, skipped, failed, …).
- ``licence_verdicts_total{verdict}``: CMS licence checks, by :class:`~xesync.model.LicenceVerdict`.
- ``requests_total{service,outcome}`` and ``request_duration_seconds{service}``: EWS, TMS, CMS, LDAP.
- ``backoff_seconds_total{service}``: time spent waiting before a retry.
- ``streaming_connections`` and ``streaming_reconnects_total``: EWS streaming notifications.
- ``room_last_good_pass_age_seconds{room}`` and ``healthy``: the :class:`~xesync.health.HealthBook`,
  read at scrape time.
- ``process_*``: prometheus-client's process collector (memory, CPU, open files).

Each :class:`Metrics` has a registry of its own, not prometheus-client's process-global one: two
daemons in one test process, or a metrics object rebuilt on reload, never collide. The listener that
serves it is :class:`~xesync.health.HealthServer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from xesync.health import HealthBook

# Room passes range from a no-change sync_items (well under a second) to a full reconcile of a busy room.
PASS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class _BookCollector(Collector):
    """Exposes the book at scrape time, so the ages are as fresh as the scrape."""

    def __init__(self, book: HealthBook) -> None:
        self._book = book

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rooms = self._book.rooms()
        age = GaugeMetricFamily(
            "xesync_room_last_good_pass_age_seconds",
            "Seconds since the room's last good pass (since watching began, before the first).",
            labels=["room"],
        )
        for room in rooms:
            age.add_metric([room.room], room.age.total_seconds())
        yield age
        yield GaugeMetricFamily(
            "xesync_healthy",
            "1 when every room's last good pass is younger than the stale threshold, else 0.",
            value=float(all(room.healthy for room in rooms)),
        )


class Metrics:
    """The counters and histograms the engine and daemon feed; one registry per instance.

    :param book: when given, its per-room ages and overall health are exposed as gauges too.
    """

    def __init__(self, book: HealthBook | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        r = self.registry
        self._passes = Counter(
            "xesync_room_passes", "Room passes finished.", ["room", "kind", "outcome"], registry=r
        )
        self._pass_seconds = Histogram(
            "xesync_room_pass_duration_seconds",
            "Duration of one room pass.",
            ["kind"],
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self._bookings = Counter("xesync_bookings", "Booking actions by outcome.", ["outcome"], registry=r)
        self._verdicts = Counter(
            "xesync_licence_verdicts", "Licence checks on CMS by verdict.", ["verdict"], registry=r
        )
        self._requests = Counter(
            "xesync_requests", "Requests to EWS, TMS, CMS and LDAP.", ["service", "outcome"], registry=r
        )
        self._request_seconds = Histogram(
            "xesync_request_duration_seconds", "Latency of one request.", ["service"], registry=r
        )
        self._backoff = Counter(
            "xesync_backoff_seconds", "Seconds spent waiting in back-off.", ["service"], registry=r
        )
        self._streams = Gauge(
            "xesync_streaming_connections", "Open EWS streaming-notification connections.", registry=r
        )
        self._reconnects = Counter(
            "xesync_streaming_reconnects", "EWS streaming connections re-established.", registry=r
        )
        if book is not None:
            r.register(_BookCollector(book))

    def pass_finished(self, room: str, *, ok: bool, seconds: float, kind: str = "items") -> None:
        """A room pass ended; ``kind`` names the pass (``items`` for ``sync_items``, ``full``)."""
        self._passes.labels(room=room, kind=kind, outcome="ok" if ok else "failed").inc()
        self._pass_seconds.labels(kind=kind).observe(seconds)

    def booking(self, outcome: str) -> None:
        """One booking action ended with ``outcome`` (``created``, ``updated``, ``failed``…)."""
        self._bookings.labels(outcome=str(outcome)).inc()

    def licence_verdict(self, verdict: str) -> None:
        """One CMS licence check gave ``verdict`` (a :class:`~xesync.model.LicenceVerdict` value)."""
        self._verdicts.labels(verdict=str(verdict)).inc()

    def request(self, service: str, *, seconds: float, ok: bool) -> None:
        """One request to ``service`` (``ews``, ``tms``, ``cms``, ``ldap``) took ``seconds``."""
        self._requests.labels(service=service, outcome="ok" if ok else "error").inc()
        self._request_seconds.labels(service=service).observe(seconds)

    @contextmanager
    def timed(self, service: str) -> Iterator[None]:
        """Count and time the request in the ``with`` block; an exception counts as an error."""
        start = perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.request(service, seconds=perf_counter() - start, ok=ok)

    def backoff(self, service: str, seconds: float) -> None:
        """``seconds`` were spent (or are about to be) waiting before retrying ``service``."""
        self._backoff.labels(service=service).inc(seconds)

    def streaming_opened(self, *, reconnect: bool = False) -> None:
        """An EWS streaming connection opened; ``reconnect`` when it replaces a dropped one."""
        self._streams.inc()
        if reconnect:
            self._reconnects.inc()

    def streaming_closed(self) -> None:
        """An EWS streaming connection closed or dropped."""
        self._streams.dec()

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
