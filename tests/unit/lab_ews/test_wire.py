"""Raw-wire checks of the EWS simulator: response-side traps never happen, bad input gets SOAP faults."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest
import requests
from lxml import etree

from xesync.lab.clock import LabClock
from xesync.lab.ews import EwsSimulator
from xesync.lab.faults import FaultBook, RequestCounter
from xesync.lab.fixture import FixtureError, load_fixture
from xesync.lab.http import LabHTTPServer, NotLoopbackError

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS = {"s": S, "m": M, "t": T}
SVC = ("svc-xesync@lab.example", "lab-ews-secret")
ROOM = "room-oslo@lab.example"


@pytest.fixture(scope="module")
def server():
    """An EWS simulator on loopback with fast heartbeats and a frozen clock."""
    base = load_fixture()
    fixture = dataclasses.replace(
        base, ews={**base.ews, "streaming_keepalive_s": 0.1, "streaming_minute_s": 0.6}
    )
    clock = LabClock(datetime(2026, 3, 1, 8, tzinfo=UTC), frozen=True)
    sim = EwsSimulator(fixture, clock)
    http = LabHTTPServer(sim, FaultBook(), RequestCounter())
    http.start()
    yield sim, f"{http.base_url}/EWS/Exchange.asmx"
    http.stop()


def envelope(body, *, impersonate=ROOM):
    """A SOAP request like exchangelib's, impersonating ``impersonate``."""
    header = '<t:RequestServerVersion Version="Exchange2016"/>'
    if impersonate:
        header += (
            "<t:ExchangeImpersonation><t:ConnectingSID>"
            f"<t:PrimarySmtpAddress>{impersonate}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}" xmlns:m="{M}" xmlns:t="{T}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def post(url, data, auth=SVC, **kwargs):
    """POST raw bytes as exchangelib does (no SOAPAction)."""
    return requests.post(
        url, data=data, auth=auth, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10, **kwargs
    )


def xml(response):
    """Parse a response body (test side)."""
    return etree.fromstring(response.content)


def fault_code(response):
    """The e:ResponseCode of a SOAP fault."""
    return xml(response).findtext(
        ".//{http://schemas.microsoft.com/exchange/services/2006/errors}ResponseCode"
    )


CAL = (
    '<t:DistinguishedFolderId Id="calendar"><t:Mailbox>'
    f"<t:EmailAddress>{ROOM}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"
)


def seed(sim):
    """Put a single meeting and a weekly series into the room through the control API."""
    sim.reset()
    sim.control(
        "meetings",
        "POST",
        {
            "organizer": "alice@lab.example",
            "subject": "One",
            "body": "b",
            "start": "2026-03-02T09:00:00.250Z",
            "end": "2026-03-02T10:00:00Z",
            "rooms": [ROOM],
        },
    )
    sim.control(
        "meetings",
        "POST",
        {
            "organizer": "bob@lab.example",
            "subject": "Series",
            "rooms": [ROOM],
            "start": "2026-03-03T12:00:00Z",
            "end": "2026-03-03T12:30:00Z",
            "recurrence": {"pattern": "weekly", "count": 3},
        },
    )


ALL_FIELDS = "".join(
    f'<t:FieldURI FieldURI="{f}"/>'
    for f in (
        "item:Body",
        "item:UniqueBody",
        "item:TextBody",
        "item:DateTimeCreated",
        "item:LastModifiedTime",
        "calendar:Start",
        "calendar:End",
        "calendar:OriginalStart",
        "calendar:AppointmentReplyTime",
        "calendar:FirstOccurrence",
        "calendar:LastOccurrence",
        "calendar:Recurrence",
        "calendar:IsRecurring",
        "calendar:IsCancelled",
        "calendar:RequiredAttendees",
        "calendar:Resources",
        "calendar:DateTimeStamp",
    )
)


def test_no_datetime_ever_carries_fractional_seconds(server):
    """Trap 1: every datetime is YYYY-MM-DDTHH:MM:SSZ, even when the request had a fraction."""
    sim, url = server
    seed(sim)
    view = (
        f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        f"<t:AdditionalProperties>{ALL_FIELDS}</t:AdditionalProperties></m:ItemShape>"
        f'<m:CalendarView StartDate="2026-03-01T00:00:00.000Z" EndDate="2026-04-01T00:00:00Z"/>'
        f"<m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>"
    )
    sync = (
        f"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{ALL_FIELDS}"
        f"</t:AdditionalProperties></m:ItemShape><m:SyncFolderId>{CAL}</m:SyncFolderId>"
        "<m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"
    )
    for body in (view, sync):
        text = post(url, envelope(body)).text
        stamps = re.findall(r">(\d{4}-\d\d-\d\dT[^<]*)<", text)
        assert stamps
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps), stamps


