"""Health and metrics: the pass book, the Prometheus counters, and the loopback listener over real HTTP."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from xesync import config, events
from xesync.config import MetricsConfig
from xesync.errors import ConfigError
from xesync.health import HealthBook, HealthServer, stale_threshold, streamed_threshold
from xesync.metrics import Metrics

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ROOMS = ("aurora@corp.example", "borealis@corp.example")
THRESHOLD = timedelta(minutes=5)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def book(clock):
    return HealthBook(ROOMS, threshold=THRESHOLD, clock=clock)


@pytest.fixture
def metrics(book):
    return Metrics(book)


@pytest.fixture
def server(metrics, book):
    with HealthServer(metrics, book, host="127.0.0.1", port=0) as srv:
        yield srv


def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    host, port = server.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_endpoint_shows_what_the_engine_counted(server, metrics):
    """After the Metrics methods are called, /metrics over HTTP carries each counter with its labels."""
    metrics.pass_finished("aurora@corp.example", ok=True, seconds=0.4)
    metrics.pass_finished("aurora@corp.example", ok=False, seconds=2.0, kind="full")
    metrics.booking("created")
    metrics.booking("created")
    metrics.booking("failed")
    metrics.licence_verdict("pmp")
    metrics.licence_verdict("smp")
    metrics.request("tms", seconds=0.05, ok=True)
    metrics.request("ews", seconds=1.5, ok=False)
    metrics.backoff("ews", 2.5)
    metrics.backoff("ews", 5.0)
    metrics.streaming_opened()
    metrics.streaming_opened()
    metrics.streaming_closed()
    metrics.streaming_opened(reconnect=True)

    status, content_type, text = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    got = samples(text)
    aurora = ("room", "aurora@corp.example")
    assert got["xesync_room_passes_total", (("kind", "items"), ("outcome", "ok"), aurora)] == 1
    assert got["xesync_room_passes_total", (("kind", "full"), ("outcome", "failed"), aurora)] == 1
    assert got["xesync_room_pass_duration_seconds_count", (("kind", "items"),)] == 1
    assert got["xesync_bookings_total", (("outcome", "created"),)] == 2
    assert got["xesync_bookings_total", (("outcome", "failed"),)] == 1
    assert got["xesync_licence_verdicts_total", (("verdict", "pmp"),)] == 1
    assert got["xesync_licence_verdicts_total", (("verdict", "smp"),)] == 1
    assert got["xesync_requests_total", (("outcome", "ok"), ("service", "tms"))] == 1
    assert got["xesync_requests_total", (("outcome", "error"), ("service", "ews"))] == 1
    assert got["xesync_request_duration_seconds_sum", (("service", "ews"),)] == 1.5
    assert got["xesync_backoff_seconds_total", (("service", "ews"),)] == 7.5
    assert got["xesync_streaming_connections", ()] == 2
    assert got["xesync_streaming_reconnects_total", ()] == 1
    assert got["xesync_healthy", ()] == 1
    assert got["xesync_room_last_good_pass_age_seconds", (aurora,)] == 0


def test_timed_counts_an_exception_as_an_error_and_lets_it_through(metrics):
    """A request timed with Metrics.timed that raises is counted as an error and the error propagates."""
    with metrics.timed("cms"):
        pass
    with pytest.raises(TimeoutError), metrics.timed("cms"):
        raise TimeoutError
    got = samples(metrics.render().decode())
    assert got["xesync_requests_total", (("outcome", "ok"), ("service", "cms"))] == 1
    assert got["xesync_requests_total", (("outcome", "error"), ("service", "cms"))] == 1
    assert got["xesync_request_duration_seconds_count", (("service", "cms"),)] == 2


def test_healthz_turns_503_when_a_room_last_good_pass_is_stale(server, book, clock):
    """/healthz is 200 while every room passed recently and 503 once one room's last good pass is too old."""
    for room in ROOMS:
        book.record_pass(room, ok=True)
    status, content_type, body = get(server, "/healthz")
    assert (status, content_type) == (200, "application/json")
    report = json.loads(body)
    assert report["status"] == "ok"
    assert report["stale_after_seconds"] == 300
    assert report["rooms"]["aurora@corp.example"] == {
        "healthy": True,
        "age_seconds": 0,
        "streamed": False,
        "last_good_pass": T0.isoformat(),
        "last_failed_pass": None,
    }

    clock.advance(timedelta(minutes=3))
    book.record_pass("borealis@corp.example", ok=True)
    book.record_pass("aurora@corp.example", ok=False)  # a failed pass does not refresh the room
    clock.advance(timedelta(minutes=2))

    status, _, body = get(server, "/healthz")
    assert status == 503
    report = json.loads(body)
    assert report["status"] == "stale"
    assert report["rooms"]["aurora@corp.example"]["healthy"] is False
    assert report["rooms"]["aurora@corp.example"]["age_seconds"] == 300
    assert (
        report["rooms"]["aurora@corp.example"]["last_failed_pass"] == (T0 + timedelta(minutes=3)).isoformat()
    )
    assert report["rooms"]["borealis@corp.example"] == {
        "healthy": True,
        "age_seconds": 120,
        "streamed": False,
        "last_good_pass": (T0 + timedelta(minutes=3)).isoformat(),
        "last_failed_pass": None,
    }
    got = samples(get(server, "/metrics")[2])
    assert got["xesync_healthy", ()] == 0
    assert got["xesync_room_last_good_pass_age_seconds", (("room", "aurora@corp.example"),)] == 300

    book.record_pass("aurora@corp.example", ok=True)
    assert get(server, "/healthz")[0] == 200


