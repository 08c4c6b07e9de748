"""TMS simulator transport: paths, SOAP versions, auth, WSDL, malformed input (tms-booking-api.md §2)."""

from __future__ import annotations

from tms_wire import AUTH, BOOKING_PATH, EXC, NS, REMOTE_PATH, SOAP11, SOAP12


def test_paths_match_case_insensitively_and_ignore_the_query(tms):
    """Both .asmx paths answer in any case, with a query string, and dispatch on the body element."""
    data = tms.client.envelope("IsAlive", "", service="remote", session=None)
    result = tms.client.post(data, path=REMOTE_PATH.upper().replace("ASMX", "asmx") + "?wsdl", op="IsAlive")
    assert result.status == 200
    assert result.value("rs:IsAliveResult") == "true"
    data = tms.client.envelope("GetDefaultConference", "", service="booking", session=None)
    result = tms.client.post(
        data, path="/TMS/external/Booking/BookingService.asmx?wsdl", op="GetDefaultConference"
    )
    assert result.status == 200
    assert result.body().tag == f"{{{NS}}}GetDefaultConferenceResponse"


def test_answers_in_the_request_soap_version(tms):
    """The response envelope and content type follow the request's SOAP version."""
    result = tms.client.call("GetDefaultConference")
    expected = SOAP12 if tms.client.soap == 12 else SOAP11
    assert result.root.tag == f"{{{expected}}}Envelope"
    assert result.content_type.startswith("application/soap+xml" if tms.client.soap == 12 else "text/xml")


def test_soap12_envelope_sent_as_text_xml_is_answered_as_soap12(tms12):
    """The version comes from the envelope namespace, not Content-Type (§2.2 leniency)."""
    data = tms12.client.envelope("GetDefaultConference", "", service="booking", session=None)
    result = tms12.client.post(data, content_type="text/xml; charset=utf-8")
    assert result.status == 200
    assert result.content_type.startswith("application/soap+xml")
    assert result.root.tag == f"{{{SOAP12}}}Envelope"


def test_bad_credentials_get_401(tms):
    """A wrong password or no credentials is HTTP 401, not a SOAP fault."""
    data = tms.client.envelope("GetDefaultConference", "", service="booking", session=None)
    assert tms.client.post(data, auth=(AUTH[0], "wrong")).status == 401
    assert tms.client.post(data, auth=None).status == 401
    assert tms.client.post(data, auth=(AUTH[0], "")).status == 401


def test_wsdl_is_served_on_get(tms12):
    """GET …?wsdl returns the vendor WSDL of each service."""
    http = tms12.client.http
    booking = http.get(tms12.server.base_url + BOOKING_PATH + "?wsdl", auth=AUTH, timeout=5)
    remote = http.get(tms12.server.base_url + REMOTE_PATH + "?WSDL", auth=AUTH, timeout=5)
    assert booking.status_code == 200
    assert b'name="SaveConference"' in booking.content
    assert remote.status_code == 200
    assert b'name="GetSystems"' in remote.content


def test_malformed_xml_gets_a_soap_fault(tms):
    """Non-XML input gets HTTP 500 with a SOAP fault carrying an errorcode, never a crash."""
    result = tms.client.post(b"<not-xml", op="SaveConference")
    assert result.status == 500
    assert result.fault_code is not None


def test_doctype_is_refused_with_a_fault(tms12):
    """A DTD (entity expansion) is refused as malformed input."""
    data = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body>'
        f'<IsAlive xmlns="{NS}">&a;</IsAlive></soap:Body></soap:Envelope>'
    )
    result = tms12.client.post(data)
    assert result.status == 500
    assert result.fault_code is not None


def test_unknown_operation_gets_a_fault(tms):
    """An operation neither service knows gets a fault in the exception namespace."""
    result = tms.client.call("NoSuchOperation", validate=False)
    assert result.status == 500
    assert result.root.find(f".//detail/{{{EXC}}}errorcode") is not None


def test_unknown_path_is_404(tms12):
    """Only the two .asmx endpoints exist."""
    data = tms12.client.envelope("IsAlive", "", service="remote", session=None)
    assert tms12.client.post(data, path="/tms/other.asmx").status == 404


def test_request_counts_per_operation(tms12):
    """The control API counts requests per SOAP operation."""
    tms12.client.call("GetDefaultConference")
    tms12.client.call("GetDefaultConference")
    tms12.client.call("IsAlive", service="remote")
    counts = tms12.sim.control("requests", "GET", None)
    assert counts["operations"]["GetDefaultConference"] == 2
    assert counts["operations"]["IsAlive"] == 1
    assert tms12.counter.count("tms", "GetDefaultConference") == 2
