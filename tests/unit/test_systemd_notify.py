"""The sd_notify protocol: datagrams on a real AF_UNIX socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from xesync import events
from xesync.systemd import Notifier


def bound_socket(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    # A guard against a hang if nothing arrives, not a timing assertion: sends are synchronous.
    sock.settimeout(5)
    return sock


@pytest.fixture
def path_socket(tmp_path):
    path = tmp_path / "notify"
    with bound_socket(str(path)) as sock:
        yield str(path), sock


@pytest.fixture
def abstract_socket():
    name = f"xesync-test-{uuid.uuid4().hex}"
    with bound_socket(b"\0" + name.encode()) as sock:
        yield "@" + name, sock


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, decoded, in arrival order."""
    out = [sock.recv(4096).decode()]
    sock.settimeout(0)  # non-blocking: drain what is queued
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(5)


def test_each_message_arrives_on_a_path_socket(path_socket):
    """READY, STATUS, WATCHDOG, RELOADING and STOPPING reach a socket bound at a file path, in order."""
    address, sock = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.ready(status="rooms 3, stale 0")
    notifier.status("syncing aurora")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    messages = received(sock)
    assert messages[:3] == ["READY=1\nSTATUS=rooms 3, stale 0", "STATUS=syncing aurora", "WATCHDOG=1"]
    reloading = messages[3].split("\n")
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=")
    assert int(reloading[1].removeprefix("MONOTONIC_USEC=")) > 0
    assert messages[4:] == ["STOPPING=1"]


def test_messages_arrive_on_an_abstract_socket(abstract_socket):
    """An address written with a leading '@' is the abstract namespace (a leading NUL on the wire)."""
    address, sock = abstract_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.ready()
    notifier.watchdog()
    notifier.stopping(status="finishing the room in hand")
    assert received(sock) == ["READY=1", "WATCHDOG=1", "STOPPING=1\nSTATUS=finishing the room in hand"]


def test_status_is_one_line(path_socket):
    """A multi-line status reaches systemd as one line, because STATUS= ends at the newline."""
    address, sock = path_socket
    Notifier({"NOTIFY_SOCKET": address}).status("rooms 3\nbacklog 2\n")
    assert received(sock) == ["STATUS=rooms 3 backlog 2"]


def test_without_notify_socket_nothing_is_sent_or_logged():
    """Outside systemd (no NOTIFY_SOCKET) every call is a silent no-op."""
    notifier = Notifier({})
    with capture_logs() as logs:
        notifier.ready()
        notifier.status("x")
        notifier.watchdog()
        notifier.stopping()
    assert notifier.enabled is False
    assert logs == []


def test_a_failed_send_never_raises_and_is_logged_once_per_outage(tmp_path):
    """Sends to a missing socket do not raise; the first failure logs, repeats stay quiet until a success."""
    path = tmp_path / "notify"
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    with capture_logs() as logs:
        notifier.ready()
        notifier.watchdog()
        notifier.watchdog()
    assert [e["event"] for e in logs] == [events.SYSTEMD_NOTIFY_FAILED]
    assert logs[0]["socket"] == str(path)
    assert logs[0]["log_level"] == "warning"

    with bound_socket(str(path)) as sock:
        notifier.watchdog()
        assert received(sock) == ["WATCHDOG=1"]
    path.unlink()

    with capture_logs() as logs:
        notifier.watchdog()
        notifier.watchdog()
    assert [e["event"] for e in logs] == [events.SYSTEMD_NOTIFY_FAILED]


def test_an_unsupported_address_is_logged_once_and_ignored():
    """A NOTIFY_SOCKET form we do not speak (vsock, a relative name) is reported once, never raised."""
    notifier = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    with capture_logs() as logs:
        notifier.ready()
        notifier.watchdog()
    assert [e["event"] for e in logs] == [events.SYSTEMD_NOTIFY_FAILED]
    assert logs[0]["socket"] == "vsock:2:1234"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, timedelta(seconds=15)),
        ({"WATCHDOG_USEC": "1000001"}, timedelta(microseconds=500000)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, timedelta(seconds=15)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(env, expected):
    """The ping interval is half of WATCHDOG_USEC, only when WATCHDOG_PID is unset or names us."""
    assert Notifier(env, pid=4242).watchdog_interval() == expected


def test_watchdog_pid_defaults_to_this_process():
    """Without an explicit pid, WATCHDOG_PID is compared with the running process's id."""
    env = {"WATCHDOG_USEC": "8000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(env).watchdog_interval() == timedelta(seconds=4)
