"""The TMS adapter's codec, SOAP helpers and settings, without a server (tms-booking-api.md §5, §8, §10)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from requests.auth import HTTPBasicAuth
from requests_ntlm import HttpNtlmAuth

from xesync.adapters import tms_codec as codec
from xesync.adapters import tms_soap as soap
from xesync.adapters.tms import make_auth, retry_after, tls_verify
from xesync.config.model import Secret, TlsConfig, TmsAuthType, TmsConfig
from xesync.errors import (
    ServiceUnavailableError,
    TmsConflictError,
    TmsFaultError,
    TmsLimitError,
    TmsNotFoundError,
    TmsOwnerError,
    TmsStaleVersionError,
)
from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Owner, Recurrence
from xesync.xmlsafe import parse

NS = codec.NS
START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # Monday 09:00 Oslo


def names(el: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in el]


def find(el: etree._Element, path: str) -> str | None:
    return el.findtext("/".join(f"{{{NS}}}{p}" for p in path.split("/")))


def request(**kw) -> ConferenceRequest:
    return ConferenceRequest(
        external_key=kw.pop("external_key", "k"),
        title=kw.pop("title", "T"),
        start=kw.pop("start", START),
        end=kw.pop("end", START + timedelta(hours=1)),
        time_zone=kw.pop("time_zone", "Europe/Oslo"),
        system_ids=kw.pop("system_ids", (11, 12)),
        **kw,
    )


def test_new_single_meeting_sends_every_required_field_in_order():
    """A new booking: id -1, §8.1 order, every minOccurs=1 field, one TMS participant per room, no Version."""
    owner = Owner(username="LAB\\alice", first_name="Alice", last_name="Example", email="alice@lab.example")
    el = codec.conference_element(request(owner=owner), source_id="xesync:lab")
    assert names(el) == [
        "ConferenceId", "Title", "StartTimeUTC", "EndTimeUTC", "OwnerId", "OwnerUserName", "OwnerFirstName",
        "OwnerLastName", "OwnerEmailAddress", "ConferenceType", "Bandwidth", "PictureMode", "Encrypted",
        "DataConference", "ShowExtendOption", "ISDNRestrict", "ExternalSourceId", "ExternalPrimaryKey",
        "Participants", "ConferenceTimeZoneRules",
    ]  # fmt: skip
    assert find(el, "ConferenceId") == "-1"
    assert find(el, "StartTimeUTC") == "2027-03-01 08:00:00Z"
    assert (find(el, "OwnerId"), find(el, "OwnerUserName")) == ("-1", "LAB\\alice")
    assert (find(el, "ExternalSourceId"), find(el, "ExternalPrimaryKey")) == ("xesync:lab", "k")
    parts = el.findall(f"{{{NS}}}Participants/{{{NS}}}Participant")
    assert [(find(p, "ParticipantId"), find(p, "ParticipantCallType")) for p in parts] == [
        ("11", "TMS"),
        ("12", "TMS"),
    ]
    assert find(el, "ConferenceTimeZoneRules/TimeZoneRule/Id") == "W. Europe Standard Time"


def test_update_sends_the_known_id_and_version_and_no_owner_means_none_sent():
    """An update carries ConferenceId and Version last; without an owner only OwnerId -1 is sent."""
    el = codec.conference_element(request(conference_id=42, version=7), source_id="s")
    assert (find(el, "ConferenceId"), names(el)[-1], find(el, "Version")) == ("42", "Version", "7")
    assert "OwnerUserName" not in names(el)
    assert find(el, "OwnerId") == "-1"


def test_long_title_is_cut_to_255_with_a_visible_mark():
    """A 300-character title goes out as 255 characters ending in an ellipsis (L7)."""
    el = codec.conference_element(request(title="x" * 300), source_id="s")
    title = find(el, "Title")
    assert title is not None
    assert len(title) == 255
    assert title.endswith("…")
    assert codec.cut_title("short") == "short"


def test_weekly_series_pattern_and_exceptions():
    """A weekly series: §8.3 order, EndByInstances, a DELETE and a MODIFY exception with its new times."""
    rec = Recurrence(frequency=Frequency.WEEKLY, weekdays=(1, 3), start_date=date(2027, 3, 1), count=6)
    moved = OccurrenceChange(
        recurrence_id=START + timedelta(weeks=1), start=START + timedelta(weeks=1, hours=2),
        end=START + timedelta(weeks=1, hours=3),
    )  # fmt: skip
    el = codec.conference_element(
        request(recurrence=rec, exceptions=(OccurrenceChange(recurrence_id=START), moved)), source_id="s"
    )
    pattern = el.find(f"{{{NS}}}RecurrencePattern")
    assert names(el).index("RecurrencePattern") == names(el).index("EndTimeUTC") + 1
    assert names(pattern) == [
        "FrequencyType", "Interval", "DaysOfWeek", "FirstDayOfWeek", "BySetPosition", "PatternEndType",
        "PatternInstances", "Exceptions",
    ]  # fmt: skip
    assert [d.text for d in pattern.find(f"{{{NS}}}DaysOfWeek")] == ["Monday", "Wednesday"]
    assert (find(pattern, "PatternEndType"), find(pattern, "PatternInstances")) == ("EndByInstances", "6")
    deleted, modified = pattern.findall(f"{{{NS}}}Exceptions/{{{NS}}}RecurrenceException")
    assert (find(deleted, "ExceptionType"), find(deleted, "RecurrenceIdUTC")) == (
        "DELETE",
        "2027-03-01 08:00:00Z",
    )
    assert deleted.find(f"{{{NS}}}ModifiedData") is None
    assert find(modified, "ExceptionType") == "MODIFY"
    assert find(modified, "ModifiedData/StartTimeUTC") == "2027-03-08 10:00:00Z"
    assert find(modified, "ModifiedData/EndTimeUTC") == "2027-03-08 11:00:00Z"


def test_days_of_week_are_sent_as_utc_days():
    """A Monday 00:30 Oslo meeting is Sunday 23:30 UTC, so the pattern says Sunday (API >= 8, §4)."""
    start = datetime(2027, 3, 1, 0, 30, tzinfo=UTC) - timedelta(hours=1)
    rec = Recurrence(frequency=Frequency.WEEKLY, weekdays=(1,), start_date=date(2027, 3, 1), count=3)
    el = codec.conference_element(
        request(start=start, end=start + timedelta(hours=1), recurrence=rec), source_id="s"
    )
    assert find(el, "RecurrencePattern/DaysOfWeek/DayOfWeek") == "Sunday"


def test_occurrence_limit_wins_and_end_date_is_the_end_of_the_local_day():
    """occurrence_limit becomes PatternInstances; an end date is sent as 23:59:59 local time in UTC."""
    rec = Recurrence(frequency=Frequency.DAILY, start_date=date(2027, 3, 1), end_date=date(2027, 6, 30))
    limited = codec.conference_element(request(recurrence=rec, occurrence_limit=20), source_id="s")
    assert (
        find(limited, "RecurrencePattern/PatternEndType"),
        find(limited, "RecurrencePattern/PatternInstances"),
    ) == (
        "EndByInstances",
        "20",
    )
    dated = codec.conference_element(request(recurrence=rec), source_id="s")
    assert find(dated, "RecurrencePattern/PatternEndType") == "EndByDate"
    assert find(dated, "RecurrencePattern/PatternEndDateUTC") == "2027-06-30 21:59:59Z"
    never = replace(rec, end_date=None)
    assert find(
        codec.conference_element(request(recurrence=never), source_id="s"), "RecurrencePattern/PatternEndType"
    ) == ("EndNever")


def test_relative_monthly_sets_the_position():
    """The last Friday of each month is BySetPosition -1 with Friday."""
    rec = Recurrence(
        frequency=Frequency.MONTHLY, weekdays=(5,), week_of_month=-1, start_date=date(2027, 3, 26), count=5
    )
    start = datetime(2027, 3, 26, 8, tzinfo=UTC)
    el = codec.conference_element(
        request(start=start, end=start + timedelta(hours=1), recurrence=rec), source_id="s"
    )
    assert find(el, "RecurrencePattern/BySetPosition") == "-1"
    assert find(el, "RecurrencePattern/DaysOfWeek/DayOfWeek") == "Friday"


CONFERENCE = f"""<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body>
<SaveConferenceWithModeResponse xmlns="{NS}"><SaveConferenceWithModeResult><Conference>
<ConferenceId>2391584</ConferenceId><Title>Weekly &amp; sync</Title>
<StartTimeUTC>2025-03-04 09:00:00Z</StartTimeUTC><EndTimeUTC>2025-03-04T10:00:00Z</EndTimeUTC>
<OwnerId>16422</OwnerId><OwnerUserName>CORP\\jdoe</OwnerUserName>
<ConferenceInfoText>Dial in: 990442@video.corp.example</ConferenceInfoText>
<ConferenceInfoHtml>&lt;body&gt;&lt;p&gt;A &amp;amp; B&lt;/p&gt;&lt;/body&gt;</ConferenceInfoHtml>
<ExternalPrimaryKey>xs1-abc</ExternalPrimaryKey>
<Participants><Participant><ParticipantId>42</ParticipantId>
<ParticipantCallType>TMS</ParticipantCallType></Participant>
<Participant><ParticipantId>1</ParticipantId><NameOrNumber>x</NameOrNumber>
<ParticipantCallType>SIP -&gt;</ParticipantCallType></Participant>
</Participants><ConferenceState><Status>Defective</Status></ConferenceState><Version>49434708</Version>
<TransactionId>77</TransactionId></Conference></SaveConferenceWithModeResult></SaveConferenceWithModeResponse>
</Body></Envelope>""".encode()


def test_parse_conference_reads_every_field():
    """The §12.2 answer gives id, version, key, times (both forms), owner, rooms, state, info, transaction."""
    answer = soap.read_answer(CONFERENCE)
    assert answer is not None
    assert answer.body is not None
    result = codec.child(answer.body, "SaveConferenceWithModeResult")
    saved = codec.parse_conference(codec.conference_of(result))
    assert (saved.conference_id, saved.version, saved.external_key) == (2391584, 49434708, "xs1-abc")
    assert saved.title == "Weekly & sync"
    assert (saved.start, saved.end) == (
        datetime(2025, 3, 4, 9, tzinfo=UTC),
        datetime(2025, 3, 4, 10, tzinfo=UTC),
    )
    assert (saved.owner_id, saved.owner_username) == (16422, "CORP\\jdoe")
    assert saved.system_ids == (42,)
    assert saved.defective
    assert saved.info_text == "Dial in: 990442@video.corp.example"
    assert saved.info_html == "<body><p>A &amp; B</p></body>"
    assert saved.transaction_id == 77


def test_unwrapped_result_and_double_escaped_html():
    """A legacy result holds the Conference children directly; HTML escaped twice is unescaped once more."""
    xml = (
        f'<GetConferenceByIdResult xmlns="{NS}"><ConferenceId>5</ConferenceId>'
        "<StartTimeUTC>2025-03-04 09:00:00Z</StartTimeUTC><EndTimeUTC>2025-03-04 10:00:00Z</EndTimeUTC>"
        "<ConferenceInfoHtml>&amp;lt;b&amp;gt;x&amp;lt;/b&amp;gt;</ConferenceInfoHtml></GetConferenceByIdResult>"
    )
    saved = codec.parse_conference(codec.conference_of(parse(xml.encode())))
    assert (saved.conference_id, saved.version, saved.status, saved.info_html) == (
        5,
        0,
        "Pending",
        "<b>x</b>",
    )


def test_parse_refuses_a_conference_without_times():
    """A Conference without StartTimeUTC is an error, not a conference at the epoch."""
    with pytest.raises(ValueError, match="StartTimeUTC"):
        codec.parse_conference(
            parse(f'<Conference xmlns="{NS}"><ConferenceId>5</ConferenceId></Conference>'.encode())
        )


FAULT = b"""<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">
<soap:Body><soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code>
<soap:Reason><soap:Text xml:lang="en">The client session id is expired.</soap:Text></soap:Reason>
<detail><errorcode xmlns="http://tandberg.net/2004/02/tms/external/exception/">-2147218253</errorcode>
<clientsessionid xmlns="http://tandberg.net/2004/02/tms/external/exception/">d5e27283</clientsessionid></detail>
</soap:Fault></soap:Body></soap:Envelope>"""


def test_fault_parsing_reads_code_session_and_text():
    """The §10.1 fault gives its errorcode, the suggested session and the reason text."""
    answer = soap.read_answer(FAULT)
    assert answer is not None
    assert answer.fault == soap.Fault(
        code=-2147218253, text="The client session id is expired.", session="d5e27283"
    )
    assert answer.fault.is_session


def test_soap11_fault_and_non_soap_bodies():
    """A SOAP 1.1 faultstring is read; an HTML error page or garbage is no SOAP answer at all."""
    soap11 = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Client</faultcode><faultstring>Bad</faultstring><detail>"
        b'<errorcode xmlns="http://tandberg.net/2004/02/tms/external/exception/">-2147218300</errorcode>'
        b"</detail></s:Fault></s:Body></s:Envelope>"
    )
    answer = soap.read_answer(soap11)
    assert answer is not None
    assert answer.fault == soap.Fault(code=-2147218300, text="Bad")
    assert soap.read_answer(b"<html><body>Server Error</body></html>") is None
    assert soap.read_answer(b"Service Unavailable") is None


@pytest.mark.parametrize(
    ("code", "kind", "name"),
    [
        (-2147218300, TmsConflictError, "SYSTEM_ALREADY_BOOKED"),
        (-2147218255, TmsOwnerError, "ERR_USER_NOT_FOUND"),
        (-2147218269, TmsLimitError, "CANNOTBOOKINTHEPAST"),
        (-2147218265, TmsLimitError, "START_TIME_AFTER_MAX_NUMBER_OF_DAYS_IN_FUTURE"),
        (-2147218264, TmsLimitError, "NEVER_ENDING_RECURRENCE_NOT_SUPPORTED"),
        (-2147218263, TmsLimitError, "TOO_MANY_OCCURRENCES"),
        (-2147218261, TmsLimitError, "YEARLY_RECURRENCE"),
        (-2147218301, TmsLimitError, "SYSTEMNOTFOUND"),
        (-2147218262, TmsLimitError, "SYSTEM_NOT_ALLOWED_IN_BOOKING"),
        (-2147218302, TmsNotFoundError, "MEETINGNOTFOUND"),
        (-2147218271, TmsNotFoundError, "MEETINGISDELETED"),
        (-2147218252, TmsNotFoundError, "INSTANCE_NOT_FOUND_WITHIN_PATTERN"),
        (-2147218260, TmsStaleVersionError, "STALE_VERSION"),
        (-2147219503, TmsFaultError, "LICENSE"),
        (-1234, TmsFaultError, "-1234"),
        (None, TmsFaultError, "unknown"),
    ],
)
def test_fault_codes_map_to_our_errors(code, kind, name):
    """Each TMS error code becomes exactly the error type of the code table, carrying its name."""
    error = soap.fault_error(soap.Fault(code=code, text="why"), "SaveConferenceWithMode")
    assert type(error) is kind
    assert isinstance(error, TmsFaultError)
    assert (error.code, error.text, error.operation) == (name, "why", "SaveConferenceWithMode")


def test_database_down_is_transient():
    """DATABASE_DOWN is ServiceUnavailableError for tms: the same call may work later."""
    error = soap.fault_error(soap.Fault(code=-2147219500, text="db"), "SaveConferenceWithMode")
    assert isinstance(error, ServiceUnavailableError)
    assert error.service == "tms"


def tms_config(**kw) -> TmsConfig:
    return TmsConfig(url="https://tms/x", remote_setup_url="https://tms/y", username="CORP\\svc",
                     password=Secret("pw-secret-value"), **kw)  # fmt: skip


def test_auth_follows_auth_type():
    """auth_type ntlm gives requests-ntlm's HttpNtlmAuth, basic gives HTTPBasicAuth, with the service user."""
    ntlm = make_auth(tms_config(auth_type=TmsAuthType.NTLM))
    assert isinstance(ntlm, HttpNtlmAuth)
    assert (ntlm.username, ntlm.password) == ("CORP\\svc", "pw-secret-value")  # DOMAIN\\user, as NTLM wants
    basic = make_auth(tms_config(auth_type=TmsAuthType.BASIC))
    assert isinstance(basic, HTTPBasicAuth)
    assert (basic.username, basic.password) == ("CORP\\svc", "pw-secret-value")


def test_tls_verify_from_config(tmp_path: Path):
    """TLS verification uses the CA file when given, the system CAs by default, and can be turned off."""
    ca = tmp_path / "ca.pem"
    assert tls_verify(TlsConfig()) is True
    assert tls_verify(TlsConfig(ca_file=ca)) == str(ca)
    assert tls_verify(TlsConfig(verify=False, ca_file=ca)) is False


def test_retry_after_reads_seconds_and_dates():
    """Retry-After as delta-seconds or an HTTP date becomes seconds; junk or absence is None."""
    now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after("30") == 30.0
    assert retry_after("Fri, 01 Jan 2027 12:00:45 GMT", now) == 45.0
    assert retry_after("soon") is None
    assert retry_after(None) is None
