"""The ClientSession handshake, headers and injected faults (tms-booking-api.md §3, §10)."""

from __future__ import annotations

from tms_wire import EXC, NS, RS, SOAP11, SOAP12, Served, conference_xml

BLANK = -2147218247
EXPIRED = -2147218253


def test_blank_session_faults_with_a_suggested_id(tms):
    """A save without a session is HTTP 500, code -2147218247, and detail/clientsessionid holds a new id."""
    result = tms.client.call("SaveConference", conference_xml(), session="", retry_session=False)
    assert result.status == 500
    assert result.fault_code == BLANK
    assert result.fault_session
    detail = result.root.find(".//detail")
    assert detail is not None
    assert detail.find(f"{{{EXC}}}errorcode") is not None


def test_fault_has_the_observed_soap12_shape(tms12):
    """SOAP 1.2 faults carry Code/Value soap:Sender, Reason/Text, Node, and the typed content."""
    result = tms12.client.call("SaveConference", conference_xml(), session="0", retry_session=False)
    assert result.content_type.startswith("application/soap+xml")
    fault = result.root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault.find(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value").text == "soap:Sender"
    assert "expired" in fault.find(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text").text
    assert fault.find(f"{{{SOAP12}}}Node").text.endswith("bookingservice.asmx")
    assert result.fault_code == EXPIRED


def test_unknown_session_faults_expired_and_the_suggested_id_works(tms):
    """A junk id gets -2147218253 with a suggested id; retrying with that id succeeds once."""
    first = tms.client.call("SaveConference", conference_xml(), session="string", retry_session=False)
    assert first.fault_code == EXPIRED
    retry = tms.client.call("SaveConference", conference_xml(), session=first.fault_session)
    assert retry.status == 200
    assert int(retry.value("tns:SaveConferenceResult/tns:ConferenceId")) > 0


def test_session_expires_after_47_plus_17_minutes_on_the_lab_clock(tms12):
    """An id is valid until 64 minutes after issue, then faults as expired with a new id."""
    client = tms12.client
    first = client.call("SaveConference", conference_xml(key="a"))
    assert first.status == 200
    sid = client.session_id
    tms12.clock.advance(63 * 60)
    ok = client.call(
        "GetTransactionsSince", "<CurrentTransactionId>0</CurrentTransactionId>", retry_session=False
    )
    assert ok.status == 200
    tms12.clock.advance(61)
    late = client.call(
        "GetTransactionsSince", "<CurrentTransactionId>0</CurrentTransactionId>", retry_session=False
    )
    assert late.fault_code == EXPIRED
    assert late.fault_session != sid


def test_same_id_is_suggested_to_faulting_requests_for_a_while(tms12):
    """As captured, TMS suggests the same id to several faulting requests, and a new one later."""
    client = tms12.client
    one = client.call("SaveConference", conference_xml(), session="", retry_session=False).fault_session
    two = client.call("SaveConference", conference_xml(), session="x", retry_session=False).fault_session
    assert one == two
    tms12.clock.advance(35 * 60)
    three = client.call("SaveConference", conference_xml(), session="y", retry_session=False).fault_session
    assert three != one


def test_version_header_echoed_with_the_session_on_every_response(tms):
    """ExternalAPIVersionSoapHeader comes back with the client's values and the current session."""
    client = tms.client
    client.call("SaveConference", conference_xml())
    result = client.call("GetConferenceById", "<ConferenceId>1001</ConferenceId>")
    header = result.header("ExternalAPIVersionSoapHeader")
    assert header.find(f"{{{NS}}}ClientVersionIn").text == "22"
    assert header.find(f"{{{NS}}}ClientIdentifierIn").text == "contract-tests"
    assert header.find(f"{{{NS}}}ClientSession").text == client.session_id
    remote = client.call("IsAlive", service="remote")
    assert remote.header("ExternalAPIVersionSoapHeader", RS) is not None


def test_get_default_conference_adds_version_soap_header_22(tms):
    """GetDefaultConference needs no session and also answers VersionSoapHeader/ConfAPIVersion 22."""
    result = tms.client.call("GetDefaultConference", session="junk", retry_session=False)
    assert result.status == 200
    assert result.header("VersionSoapHeader").find(f"{{{NS}}}ConfAPIVersion").text == "22"
    assert result.header("ExternalAPIVersionSoapHeader") is not None
    conf = result.find("tns:GetDefaultConferenceResult")
    assert conf.find(f"{{{NS}}}ConferenceId").text == "-1"
    assert conf.find(f"{{{NS}}}OwnerUserName").text == "LAB\\svc-tms"
    assert conf.find(f"{{{NS}}}StartTimeUTC").text == "2026-12-01 08:00:00Z"
    assert conf.find(f"{{{NS}}}EndTimeUTC").text == "2026-12-01 09:00:00Z"
    assert len(conf.find(f"{{{NS}}}Password").text) == 4
    assert conf.find(f"{{{NS}}}Version").text == "0"


def test_injected_session_expiry_hits_the_next_call_with_a_new_id(tms12):
    """Fault kind session_expired makes the next call fault -2147218253; the retry with the new id works."""
    client = tms12.client
    client.call("SaveConference", conference_xml(key="a"))
    old = client.session_id
    tms12.inject(kind="session_expired", count=1)
    hit = client.call("GetConferenceById", "<ConferenceId>1001</ConferenceId>", retry_session=False)
    assert hit.fault_code == EXPIRED
    assert hit.fault_session != old
    again = client.call("GetConferenceById", "<ConferenceId>1001</ConferenceId>")
    assert again.status == 200


def test_injected_database_down_licence_and_custom_faults(tms):
    """database_down, license and soap_fault answer TMS faults with their codes."""
    tms.inject(kind="database_down", count=1)
    assert tms.client.call("GetDefaultConference").fault_code == -2147219500
    tms.inject(kind="license", count=1)
    assert tms.client.call("GetDefaultConference").fault_code == -2147219503
    tms.inject(kind="soap_fault", errorcode=-2147218266, message="no access", count=1)
    result = tms.client.call("GetDefaultConference")
    assert result.fault_code == -2147218266
    assert "no access" in result.text
    assert tms.client.call("GetDefaultConference").status == 200


def test_injected_non_soap_500_and_http_status(tms12):
    """non_soap_500 answers an HTML error page; the core's http_status answers the bare status."""
    tms12.inject(kind="non_soap_500", count=1)
    page = tms12.client.call("GetDefaultConference")
    assert page.status == 500
    assert page.root is None
    assert page.content_type.startswith("text/html")
    tms12.inject(kind="http_status", status=503, retry_after_s=3, count=1)
    assert tms12.client.call("GetDefaultConference").status == 503


def test_sessions_can_be_expired_through_the_control_api(tms12):
    """POST /lab/tms/sessions/expire forgets every session, so the next save re-handshakes."""
    client = tms12.client
    client.call("SaveConference", conference_xml(key="a"))
    tms12.sim.control("sessions/expire", "POST", None)
    result = client.call("DeleteConferenceById", "<ConferenceId>1001</ConferenceId>", retry_session=False)
    assert result.fault_code == EXPIRED


def test_soap11_fault_uses_the_asmx_shape():
    """SOAP 1.1 faults (shape [unconfirmed]) carry faultcode soap:Client, faultstring and the same detail."""
    served = Served(11)
    try:
        result = served.client.call("SaveConference", conference_xml(), session="", retry_session=False)
    finally:
        served.stop()
    assert result.content_type.startswith("text/xml")
    fault = result.root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault.find("faultcode").text == "soap:Client"
    assert "blank" in fault.find("faultstring").text
    assert fault.find(f"detail/{{{EXC}}}errorcode").text == str(BLANK)