def test_a_fresh_start_is_healthy_until_the_threshold_without_a_pass(book, clock):
    """Before its first pass a room's age counts from when it was first watched, not from the epoch."""
    assert book.healthy()
    assert [r.last_good_pass for r in book.rooms()] == [None, None]
    clock.advance(THRESHOLD - timedelta(seconds=1))
    assert book.healthy()
    clock.advance(timedelta(seconds=1))
    assert not book.healthy()
    assert {r.room: r.age for r in book.rooms()} == dict.fromkeys(ROOMS, THRESHOLD)


def test_a_reload_keeps_history_for_kept_rooms_and_starts_new_ones_fresh(book, clock):
    """set_rooms drops removed rooms, keeps kept rooms' history, and starts added rooms' age at zero."""
    book.record_pass("aurora@corp.example", ok=True)
    clock.advance(timedelta(minutes=4))
    book.set_rooms(["aurora@corp.example", "cygnus@corp.example"], threshold=timedelta(minutes=10))
    ages = {r.room: r.age for r in book.rooms()}
    assert ages == {"aurora@corp.example": timedelta(minutes=4), "cygnus@corp.example": timedelta(0)}
    assert book.threshold == timedelta(minutes=10)


def test_a_pass_for_an_unwatched_room_is_kept(book):
    """A pass recorded for a room the book does not know yet adds the room instead of being lost."""
    book.record_pass("cygnus@corp.example", ok=True)
    assert "cygnus@corp.example" in {r.room for r in book.rooms()}


def test_a_clock_stepped_back_never_gives_a_negative_age(book, clock):
    """An age is never negative, even when the wall clock is stepped backwards."""
    book.record_pass("aurora@corp.example", ok=True)
    clock.advance(-timedelta(minutes=10))
    assert min(r.age for r in book.rooms()) == timedelta(0)


def test_status_line_summarises_rooms_for_systemd(book, clock):
    """The STATUS= summary counts rooms and stale rooms and names the newest good pass."""
    assert book.status_line() == "rooms 2, stale 0, last good pass none yet"
    book.record_pass("aurora@corp.example", ok=True)
    clock.advance(THRESHOLD)
    assert book.status_line() == "rooms 2, stale 2, last good pass 2025-03-03T09:00:00Z"


def test_unknown_paths_are_404(server):
    """Only /metrics and /healthz are served."""
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/../etc/passwd")[0] == 404


def test_a_failing_report_is_a_logged_500(server, book, monkeypatch):
    """An error while building a response is a 500 and an event, and the listener keeps serving."""

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(book, "report", broken)
    with capture_logs() as logs:
        assert get(server, "/healthz")[0] == 500
    assert [e["event"] for e in logs] == [events.HEALTH_REQUEST_FAILED]
    assert get(server, "/metrics")[0] == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.10"])  # noqa: S104 (refused, never bound)
def test_non_loopback_hosts_are_refused_unless_allowed(metrics, book, host):
    """A listener on a non-loopback address is refused with advice, unless allow_remote is set."""
    with pytest.raises(ConfigError) as err:
        HealthServer(metrics, book, host=host, port=0)
    assert err.value.problems[0].startswith("metrics.host:")
    if host:
        assert "metrics.allow_remote = true" in err.value.problems[0]
        # Constructing does not bind; nothing listens beyond loopback in tests.
        HealthServer(metrics, book, host=host, port=0, allow_remote=True)


def test_localhost_by_name_is_loopback(metrics, book):
    """A host name whose every address is loopback is accepted and served."""
    with HealthServer(metrics, book, host="localhost", port=0) as srv:
        assert get(srv, "/healthz")[0] == 200


