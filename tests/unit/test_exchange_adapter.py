"""The Exchange adapter's set-up and error table, without a server (xesync.adapters.exchange*)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from exchangelib import BASIC, DELEGATE, IMPERSONATION, NTLM, OAUTH2, Build, OAuth2Credentials
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorExceededFindCountLimit,
    ErrorImpersonateUserDenied,
    ErrorInternalServerError,
    ErrorInvalidChangeKey,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
    ErrorQuotaExceeded,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    RateLimitError,
    UnauthorizedError,
)
from exchangelib.protocol import CachingProtocol, Protocol

from xesync.adapters.exchange import ExchangeCalendarSource, _view
from xesync.adapters.exchange_errors import translate
from xesync.adapters.exchange_session import BoundedFaultTolerance, apply_tls
from xesync.config.model import AuthType, ExchangeConfig, RoomConfig, Secret, TlsConfig
from xesync.errors import ConfigError, ExchangeAccessError, ExchangeItemError, ServiceUnavailableError

# A loopback port nothing listens on: any request would fail, and none must be made.
URL = "http://127.0.0.1:9/EWS/Exchange.asmx"
ROOMS = (RoomConfig(email="Room-Oslo@Lab.Example", tms_system_id=11, name="Oslo"),)


def exchange(**fields):
    """An [exchange] section for the unit tests."""
    base = ExchangeConfig(
        url=URL,
        username="svc-xesync@lab.example",
        password=Secret("unit-test-password"),
        auth_type=AuthType.BASIC,
        version="15.1.2507.6",
        max_wait=timedelta(seconds=7),
        max_connections=3,
        timeout=timedelta(seconds=12),
    )
    return dataclasses.replace(base, **fields)


@pytest.fixture
def source():
    """An adapter on an unreachable endpoint, closed after the test."""
    adapter = ExchangeCalendarSource(exchange(), ROOMS, timedelta(days=180))
    yield adapter
    adapter.close()


def test_configuration_is_explicit(source):
    """Endpoint, build, auth type, pool size and a bounded FaultTolerance come from the config."""
    config = source._config
    assert config.service_endpoint == URL
    assert config.auth_type == BASIC
    assert config.version.build == Build(15, 1, 2507, 6)
    assert config.max_connections == 3
    assert isinstance(config.retry_policy, BoundedFaultTolerance)
    assert config.retry_policy.max_wait == 7
    assert config.credentials.username == "svc-xesync@lab.example"


def test_missing_version_leaves_the_build_to_one_probe():
    """Without exchange.version the configuration names no build, so exchangelib probes once."""
    adapter = ExchangeCalendarSource(
        exchange(version=None, auth_type=AuthType.NTLM), ROOMS, timedelta(days=1)
    )
    assert adapter._config.version is None
    assert adapter._config.auth_type == NTLM


def test_oauth_uses_client_credentials():
    """auth_type oauth builds OAuth2Credentials from the client id, tenant and secret."""
    adapter = ExchangeCalendarSource(
        exchange(
            auth_type=AuthType.OAUTH,
            password=None,
            oauth_client_id="client",
            oauth_tenant_id="tenant",
            oauth_client_secret=Secret("client-secret-value"),
        ),
        ROOMS,
        timedelta(days=1),
    )
    creds = adapter._config.credentials
    assert isinstance(creds, OAuth2Credentials)
    assert (creds.client_id, creds.tenant_id, creds.client_secret) == (
        "client",
        "tenant",
        "client-secret-value",
    )
    assert adapter._config.auth_type == OAUTH2


@pytest.mark.parametrize(("impersonation", "access_type"), [(True, IMPERSONATION), (False, DELEGATE)])
def test_room_account_is_lazy_and_uses_the_access_type(impersonation, access_type):
    """A room's Account is made on first use, once, with the access type and the adapter's protocol."""
    adapter = ExchangeCalendarSource(exchange(impersonation=impersonation), ROOMS, timedelta(days=1))
    try:
        assert adapter._accounts == {}
        account = adapter._account("room-oslo@lab.example")
        assert adapter._account("room-oslo@lab.example") is account
        assert account.access_type == access_type
        assert account.primary_smtp_address == "Room-Oslo@Lab.Example"
        assert account.protocol is adapter._protocol
        assert account.protocol.TIMEOUT == 12
        assert Protocol.TIMEOUT == 120  # the class default is left alone
    finally:
        adapter.close()


def test_unknown_room_is_a_config_error(source):
    """A room that is not configured is refused with the configured rooms listed."""
    with pytest.raises(ConfigError, match=r"room-oslo@lab\.example"):
        source.changes("nowhere@lab.example", None, window=(None, None))


def test_close_drops_only_its_own_protocol(source):
    """close() removes the adapter's protocol from exchangelib's cache and keeps the adapter usable."""
    source._account("room-oslo@lab.example")
    assert Protocol[source._config][0] is source._protocol
    source.close()
    with pytest.raises(KeyError):
        Protocol[source._config]
    assert source._accounts == {}
    again = source._account("room-oslo@lab.example")
    assert again.protocol is source._protocol


def test_a_cached_protocol_for_the_same_credentials_is_replaced():
    """An adapter never inherits another configuration's protocol (and with it its retry policy)."""
    first = ExchangeCalendarSource(exchange(max_wait=timedelta(seconds=300)), ROOMS, timedelta(days=1))
    second = ExchangeCalendarSource(exchange(), ROOMS, timedelta(days=1))
    try:
        old = first._account("room-oslo@lab.example").protocol
        new = second._account("room-oslo@lab.example").protocol
        assert new is not old
        assert new.retry_policy.max_wait == 7
        assert old.retry_policy.max_wait == 300
    finally:
        first.close()
        second.close()
    assert not any(key[0] == URL for key in CachingProtocol._protocol_cache)