def test_every_body_carries_a_body_type(server):
    """Trap 2: Body, UniqueBody and TextBody always have BodyType."""
    sim, url = server
    seed(sim)
    sync = (
        f"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{ALL_FIELDS}"
        f"</t:AdditionalProperties></m:ItemShape><m:SyncFolderId>{CAL}</m:SyncFolderId>"
        "<m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"
    )
    root = xml(post(url, envelope(sync)))
    bodies = [b for tag in ("Body", "UniqueBody", "TextBody") for b in root.iter(f"{{{T}}}{tag}")]
    assert len(bodies) >= 6
    assert all(b.get("BodyType") in {"Text", "HTML"} for b in bodies)


@pytest.mark.parametrize(
    ("state", "folder"),
    [
        ("garbage", CAL),
        ("", '<t:FolderId Id="AQMkAunknown"/>'),
        ("", CAL.replace(ROOM, "nobody@lab.example")),
    ],
)
def test_sync_errors_keep_sync_state_and_includes_last_item(server, state, folder):
    """Trap 3: every SyncFolderItems error still carries SyncState and IncludesLastItemInRange."""
    _sim, url = server
    body = (
        f"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
        f"<m:SyncFolderId>{folder}</m:SyncFolderId>{f'<m:SyncState>{state}</m:SyncState>' if state else ''}"
        "<m:MaxChangesReturned>10</m:MaxChangesReturned></m:SyncFolderItems>"
    )
    msg = xml(post(url, envelope(body))).find(".//m:SyncFolderItemsResponseMessage", NS)
    assert msg.get("ResponseClass") == "Error"
    assert msg.find("m:SyncState", NS) is not None
    assert msg.findtext("m:IncludesLastItemInRange", namespaces=NS) == "true"


def test_calendar_view_says_includes_last_item_true_unless_truncated(server):
    """Trap 4: a CalendarView answers true; only MaxEntriesReturned truncation gives false."""
    sim, url = server
    seed(sim)

    def view(extra=""):
        body = (
            f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
            f'<m:CalendarView StartDate="2026-03-01T00:00:00Z" EndDate="2026-04-01T00:00:00Z"{extra}/>'
            f"<m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>"
        )
        return xml(post(url, envelope(body))).find(".//m:RootFolder", NS)

    full = view()
    assert full.get("IncludesLastItemInRange") == "true"
    assert full.get("TotalItemsInView") == "4"
    cut = view(' MaxEntriesReturned="2"')
    assert cut.get("IncludesLastItemInRange") == "false"
    assert len(cut.find("t:Items", NS)) == 2


def test_streaming_envelopes_are_framed_for_exchangelib(server):
    """Trap 5: envelopes start '<s:Envelope ' (space), idle ones are heartbeats, the last says Closed."""
    sim, url = server
    sim.reset()
    sub = (
        f"<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds>{CAL}</t:FolderIds><t:EventTypes>"
        "<t:EventType>CreatedEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>"
    )
    sid = xml(post(url, envelope(sub))).findtext(".//m:SubscriptionId", namespaces=NS)
    body = (
        f"<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{sid}</t:SubscriptionId>"
        "</m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>"
    )
    response = post(url, envelope(body), stream=True)
    assert response.headers["Transfer-Encoding"] == "chunked"
    raw = response.raw.read()
    docs = re.split(rb"(?=<s:Envelope)", raw)
    docs = [d for d in docs if d.strip()]
    assert len(docs) >= 3  # heartbeats, then Closed
    assert all(d.startswith(b"<s:Envelope ") for d in docs)
    statuses = [etree.fromstring(d).findtext(".//m:ConnectionStatus", namespaces=NS) for d in docs]
    assert statuses[-1] == "Closed"
    assert set(statuses[:-1]) == {"OK"}


def test_server_version_info_has_a_v_version_and_the_build(server):
    """Trap 13: ServerVersionInfo carries the four build numbers and a Version starting with V."""
    _sim, url = server
    root = xml(
        post(
            url,
            envelope(
                f"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
                f"<m:FolderIds>{CAL}</m:FolderIds></m:GetFolder>"
            ),
        )
    )
    info = root.find("s:Header/t:ServerVersionInfo", NS)
    assert info.get("Version").startswith("V")
    assert [
        info.get(k) for k in ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber")
    ] == ["15", "1", "2507", "6"]


def test_a_version_string_without_v_is_refused():
    """The knob cannot make the simulator produce trap 13."""
    base = load_fixture()
    fixture = dataclasses.replace(base, ews={**base.ews, "version_string": "Exchange2016"})
    with pytest.raises(FixtureError, match="trap 13"):
        EwsSimulator(fixture, LabClock())


