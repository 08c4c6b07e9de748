"""TmsBookingSink against a failing TMS: session faults, transport failures and every TMS fault, mapped once.

Faults come from the lab (``lab.inject``, knobs, or a booking that breaks a TMS rule); request counts
come from the lab's request log.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from structlog.testing import capture_logs

from xesync import events
from xesync.adapters.tms import TmsBookingSink
from xesync.config.model import BookingMode, Config, Secret, TmsAuthType
from xesync.errors import (
    ConfigError,
    ServiceUnavailableError,
    TmsConflictError,
    TmsFaultError,
    TmsLimitError,
    TmsOwnerError,
)
from xesync.lab import Lab
from xesync.meetings import ConferenceRequest, Frequency, Owner, Recurrence

NOBODY = Owner(username="LAB\\nobody", first_name="No", last_name="Body", email="nobody@lab.example")


@pytest.fixture
def sink(lab_config: Config) -> Iterator[TmsBookingSink]:
    """The adapter as configured by ``lab serve``."""
    sink = TmsBookingSink(lab_config.tms)
    yield sink
    sink.close()


@pytest.fixture
def start(lab: Lab) -> datetime:
    """A whole hour two days ahead on the lab clock."""
    return lab.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)


def request(key: str, start: datetime, **kw) -> ConferenceRequest:
    return ConferenceRequest(
        external_key=key,
        title=kw.pop("title", "Faults"),
        start=start,
        end=start + timedelta(hours=1),
        time_zone="Europe/Oslo",
        system_ids=kw.pop("system_ids", (11,)),
        **kw,
    )


def weekly(start: datetime, **kw) -> Recurrence:
    return Recurrence(
        frequency=Frequency.WEEKLY, weekdays=(start.isoweekday(),), start_date=start.date(), **kw
    )


def warm(sink: TmsBookingSink, lab: Lab, start: datetime) -> None:
    """Open a session with one save, then forget the request counts."""
    sink.save(request("warm", start - timedelta(hours=3)))
    lab.requests.reset()


def test_expired_session_is_renewed_and_the_call_retried_once(lab: Lab, sink, start):
    """An injected session expiry on a warm session costs one retry with the suggested id, then succeeds."""
    warm(sink, lab, start)
    old = sink.session_id
    lab.inject(service="tms", kind="session_expired", count=1)
    with capture_logs() as logs:
        saved = sink.save(request("s-1", start))
    assert saved.external_key == "s-1"
    assert lab.requests.count("tms", "SaveConferenceWithMode") == 2
    assert sink.session_id not in ("", old)
    renewed = [e for e in logs if e["event"] == events.TMS_SESSION_RENEWED]
    assert [(e["operation"], e["code"]) for e in renewed] == [
        ("SaveConferenceWithMode", "ERR_CLIENT_SESSION_EXPIRED")
    ]


def test_a_second_session_fault_is_service_unavailable(lab: Lab, sink, start):
    """When the retry with the suggested id faults on the session again, the call gives up (unavailable)."""
    warm(sink, lab, start)
    lab.inject(service="tms", kind="session_expired", count=2)
    with pytest.raises(ServiceUnavailableError) as caught:
        sink.save(request("s-2", start))
    assert caught.value.service == "tms"
    assert lab.requests.count("tms", "SaveConferenceWithMode") == 2


def test_non_soap_500_is_service_unavailable(lab: Lab, sink, start):
    """An HTTP 500 error page without a SOAP fault is ServiceUnavailableError, not a booking failure."""
    lab.inject(service="tms", kind="non_soap_500", count=1)
    with capture_logs() as logs, pytest.raises(ServiceUnavailableError):
        sink.save(request("t-1", start))
    failed = [e for e in logs if e["event"] == events.TMS_REQUEST_FAILED]
    assert failed == [{"event": events.TMS_REQUEST_FAILED, "operation": "SaveConferenceWithMode",
                       "status": 500, "log_level": "warning"}]  # fmt: skip


def test_503_carries_retry_after(lab: Lab, sink, start):
    """HTTP 503 with Retry-After becomes ServiceUnavailableError with that many seconds."""
    lab.inject(service="tms", kind="http_status", status=503, retry_after_s=17, count=1)
    with pytest.raises(ServiceUnavailableError) as caught:
        sink.find("t-2")
    assert caught.value.retry_after == 17


def test_dropped_connection_is_service_unavailable(lab: Lab, sink, start):
    """A connection dropped before any answer is ServiceUnavailableError (the next run saves again)."""
    lab.inject(service="tms", kind="drop_connection", count=1)
    with pytest.raises(ServiceUnavailableError):
        sink.save(request("t-3", start))


def test_refused_connection_is_service_unavailable(lab_config: Config, start):
    """Nobody listening on the configured port is ServiceUnavailableError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tms/external/booking/bookingservice.asmx"
    sink = TmsBookingSink(replace(lab_config.tms, url=url))
    with pytest.raises(ServiceUnavailableError):
        sink.find("t-4")
    sink.close()