@pytest.mark.parametrize(
    ("tls", "verify"),
    [
        (TlsConfig(), True),
        (TlsConfig(verify=False), False),
        (TlsConfig(ca_file=Path("/etc/xesync/ca.pem")), "/etc/xesync/ca.pem"),
    ],
)
def test_tls_settings_apply_to_this_protocols_sessions_only(source, tls, verify):
    """TLS verification (off, or a CA file) is set on the sessions of this protocol, not on the class."""
    protocol = source._account("room-oslo@lab.example").protocol
    apply_tls(protocol, tls)
    session = protocol.create_session()
    try:
        assert session.verify == verify
        assert Protocol.HTTP_ADAPTER_CLS is requests.adapters.HTTPAdapter
    finally:
        session.close()


def test_bounded_fault_tolerance_caps_the_sum_of_waits():
    """Back-offs in one call add up to at most max_wait, then RateLimitError; a new call starts over."""
    policy = BoundedFaultTolerance(max_wait=2)
    policy.start_call()
    policy.back_off(1)
    policy.back_off(1)
    with pytest.raises(RateLimitError):
        policy.back_off(0.5)
    policy.start_call()
    policy.back_off(1.5)
    with pytest.raises(RateLimitError):
        policy.back_off(3)


ROOM = "room-oslo@lab.example"
USER = "svc-xesync@lab.example"


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (ErrorImpersonateUserDenied("denied"), ExchangeAccessError, "ErrorImpersonateUserDenied"),
        (ErrorNonExistentMailbox("none"), ExchangeAccessError, "ErrorNonExistentMailbox"),
        (ErrorAccessDenied("no"), ExchangeAccessError, "ErrorAccessDenied"),
        (UnauthorizedError("401"), ExchangeAccessError, "UnauthorizedError"),
    ],
)
def test_mailbox_access_errors_name_the_fix(exc, kind, code):
    """Access codes become ExchangeAccessError with the room, the code and a hint naming the fix."""
    err = translate(exc, room=ROOM, user=USER)
    assert isinstance(err, kind)
    assert (err.room, err.code) == (ROOM, code)
    assert err.hint


