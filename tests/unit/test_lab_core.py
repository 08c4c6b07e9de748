"""The lab core: clock, fault matching, request counts and the loopback HTTP server."""

from __future__ import annotations

import socket
import struct
from datetime import UTC, datetime, timedelta

import pytest
import requests

from xesync.lab.clock import LabClock
from xesync.lab.faults import Fault, FaultBook, RequestCounter, parse_fault
from xesync.lab.http import (
    LabHTTPServer,
    LabRequest,
    LabResponse,
    NotLoopbackError,
    RequestInfo,
    check_loopback,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KINDS = {"ews": frozenset({"server_busy"}), "tms": frozenset({"session_expired"}), "cms": frozenset()}


class Echo:
    """A minimal simulator answering with what it saw."""

    name = "ews"

    def __init__(self):
        self.seen: list[list[str]] = []

    def classify(self, request: LabRequest) -> RequestInfo:
        return RequestInfo(request.path.strip("/") or "root", request.query_value("mailbox"))

    def handle(self, request: LabRequest, faults: list[Fault]) -> LabResponse:
        self.seen.append([f.kind for f in faults])
        if request.path == "/stream":
            return LabResponse(body=iter([b"one,", b"two,", b"three"]))
        return LabResponse(body=request.body or b"empty", content_type="text/plain")


@pytest.fixture
def served():
    faults, counter, echo = FaultBook(), RequestCounter(), Echo()
    server = LabHTTPServer(echo, faults, counter)
    server.start()
    yield server, faults, counter, echo
    server.stop()


def test_frozen_clock_moves_only_when_told():
    """A frozen clock stands still, and set/advance notify listeners."""
    clock = LabClock(T0, frozen=True)
    heard: list[datetime] = []
    clock.subscribe(heard.append)
    assert clock.now() == T0
    clock.advance(600)
    assert clock.now() == T0 + timedelta(minutes=10)
    clock.set(T0 + timedelta(hours=1))
    assert heard == [T0 + timedelta(minutes=10), T0 + timedelta(hours=1)]


def test_running_clock_moves_forward():
    """An unfrozen clock follows real time from the point it was set."""
    clock = LabClock(T0)
    assert clock.now() >= T0


def test_clock_refuses_naive_times():
    """Naive datetimes are refused, as exchangelib refuses them."""
    with pytest.raises(ValueError):
        LabClock(datetime(2026, 1, 1))  # noqa: DTZ001


def test_a_failing_listener_does_not_stop_the_others():
    """One listener raising does not keep the next from hearing the tick."""
    clock = LabClock(T0, frozen=True)
    heard = []
    clock.subscribe(lambda _now: 1 / 0)
    clock.subscribe(heard.append)
    clock.tick()
    assert heard == [T0]


def test_fault_count_and_operation_matching():
    """A fault hits only its operation, and only count times."""
    book = FaultBook()
    book.add(
        parse_fault(
            {
                "service": "ews",
                "kind": "server_busy",
                "operation": "SyncFolderItems",
                "count": 2,
                "back_off_ms": 50,
            },
            KINDS,
        )
    )
    assert book.take("ews", "GetItem") == []
    assert [f.kind for f in book.take("ews", "syncfolderitems")] == ["server_busy"]
    assert len(book.take("ews", "SyncFolderItems")) == 1
    assert book.take("ews", "SyncFolderItems") == []
    assert book.active() == []


def test_cms_faults_match_path_prefixes():
    """CMS faults match a path prefix, case-insensitively."""
    fault = Fault(service="cms", kind="latency", operation="/api/v1/coSpaces", params={"ms": 1})
    assert fault.matches("cms", "/api/v1/cospaces/abc")
    assert not fault.matches("cms", "/api/v1/calls")
    assert fault.matches("cms", "/coSpaces/abc")
    bare = Fault(service="cms", kind="latency", operation="/calls", params={"ms": 1})
    assert bare.matches("cms", "/api/v1/calls/1/callLegs")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"service": "xmpp", "kind": "latency"}, "service must be one of"),
        ({"service": "tms", "kind": "server_busy"}, "kind for tms must be one of"),
        ({"service": "ews", "kind": "latency"}, "latency needs ms"),
        ({"service": "ews", "kind": "http_status"}, "http_status needs a status"),
        ({"service": "ews", "kind": "latency", "ms": "5"}, "ms must be an integer"),
        ({"service": "ews", "kind": "latency", "ms": 5, "count": 0}, "count must be a positive"),
    ],
)
def test_bad_fault_specs_are_refused(spec, message):
    """A malformed fault spec names the bad field."""
    with pytest.raises(ValueError, match=message):
        parse_fault(spec, KINDS)