def test_timeout_is_service_unavailable(lab: Lab, lab_config: Config):
    """A TMS slower than tms.timeout is ServiceUnavailableError."""
    lab.inject(service="tms", kind="latency", ms=1500, count=1)
    sink = TmsBookingSink(replace(lab_config.tms, timeout=timedelta(milliseconds=200)))
    with pytest.raises(ServiceUnavailableError, match="no answer"):
        sink.find("t-5")
    sink.close()


def test_database_down_is_service_unavailable(lab: Lab, sink, start):
    """DATABASE_DOWN is transient: ServiceUnavailableError."""
    lab.inject(service="tms", kind="database_down", count=1)
    with pytest.raises(ServiceUnavailableError):
        sink.save(request("t-6", start))


def test_wrong_password_is_a_configuration_error(lab_config: Config):
    """HTTP 401 means wrong credentials: ConfigError naming the keys, without the secret."""
    sink = TmsBookingSink(replace(lab_config.tms, password=Secret("not-the-password")))
    with pytest.raises(ConfigError) as caught:
        sink.find("t-7")
    assert "tms.password" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    sink.close()


def test_licence_and_unknown_codes_are_plain_fault_errors(lab: Lab, sink, start):
    """LICENSE and a code nobody documented are TmsFaultError with their code, not a subclass."""
    lab.inject(service="tms", kind="license", count=1)
    with pytest.raises(TmsFaultError) as licence:
        sink.save(request("t-8", start))
    assert (type(licence.value), licence.value.code) == (TmsFaultError, "LICENSE")
    lab.inject(service="tms", kind="soap_fault", errorcode=-2147210000, message="Odd.", count=1)
    with pytest.raises(TmsFaultError) as odd:
        sink.save(request("t-8", start))
    assert (type(odd.value), odd.value.code, odd.value.text) == (TmsFaultError, "-2147210000", "Odd.")


def test_unknown_owner_without_book_on_behalf_is_an_owner_error(lab: Lab, sink, start):
    """An owner TMS may not create (book-on-behalf off) raises TmsOwnerError."""
    lab.tms.set_knobs({"book_on_behalf": False})
    with pytest.raises(TmsOwnerError) as caught:
        sink.save(request("o-1", start, owner=NOBODY))
    assert caught.value.code == "ERR_USER_NOT_FOUND"


