"""TMS simulator: the shapes real TMS 15 answers have and clients rely on (tms-booking-api.md §6, §8, §10).

Each test speaks raw SOAP; responses that the vendor WSDL describes are checked against its schema.
"""

from __future__ import annotations

import requests
from tms_wire import AUTH, BOOKING_PATH, NS, RS, SCHEMAS, SOAP12, conference_xml

INVALID_REQUEST = -2147218257


def booked(client, body: str, *, version: int = 22):
    """Save ``body`` (a Conference) in Strict mode and read it back by id at ``version``."""
    saved = client.call("SaveConferenceWithMode", body + "<BookingMode>Strict</BookingMode>", validate=False)
    assert saved.status == 200, saved.text
    conf_id = saved.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId")
    got = client.call("GetConferenceById", f"<ConferenceId>{conf_id}</ConferenceId>", version=version)
    assert got.status == 200, got.text
    return got.find("tns:GetConferenceByIdResult")


def names(element) -> list[str]:
    """The local names of an element's children, in order."""
    return [child.tag.split("}")[1] for child in element]


def test_default_conference_has_an_empty_email_to(tms):
    """GetDefaultConference carries an empty EmailTo between ISDNRestrict and Participants."""
    result = tms.client.call("GetDefaultConference").find("tns:GetDefaultConferenceResult")
    order = names(result)
    assert order.index("ISDNRestrict") < order.index("EmailTo") < order.index("Participants")
    email_to = result.find(f"{{{NS}}}EmailTo")
    assert email_to.text is None
    assert "<EmailTo />" in tms.client.call("GetDefaultConference").text
    assert "<Participants />" in tms.client.call("GetDefaultConference").text


def test_default_conference_of_an_old_client_has_no_email_to(tms12):
    """A client at API 10 gets no TMS 15 element, EmailTo included."""
    result = tms12.client.call("GetDefaultConference", version=10).find("tns:GetDefaultConferenceResult")
    assert "EmailTo" not in names(result)


def test_conference_by_id_has_bandwidths_and_the_server_time_zone_rule(tms):
    """A save without bandwidths or rules reads back with Default bandwidths and the server's whole rule."""
    conf = booked(tms.client, conference_xml(key="shape-1"))
    order = names(conf)
    assert order.index("Participants") < order.index("ISDNBandwidth") < order.index("IPBandwidth")
    assert (
        order.index("IPBandwidth")
        < order.index("ConferenceLanguage")
        < order.index("ConferenceTimeZoneRules")
    )
    assert conf.findtext(f"{{{NS}}}ISDNBandwidth/{{{NS}}}Bandwidth") == "Default"
    assert conf.findtext(f"{{{NS}}}IPBandwidth/{{{NS}}}Bandwidth") == "Default"
    rule = conf.find(f"{{{NS}}}ConferenceTimeZoneRules/{{{NS}}}TimeZoneRule")
    assert names(rule) == [
        "ValidFrom",
        "Id",
        "DisplayName",
        "BaseOffsetInMinutes",
        "Daylight",
        "DaylightOffsetInMinutes",
        "Standard",
    ]
    assert rule.findtext(f"{{{NS}}}Id") == "W. Europe Standard Time"
    daylight = rule.find(f"{{{NS}}}Daylight")
    assert names(daylight) == ["ChangeSecondAtDay", "RelativeRule"]
    assert names(daylight.find(f"{{{NS}}}RelativeRule")) == ["Month", "DayOfTheWeek", "WeekOfTheMonthIndex"]
    assert rule.findtext(f"{{{NS}}}Standard/{{{NS}}}RelativeRule/{{{NS}}}Month") == "10"


def test_saved_bandwidths_are_echoed(tms12):
    """ISDNBandwidth and IPBandwidth sent with the save come back as saved."""
    body = conference_xml(key="shape-bw").replace(
        "</Participants>",
        "</Participants><ISDNBandwidth><Bandwidth>6b/384kbps</Bandwidth></ISDNBandwidth>"
        "<IPBandwidth><Bandwidth>32b/2048kbps</Bandwidth></IPBandwidth>",
    )
    conf = booked(tms12.client, body)
    assert conf.findtext(f"{{{NS}}}ISDNBandwidth/{{{NS}}}Bandwidth") == "6b/384kbps"
    assert conf.findtext(f"{{{NS}}}IPBandwidth/{{{NS}}}Bandwidth") == "32b/2048kbps"


def test_server_time_zone_knob_picks_the_rule(tms12):
    """With server_time_zone = GMT Standard Time, a rules-less save reads back with that rule."""
    tms12.sim.set_knobs({"server_time_zone": "GMT Standard Time"})
    conf = booked(tms12.client, conference_xml(key="shape-gmt"))
    assert conf.findtext(f"{{{NS}}}ConferenceTimeZoneRules/{{{NS}}}TimeZoneRule/{{{NS}}}Id") == (
        "GMT Standard Time"
    )


def test_transaction_id_only_from_the_api_version_that_has_it(tms12):
    """TransactionId is sent at API 22 but not to a client at API 14, which predates it."""
    modern = booked(tms12.client, conference_xml(key="shape-tx"), version=22)
    assert modern.findtext(f"{{{NS}}}TransactionId")
    conf_id = modern.findtext(f"{{{NS}}}ConferenceId")
    old = tms12.client.call("GetConferenceById", f"<ConferenceId>{conf_id}</ConferenceId>", version=14)
    conf = old.find("tns:GetConferenceByIdResult")
    assert "TransactionId" not in names(conf)
    assert "Version" in names(conf)