def test_a_port_in_use_is_a_config_error_naming_the_key(metrics, book):
    """Binding a port that is taken raises ConfigError on metrics.port instead of a bare OSError."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            HealthServer(metrics, book, port=port).start()
    assert err.value.problems[0].startswith(f"metrics.port: cannot listen on 127.0.0.1:{port}")


def test_close_releases_the_port_and_logs_start_and_stop(metrics, book):
    """close() stops the thread and frees the port; it is safe twice; start and stop are events."""
    srv = HealthServer(metrics, book, port=0)
    with capture_logs() as logs:
        host, port = srv.start()
        srv.close()
        srv.close()
    assert [e["event"] for e in logs] == [events.HEALTH_STARTED, events.HEALTH_STOPPED]
    assert logs[0]["port"] == port
    with socket.socket() as again:
        again.bind((host, port))


def test_two_metrics_objects_do_not_share_a_registry(book):
    """Each Metrics has its own registry, so a second daemon or a reload starts from zero without clashes."""
    first, second = Metrics(book), Metrics(book)
    first.booking("created")
    assert ("xesync_bookings_total", (("outcome", "created"),)) not in samples(second.render().decode())


def test_stale_threshold_defaults_to_three_intervals_at_least_five_minutes():
    """Without [metrics] stale_after the threshold is three sync intervals, never under five minutes."""
    assert stale_threshold(MetricsConfig(), timedelta(minutes=10)) == timedelta(minutes=30)
    assert stale_threshold(MetricsConfig(), timedelta(seconds=60)) == timedelta(minutes=5)
    explicit = MetricsConfig(stale_after=timedelta(minutes=2))
    assert stale_threshold(explicit, timedelta(hours=1)) == timedelta(minutes=2)


def test_metrics_section_reads_allow_remote_and_stale_after(tmp_path):
    """The [metrics] section accepts allow_remote and stale_after and rejects a malformed duration."""
    base = (
        '[exchange]\nurl = "https://mail.example.com/EWS/Exchange.asmx"\nusername = "svc@example.com"\n'
        'password = "ews-inline-secret"\n[tms]\nurl = "https://tms.example.com/tms"\nusername = "svc"\n'
        'password = "tms-inline-secret"\n[[rooms]]\nemail = "room-a@example.com"\ntms_system_id = 1\n'
    )
    path = tmp_path / "xesync.toml"
    path.write_text(base + '[metrics]\nenabled = true\nallow_remote = true\nstale_after = "20m"\n')
    cfg = config.load(path, env={})
    assert cfg.metrics == MetricsConfig(enabled=True, allow_remote=True, stale_after=timedelta(minutes=20))
    path.write_text(base + '[metrics]\nstale_after = "later"\n')
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert err.value.problems == ["metrics.stale_after: must be a duration such as '90s', '15m' or '2h'"]


def test_streamed_threshold_adds_the_safety_interval_never_below_the_sync_interval():
    """A streamed room's threshold is the safety interval (at least sync.interval) plus the stale one."""
    sync = config.SyncConfig(interval=timedelta(seconds=60), stream_safety_interval=timedelta(hours=1))
    assert streamed_threshold(MetricsConfig(), sync) == timedelta(minutes=65)
    slow = config.SyncConfig(interval=timedelta(hours=2), stream_safety_interval=timedelta(hours=1))
    assert streamed_threshold(MetricsConfig(), slow) == timedelta(hours=8)
    explicit = MetricsConfig(stale_after=timedelta(minutes=10))
    assert streamed_threshold(explicit, sync) == timedelta(minutes=70)


def test_a_streamed_room_stays_fresh_until_its_own_threshold_and_turns_plain_when_unstreamed(clock):
    """A streamed room is healthy past the plain threshold; once unstreamed, it is stale."""
    book = HealthBook(ROOMS, threshold=THRESHOLD, streamed_threshold=timedelta(minutes=65), clock=clock)
    book.record_pass("aurora@corp.example", ok=True, streamed=True)
    book.record_pass("borealis@corp.example", ok=True)
    clock.advance(timedelta(minutes=30))
    by_room = {room.room: room for room in book.rooms()}
    assert by_room["aurora@corp.example"].healthy
    assert by_room["aurora@corp.example"].streamed
    assert not by_room["borealis@corp.example"].healthy
    assert book.report()["streamed_stale_after_seconds"] == 65 * 60
    book.unstream(["aurora@corp.example"])
    assert not next(r for r in book.rooms() if r.room == "aurora@corp.example").healthy


def test_a_failed_pass_ends_a_rooms_streamed_judgement(clock):
    """A failed pass judges the room on the plain threshold again, even after a streamed good pass."""
    book = HealthBook(
        ["aurora@corp.example"], threshold=THRESHOLD, streamed_threshold=timedelta(hours=1), clock=clock
    )
    book.record_pass("aurora@corp.example", ok=True, streamed=True)
    clock.advance(timedelta(minutes=10))
    assert book.healthy()
    book.record_pass("aurora@corp.example", ok=False, streamed=True)
    assert not book.healthy()
