"""Injected faults provoke exchangelib's client-side traps on demand (ews.md §1.15, §2.5, §4).

No timed assertions: a back-off is checked by what exchangelib was asked to wait (the retry policy
records it) and by the lab's request log (the retry happened), never by a clock.
"""

from __future__ import annotations

import pytest
from exchangelib import FaultTolerance
from exchangelib.errors import (
    ErrorExceededConnectionCount,
    ErrorInvalidSyncStateData,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    TransportError,
    UnauthorizedError,
)

ROOM = "room-oslo@lab.example"


class RecordingFaultTolerance(FaultTolerance):
    """exchangelib's FaultTolerance that keeps every back-off the server asked for, in seconds."""

    def __init__(self, max_wait: int) -> None:
        super().__init__(max_wait=max_wait)
        self.back_offs: list[float | None] = []

    def back_off(self, seconds):
        self.back_offs.append(seconds)
        super().back_off(seconds)


def test_fault_tolerance_waits_the_injected_back_off_then_retries(ews, service):
    """With FaultTolerance, exchangelib backs off BackOffMilliseconds, then one retry succeeds."""
    policy = RecordingFaultTolerance(max_wait=30)
    room = service(ROOM, retry_policy=policy)
    root = room.root
    ews.requests.reset()
    ews.inject(service="ews", kind="server_busy", back_off_ms=700, count=1, operation="GetFolder")
    root.refresh()
    assert policy.back_offs == [0.7]
    assert ews.requests.count("ews", "GetFolder") == 2
    assert ews.faults.active() == []


def test_fail_fast_raises_server_busy_with_the_back_off(ews, service):
    """With the default FailFast, the first ErrorServerBusy raises, carrying the server's back-off."""
    ews.inject(service="ews", kind="server_busy", back_off_ms=1500, count=1)
    with pytest.raises(ErrorServerBusy) as info:
        service(ROOM).root.refresh()
    assert info.value.back_off == 1.5


def test_per_message_server_busy_raises_without_the_server_back_off(ews, service):
    """The HTTP 200 per-message form carries no back-off, so exchangelib uses its own RETRY_WAIT (trap 9)."""
    room = service(ROOM)
    ews.inject(service="ews", kind="server_busy", form="message", back_off_ms=1500, count=1)
    with pytest.raises(ErrorServerBusy) as info:
        room.root.refresh()
    assert info.value.back_off == room.protocol.RETRY_WAIT


def test_inner_server_busy_is_raised_as_server_busy(ews, service):
    """ErrorInternalServerError with an inner ErrorServerBusy is re-raised as ErrorServerBusy."""
    ews.inject(service="ews", kind="server_busy", form="inner", count=1)
    with pytest.raises(ErrorServerBusy):
        service(ROOM).root.refresh()


def test_http_503_with_retry_after_is_honoured_under_fault_tolerance(ews, service):
    """A 503 with Retry-After is transient: exchangelib backs off Retry-After seconds and retries once."""
    policy = RecordingFaultTolerance(max_wait=30)
    room = service(ROOM, retry_policy=policy)
    root = room.root
    ews.requests.reset()
    ews.inject(service="ews", kind="http_status", status=503, retry_after_s=1, count=1)
    root.refresh()
    assert policy.back_offs == [1]
    assert ews.requests.count("ews", "GetFolder") == 2


def test_http_503_raises_under_fail_fast(ews, service):
    """Under FailFast a 503 raises at once."""
    ews.inject(service="ews", kind="http_status", status=503, retry_after_s=1, count=1)
    with pytest.raises(ErrorServerBusy):
        service(ROOM).root.refresh()


def test_exceeded_connection_count_with_one_session_raises(ews, service):
    """ErrorExceededConnectionCount cannot shrink a one-session pool, so it raises."""
    ews.inject(service="ews", kind="exceeded_connection_count", count=1)
    with pytest.raises(ErrorExceededConnectionCount):
        service(ROOM).root.refresh()


def test_exceeded_connection_count_shrinks_the_pool_and_retries(ews, service):
    """With two sessions, exchangelib drops one and retries at once."""
    room = service(ROOM, max_connections=2)
    root = room.root
    room.protocol.increase_poolsize()
    ews.requests.reset()
    ews.inject(service="ews", kind="exceeded_connection_count", count=1)
    root.refresh()
    assert room.protocol.session_pool_size == 1
    assert ews.requests.count("ews", "GetFolder") == 2


def test_dropped_connection_with_one_session_is_not_retried(ews, service):
    """A dropped connection raises at once even under FaultTolerance (trap 8)."""
    room = service(ROOM, retry_policy=FaultTolerance(max_wait=5))
    ews.inject(service="ews", kind="drop_connection", count=1)
    with pytest.raises(ErrorTimeoutExpired):
        room.root.refresh()


def test_truncated_response_raises_a_transport_error(ews, service):
    """A response cut short surfaces as a transport-level error, not as data."""
    ews.inject(service="ews", kind="truncated", count=1)
    with pytest.raises(TransportError):
        service(ROOM).root.refresh()


def test_invalid_sync_state_fault_raises_the_ews_error(ews, service):
    """The invalid_sync_state fault makes SyncFolderItems answer ErrorInvalidSyncStateData (trap 15)."""
    cal = service(ROOM).calendar
    ews.inject(service="ews", kind="invalid_sync_state", operation="SyncFolderItems", count=1)
    with pytest.raises(ErrorInvalidSyncStateData):
        list(cal.sync_items(only_fields=["uid"]))
    assert list(cal.sync_items(only_fields=["uid"])) == []


def test_garbage_sync_state_raises_the_ews_error(service):
    """A state the server never issued is ErrorInvalidSyncStateData, not a crash."""
    with pytest.raises(ErrorInvalidSyncStateData):
        list(service(ROOM).calendar.sync_items(sync_state="bm90LWEtc3RhdGU=", only_fields=["uid"]))


def test_unauthorized_fault_raises_under_fail_fast(ews, service):
    """An injected 401 raises UnauthorizedError under FailFast (trap 10)."""
    ews.inject(service="ews", kind="unauthorized", count=1)
    with pytest.raises(UnauthorizedError):
        service(ROOM).root.refresh()


def test_wrong_password_is_unauthorized(service_as):
    """Bad credentials get a 401 challenge, which FailFast raises."""
    with pytest.raises(UnauthorizedError):
        service_as("svc-xesync@lab.example", "wrong", ROOM).root.refresh()


def test_latency_fault_delays_the_answer(ews, service):
    """A latency fault is taken by the next request, which is answered normally and counted once."""
    room = service(ROOM)
    root = room.root
    ews.requests.reset()
    ews.inject(service="ews", kind="latency", ms=300, count=1)
    assert [f["kind"] for f in ews.faults.active()] == ["latency"]
    root.refresh()
    assert ews.faults.active() == []
    snapshot = ews.requests.snapshot("ews")["ews"]
    assert snapshot["mailboxes"][ROOM]["GetFolder"] == 1