def test_external_participants_without_ids_are_numbered_from_one(tms12):
    """Dial-in participants saved without ParticipantId get 1, 2 from TMS, never 0."""
    dial_ins = "".join(
        f"<Participant><NameOrNumber>Guest {n}</NameOrNumber>"
        "<ParticipantCallType>IP Video &lt;-</ParticipantCallType></Participant>"
        for n in (1, 2)
    )
    body = conference_xml(key="shape-parts").replace("</Participants>", dial_ins + "</Participants>")
    conf = booked(tms12.client, body)
    ids = {
        p.findtext(f"{{{NS}}}NameOrNumber"): p.findtext(f"{{{NS}}}ParticipantId")
        for p in conf.iterfind(f"{{{NS}}}Participants/{{{NS}}}Participant")
    }
    assert ids == {None: "11", "Guest 1": "1", "Guest 2": "2"}


def test_fault_names_the_wsdl_url_and_is_private(tms12):
    """A fault answered to …asmx?wsdl names that URL in soap:Node and carries Cache-Control: private."""
    data = tms12.client.envelope("NoSuchOperation", "", service="booking", session=None)
    response = requests.post(
        tms12.server.base_url + BOOKING_PATH + "?wsdl",
        data=data,
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
        auth=AUTH,
        timeout=5,
    )
    assert response.status_code == 500
    assert response.headers["Cache-Control"] == "private"
    node = f"<soap:Node>{tms12.server.base_url}{BOOKING_PATH}?wsdl</soap:Node>"
    assert node in response.text
    assert SOAP12 in response.text


def test_soap11_fault_is_private_and_names_the_url_as_actor(tms):
    """Every SOAP 500 carries Cache-Control: private, and the SOAP 1.1 fault names the URL as well."""
    result = tms.client.call("GetConferenceById", "<ConferenceId>424242</ConferenceId>")
    assert result.status == 500
    response = requests.post(
        tms.server.base_url + BOOKING_PATH + "?WSDL",
        data=tms.client.envelope(
            "GetConferenceById", "<ConferenceId>1</ConferenceId>", service="booking", session=None
        ),
        headers={
            "Content-Type": "text/xml; charset=utf-8" if tms.client.soap == 11 else "application/soap+xml"
        },
        auth=AUTH,
        timeout=5,
    )
    assert response.status_code == 500
    assert response.headers["Cache-Control"] == "private"
    assert f"{BOOKING_PATH}?WSDL</" in response.text


def test_conferences_for_systems_without_arguments_faults_by_default(tms12):
    """Without SystemIds, or without times, GetConferencesForSystems answers the invalid-request fault."""
    client = tms12.client
    window = "<StartTime>2026-12-01T00:00:00Z</StartTime><EndTime>2026-12-31T00:00:00Z</EndTime>"
    for body in ("", window, "<SystemIds>11</SystemIds>"):
        result = client.call("GetConferencesForSystems", body, validate=False)
        assert result.fault_code == INVALID_REQUEST


def test_conferences_for_systems_with_asmx_defaults_answers_an_empty_list(tms12):
    """With for_systems_without_args = asmx_defaults, missing arguments give an empty list, not a fault."""
    tms12.sim.set_knobs({"for_systems_without_args": "asmx_defaults"})
    booked(tms12.client, conference_xml(key="shape-sys"))
    for body in ("", "<SystemIds>11</SystemIds>"):
        result = tms12.client.call("GetConferencesForSystems", body, validate=False)
        assert result.status == 200
        assert len(result.find("tns:GetConferencesForSystemsResult")) == 0


def test_remote_setup_system_carries_every_wsdl_field_and_a_host_address(tms):
    """TMSSystem carries every WSDL string (WebInterfaceURL, H323Id, …); NetworkAddress is a host name."""
    result = tms.client.call("GetSystems", service="remote")
    SCHEMAS["remote"].validate(result.body())
    system = result.find("rs:GetSystemsResult/rs:TMSSystem")
    for name in ("WebInterfaceURL", "Contact", "Description", "ISDNNumber", "H323Id", "E164Alias"):
        assert system.find(f"{{{RS}}}{name}") is not None, name
    assert "<Contact />" in result.text
    address = system.findtext(f"{{{RS}}}NetworkAddress")
    assert "@" not in address
    assert address == "oslo-codec.lab.example"
    assert system.findtext(f"{{{RS}}}SIPUri") == "room-oslo@lab.example"
    assert system.findtext(f"{{{RS}}}WebInterfaceURL") == "http://oslo-codec.lab.example/"


def test_control_api_sets_a_systems_network_address(tms12):
    """A system added through the control API may carry an IP address as its NetworkAddress."""
    tms12.sim.control("systems", "POST", {"system_id": 99, "name": "Lab", "network_address": "192.0.2.7"})
    result = tms12.client.call("GetSystemById", "<TMSSystemId>99</TMSSystemId>", service="remote")
    assert result.value("rs:GetSystemByIdResult/rs:NetworkAddress") == "192.0.2.7"
