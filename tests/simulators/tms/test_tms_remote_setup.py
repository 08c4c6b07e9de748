"""Remote setup service: systems, users, IsAlive, in its own namespace (tms-booking-api.md §6.4, §8.8)."""

from __future__ import annotations

from tms_wire import RS, SCHEMAS, conference_xml


def test_get_systems_lists_the_fixture_rooms(tms):
    """GetSystems returns one TMSSystem per room, in the remotesetup namespace, valid against the WSDL."""
    result = tms.client.call("GetSystems", service="remote")
    assert result.status == 200
    systems = result.findall("rs:GetSystemsResult/rs:TMSSystem")
    assert [(s.find(f"{{{RS}}}SystemId").text, s.find(f"{{{RS}}}SystemName").text) for s in systems] == [
        ("11", "Oslo"),
        ("12", "Bergen"),
        ("13", "Tromso"),
    ]
    SCHEMAS["remote"].validate(result.body())


def test_get_systems_for_user_matches(tms12):
    """GetSystemsForUser returns the systems the service user may book."""
    result = tms12.client.call("GetSystemsForUser", service="remote")
    assert len(result.findall("rs:GetSystemsForUserResult/rs:TMSSystem")) == 3


def test_get_system_by_id_and_unknown_system(tms):
    """GetSystemById returns the system, or a SYSTEMNOTFOUND fault."""
    found = tms.client.call("GetSystemById", "<TMSSystemId>12</TMSSystemId>", service="remote")
    assert found.value("rs:GetSystemByIdResult/rs:SystemName") == "Bergen"
    SCHEMAS["remote"].validate(found.body())
    missing = tms.client.call("GetSystemById", "<TMSSystemId>99</TMSSystemId>", service="remote")
    assert missing.fault_code == -2147218301


def test_seeded_system_appears_and_is_bookable(tms12):
    """A system seeded through the control API is listed and can be booked."""
    tms12.sim.control("systems", "POST", [{"system_id": 21, "name": "Lab", "sip_uri": "lab@lab.example"}])
    result = tms12.client.call("GetSystems", service="remote")
    assert "Lab" in [
        s.find(f"{{{RS}}}SystemName").text for s in result.findall("rs:GetSystemsResult/rs:TMSSystem")
    ]
    assert tms12.client.call("SaveConference", conference_xml(systems=(21,))).status == 200


def test_get_users_lists_directory_users_but_not_externals(tms):
    """GetUsers has the service user and the directory users; the external organiser is unknown."""
    result = tms.client.call("GetUsers", service="remote")
    names = [u.find(f"{{{RS}}}UserName").text for u in result.findall("rs:GetUsersResult/rs:User")]
    assert "LAB\\svc-tms" in names
    assert {"LAB\\alice", "LAB\\bob", "LAB\\carol", "LAB\\dave"} <= set(names)
    assert "LAB\\erin" not in names
    SCHEMAS["remote"].validate(result.body())


def test_seeded_user_appears(tms12):
    """A user seeded through the control API is listed by GetUsers."""
    tms12.sim.control(
        "users", "POST", {"username": "LAB\\frank", "first_name": "Frank", "email": "frank@lab.example"}
    )
    result = tms12.client.call("GetUsers", service="remote")
    assert "LAB\\frank" in [
        u.find(f"{{{RS}}}UserName").text for u in result.findall("rs:GetUsersResult/rs:User")
    ]


def test_is_alive_and_book_on_behalf(tms):
    """IsAlive is true; IsTMSBookOnBehalfUser follows the book_on_behalf knob."""
    assert tms.client.call("IsAlive", service="remote").value("rs:IsAliveResult") == "true"
    assert (
        tms.client.call("IsTMSBookOnBehalfUser", service="remote").value("rs:IsTMSBookOnBehalfUserResult")
        == "true"
    )
    tms.sim.control("knobs", "POST", {"book_on_behalf": False})
    assert (
        tms.client.call("IsTMSBookOnBehalfUser", service="remote").value("rs:IsTMSBookOnBehalfUserResult")
        == "false"
    )


def test_remote_setup_needs_no_session(tms12):
    """Remote setup calls succeed without any ClientSession."""
    result = tms12.client.call("GetSystems", service="remote", session="", retry_session=False)
    assert result.status == 200