def test_loopback_only():
    """Only loopback addresses are accepted."""
    assert check_loopback("127.0.0.2") == "127.0.0.2"
    assert check_loopback("::1") == "::1"
    for host in (
        "0.0.0.0",  # noqa: S104 - refused on purpose
        "10.0.0.1",
        "example.com",
        "",
    ):
        with pytest.raises(NotLoopbackError):
            check_loopback(host)


def test_server_counts_and_echoes(served):
    """Requests are counted per operation and mailbox and answered by the simulator."""
    server, _, counter, _ = served
    response = requests.post(f"{server.base_url}/op?mailbox=Room@x", data=b"hello", timeout=5)
    assert response.text == "hello"
    snap = counter.snapshot("ews")["ews"]
    assert snap["operations"] == {"op": 1}
    assert snap["mailboxes"] == {"room@x": {"op": 1}}


def test_http_status_fault_with_retry_after(served):
    """An http_status fault answers that status with Retry-After, then stops after count."""
    server, faults, _, _ = served
    faults.add(Fault(service="ews", kind="http_status", count=1, params={"status": 503, "retry_after_s": 7}))
    first = requests.get(f"{server.base_url}/op", timeout=5)
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "7"
    assert requests.get(f"{server.base_url}/op", timeout=5).status_code == 200


def test_drop_connection_fault(served):
    """A drop_connection fault closes the socket with no response."""
    server, faults, _, _ = served
    faults.add(Fault(service="ews", kind="drop_connection", count=1))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/op", timeout=5)
    assert requests.get(f"{server.base_url}/op", timeout=5).ok


def test_drop_answer_fault_carries_the_request_out_then_drops_the_connection(served):
    """A drop_answer fault lets the simulator act, then closes the socket: a timeout after the fact."""
    server, faults, _, echo = served
    faults.add(Fault(service="ews", kind="drop_answer", count=1))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/op", timeout=5)
    assert echo.seen == [[]]  # the simulator handled it (the core's own kind is not passed on)
    assert requests.get(f"{server.base_url}/op", timeout=5).ok


def test_specific_faults_reach_the_simulator(served):
    """Faults the core does not know are handed to the simulator to render."""
    server, faults, _, echo = served
    faults.add(Fault(service="ews", kind="server_busy", count=1, params={"back_off_ms": 5}))
    requests.get(f"{server.base_url}/op", timeout=5)
    assert echo.seen == [["server_busy"]]


def test_streamed_body_is_chunked(served):
    """An iterable body is sent with chunked transfer encoding."""
    server, *_ = served
    response = requests.get(f"{server.base_url}/stream", timeout=5)
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.text == "one,two,three"


def test_malformed_http_does_not_kill_the_server(served):
    """A bad Content-Length gets a 400 and the server keeps serving."""
    server, *_ = served
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"POST /op HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    assert requests.get(f"{server.base_url}/op", timeout=5).ok


def test_chunked_request_body_is_read(served):
    """A chunked request body is reassembled."""
    server, *_ = served
    response = requests.post(f"{server.base_url}/op", data=iter([b"ab", b"cd"]), timeout=5)
    assert response.text == "abcd"


def test_a_client_that_resets_its_connection_leaves_no_traceback(served, capsys):
    """A client gone mid-request (RST) is a debug line, not a traceback on stderr; the server serves on."""
    server, _faults, counter, _echo = served
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(b"POST /x HTTP/1.1\r\nHost: lab\r\nContent-Length: 100\r\n\r\npartial")
    sock.close()  # SO_LINGER 0: the close is a reset
    url = f"http://{server.host}:{server.port}/after"
    assert requests.post(url, data=b"hello", timeout=10).content == b"hello"
    assert counter.count("ews", "after") == 1
    assert "Traceback" not in capsys.readouterr().err