def test_impersonation_hint_names_the_role_and_the_account():
    """ErrorImpersonateUserDenied says to grant ApplicationImpersonation to the service account."""
    err = translate(ErrorImpersonateUserDenied("denied"), room=ROOM, user=USER)
    assert "ApplicationImpersonation" in str(err)
    assert USER in str(err)


@pytest.mark.parametrize(
    "exc",
    [
        ErrorItemNotFound("gone"),
        ErrorIrresolvableConflict("stale"),
        ErrorInvalidChangeKey("stale"),
        ErrorQuotaExceeded("q"),
    ],
)
def test_item_errors_on_one_item_are_item_errors(exc):
    """On a call about one item, item codes (and other per-item codes) become ExchangeItemError."""
    err = translate(exc, room=ROOM, user=USER, item_id="AAMk1")
    assert isinstance(err, ExchangeItemError)
    assert (err.room, err.item_id, err.code) == (ROOM, "AAMk1", type(exc).__name__)


@pytest.mark.parametrize(
    ("exc", "retry_after"),
    [
        (ErrorServerBusy("busy", back_off=4.5), 4.5),
        (RateLimitError("Max timeout reached", wait=90), 90),
        (ErrorTimeoutExpired("Reraised from ConnectionError"), None),
        (ErrorInternalServerError("boom"), None),
        (requests.ConnectionError("refused"), None),
    ],
)
def test_transient_errors_are_service_unavailable(exc, retry_after):
    """Throttling, timeouts, dropped connections and 5xx are ServiceUnavailableError with the back-off."""
    for item_id in (None, "AAMk1"):
        err = translate(exc, room=ROOM, user=USER, item_id=item_id)
        assert isinstance(err, ServiceUnavailableError)
        assert err.service == "ews"
        assert err.retry_after == retry_after


def test_unknown_code_on_a_room_read_is_transient():
    """An unknown code on a room-level read is treated as transient, so the sync state is kept."""
    err = translate(ErrorQuotaExceeded("q"), room=ROOM, user=USER)
    assert isinstance(err, ServiceUnavailableError)
    assert "ErrorQuotaExceeded" in err.reason


class FakeCalendar:
    """A calendar whose view() refuses more than ``limit`` rows, as EWSFindCountLimit does."""

    def __init__(self, rows, limit):
        self.rows = rows
        self.limit = limit
        self.views = 0

    def view(self, start, end):
        """The rows overlapping [start, end), or ErrorExceededFindCountLimit."""
        self.views += 1
        hits = [r for r in self.rows if r.start < end and r.end > start]
        if len(hits) > self.limit:
            raise ErrorExceededFindCountLimit("The view exceeds the find count limit.")
        return SimpleNamespace(only=lambda *_: hits)


def rows_every(start, count, step, length):
    """``count`` occurrence rows, one per ``step``, each ``length`` long."""
    return [
        SimpleNamespace(
            id=f"occ{n}", start=start + n * step, end=start + n * step + length, type="Occurrence"
        )
        for n in range(count)
    ]


def test_calendar_view_is_split_when_the_find_limit_is_hit():
    """A view refused for too many items is halved until each half fits; items spanning a cut come once."""
    start = datetime(2027, 1, 1, tzinfo=UTC)
    rows = rows_every(start, 16, timedelta(hours=12), timedelta(hours=13))
    calendar = FakeCalendar(rows, limit=5)
    got = _view(calendar, start, start + timedelta(days=8))
    assert sorted(r.id for r in got) == sorted(r.id for r in rows)
    assert calendar.views > 1


def test_calendar_view_too_dense_for_one_day_raises():
    """A single day with more items than the limit is not split for ever; the server's error is raised."""
    start = datetime(2027, 1, 1, tzinfo=UTC)
    calendar = FakeCalendar(rows_every(start, 10, timedelta(minutes=30), timedelta(minutes=30)), limit=3)
    with pytest.raises(ErrorExceededFindCountLimit):
        _view(calendar, start, start + timedelta(days=1))