@pytest.mark.parametrize(
    "data",
    [
        b"<not-xml",
        b"",
        b'<?xml version="1.0"?><foo/>',
        envelope("<m:NoSuchOperation/>"),
        envelope(""),
        envelope(
            '<m:FindItem Traversal="Shallow"><m:CalendarView StartDate="yesterday" EndDate="x"/>'
            f"<m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>"
        ),
    ],
)
def test_malformed_soap_gets_a_schema_validation_fault(server, data):
    """Malformed or unknown SOAP gets a 500 ErrorSchemaValidation fault, not ErrorInvalidRequest (trap 11)."""
    _, url = server
    response = post(url, data)
    assert response.status_code == 500
    assert fault_code(response) == "ErrorSchemaValidation"
    assert "ErrorInvalidRequest" not in response.text


def test_external_entities_are_never_resolved(server, tmp_path):
    """A DOCTYPE with an external entity is refused with a fault; the file's content never appears."""
    _, url = server
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = (
        f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        f'<s:Envelope xmlns:s="{S}" xmlns:m="{M}"><s:Body><m:ConvertId>&xxe;</m:ConvertId>'
        "</s:Body></s:Envelope>"
    )
    response = post(url, doc.encode())
    assert response.status_code == 500
    assert fault_code(response) == "ErrorSchemaValidation"
    assert "TOP-SECRET" not in response.text


def test_unserved_operation_is_a_fault_not_a_404(server):
    """A real EWS operation the lab does not implement gets ErrorInvalidOperation."""
    _, url = server
    response = post(url, envelope("<m:ResolveNames/>"))
    assert response.status_code == 500
    assert fault_code(response) == "ErrorInvalidOperation"


def test_unauthenticated_request_gets_a_windows_and_basic_challenge(server):
    """No credentials: 401 offering Negotiate, NTLM and Basic as IIS does, never a 200 (ews.md §2.8.1)."""
    _, url = server
    response = post(url, envelope("<m:ConvertId/>"), auth=None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Negotiate, NTLM, Basic realm="lab.example"'


def test_convert_id_probe_answers_200_with_version_header(server):
    """The ConvertId version probe answers 200, an error message and ServerVersionInfo."""
    _, url = server
    probe = (
        '<m:ConvertId DestinationFormat="EntryId"><m:SourceIds>'
        '<t:AlternateId Id="DUMMY" Format="EwsId" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId>'
    )
    response = post(url, envelope(probe, impersonate=None))
    assert response.status_code == 200
    root = xml(response)
    assert root.find("s:Header/t:ServerVersionInfo", NS) is not None
    assert root.findtext(".//m:ResponseCode", namespaces=NS) == "ErrorInvalidSmtpAddress"


def test_booleans_are_written_true_false_and_read_as_zero_one(server):
    """Responses say true/false; requests with 0/1 are understood (trap 31)."""
    sim, url = server
    sim.reset()
    create = (
        '<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem><t:Subject>B</t:Subject>'
        "<t:Start>2026-03-02T09:00:00Z</t:Start><t:End>2026-03-02T10:00:00Z</t:End>"
        "<t:IsAllDayEvent>1</t:IsAllDayEvent></t:CalendarItem></m:Items></m:CreateItem>"
    )
    assert (
        post(url, envelope(create, impersonate=None), auth=("alice@lab.example", "alice-lab-pw")).status_code
        == 200
    )
    (item,) = sim.control("mailbox/alice@lab.example/calendar", "GET", None)["items"]
    view = (
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        "<t:AdditionalProperties>"
        '<t:FieldURI FieldURI="calendar:IsAllDayEvent"/><t:FieldURI FieldURI="calendar:IsCancelled"/>'
        '</t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" '
        'BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/>'
        "</m:ParentFolderIds>"
        "</m:FindItem>"
    )
    text = post(url, envelope(view, impersonate=None), auth=("alice@lab.example", "alice-lab-pw")).text
    assert "<t:IsAllDayEvent>true</t:IsAllDayEvent>" in text
    assert "<t:IsCancelled>false</t:IsCancelled>" in text
    assert item["subject"] == "B"


def test_non_loopback_binds_are_refused():
    """The simulator cannot be exposed beyond loopback."""
    sim = EwsSimulator(load_fixture(), LabClock())
    with pytest.raises(NotLoopbackError):
        LabHTTPServer(sim, FaultBook(), RequestCounter(), host="0.0.0.0")  # noqa: S104 - the refusal is the test


def test_oauth_token_endpoint_refuses_a_wrong_secret(server):
    """Without [ews.oauth] the token endpoint refuses; bad client secrets never get a token."""
    _, url = server
    token_url = url.replace("/EWS/Exchange.asmx", "/lab-tenant/oauth2/v2.0/token")
    response = requests.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        timeout=10,
    )
    assert response.status_code in {401, 404}
    assert "access_token" not in response.text