def test_no_owner_books_as_the_service_user(lab_config: Config, sink, start):
    """A request without an owner leaves the owner to TMS: the authenticated service user."""
    saved = sink.save(request("o-2", start))
    assert saved.owner_username.casefold() == lab_config.tms.username.casefold()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("past", "CANNOTBOOKINTHEPAST"),
        ("window", "START_TIME_AFTER_MAX_NUMBER_OF_DAYS_IN_FUTURE"),
        ("never_ending", "NEVER_ENDING_RECURRENCE_NOT_SUPPORTED"),
        ("too_many", "TOO_MANY_OCCURRENCES"),
        ("yearly", "YEARLY_RECURRENCE"),
        ("unknown_system", "SYSTEMNOTFOUND"),
        ("not_allowed", "SYSTEM_NOT_ALLOWED_IN_BOOKING"),
    ],
)
def test_each_tms_limit_is_a_limit_error(lab: Lab, sink, start, case, code):
    """Each booking TMS refuses by rule (past, window, recurrence, system) is TmsLimitError with its code."""
    now = lab.clock.now().replace(microsecond=0)
    requests_by_case = {
        "past": lambda: request("l-1", now - timedelta(hours=3)),
        "window": lambda: request("l-1", start + timedelta(days=400)),
        "never_ending": lambda: request("l-1", start, recurrence=weekly(start)),
        "too_many": lambda: request(
            "l-1", start, recurrence=replace(weekly(start), frequency=Frequency.DAILY, count=150)
        ),
        "yearly": lambda: request(
            "l-1", start, recurrence=replace(weekly(start), frequency=Frequency.YEARLY, count=2)
        ),
        "unknown_system": lambda: request("l-1", start, system_ids=(999,)),
        "not_allowed": lambda: request("l-1", start, system_ids=(77,)),
    }
    lab.tms.store.add_system(system_id=77, name="Closed", allow_bookings=False)
    with pytest.raises(TmsLimitError) as caught:
        sink.save(requests_by_case[case]())
    assert caught.value.code == code
    assert caught.value.operation == "SaveConferenceWithMode"


def test_best_effort_mode_saves_a_defective_conference(lab_config: Config, start):
    """With booking_mode best_effort_forced a conflict is saved as Defective instead of raised."""
    strict = TmsBookingSink(lab_config.tms)
    strict.save(request("b-1", start))
    with pytest.raises(TmsConflictError):
        strict.save(request("b-2", start))
    strict.close()
    forced = TmsBookingSink(replace(lab_config.tms, booking_mode=BookingMode.BEST_EFFORT_FORCED))
    saved = forced.save(request("b-2", start))
    assert saved.defective
    forced.close()


def test_long_title_is_saved_cut_with_a_mark(sink, start):
    """A 300-character title is booked as 255 characters ending in an ellipsis."""
    saved = sink.save(request("title-1", start, title="Quarterly review " * 20))
    assert len(saved.title) == 255
    assert saved.title.endswith("…")


def test_saved_conference_carries_the_dial_in_details(sink, start):
    """The save answer carries ConferenceInfoText, unescaped ConferenceInfoHtml, status and TransactionId."""
    saved = sink.save(request("info-1", start))
    assert "@video.lab.example" in saved.info_text
    assert saved.info_html.startswith("<body")
    assert saved.status == "Pending"
    assert saved.transaction_id is not None


def test_catalogue_lists_the_systems(lab_config: Config, sink):
    """GetSystems on the remote setup service lists every configured room's system."""
    ids = sink.system_ids()
    assert {room.tms_system_id for room in lab_config.rooms} <= set(ids)


def test_ntlm_authentication_books_with_basic_switched_off(lab: Lab, lab_config: Config, start):
    """With tms.auth_type ntlm the adapter books through IIS Windows authentication alone (Basic off)."""
    lab.tms.set_knobs({"auth": ["negotiate", "ntlm"]})
    basic = TmsBookingSink(lab_config.tms)
    with pytest.raises(ConfigError):
        basic.find("n-1")
    basic.close()
    ntlm = TmsBookingSink(replace(lab_config.tms, auth_type=TmsAuthType.NTLM))
    saved = ntlm.save(request("n-1", start))
    assert ntlm.find("n-1") == saved
    ntlm.close()
