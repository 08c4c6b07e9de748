"""TMS simulator: IIS Windows authentication (NTLM, Negotiate) beside Basic (tms-booking-api.md §2.4).

The client side is unmodified requests-ntlm (and pyspnego's own initiator for SPNEGO), never lab code.
"""

from __future__ import annotations

import base64

import pytest
import requests
import spnego
from requests_ntlm import HttpNtlmAuth
from tms_wire import AUTH, BOOKING_PATH, Served, conference_xml

from xesync.lab.base import ControlError
from xesync.lab.http import AUTH_OPERATION

NTLM_AUTH = HttpNtlmAuth("LAB\\svc-tms", "lab-tms-secret")


def _offered(response) -> list[str]:
    return [v.strip() for v in response.headers.get("WWW-Authenticate", "").split(",")]


def test_unauthenticated_request_is_offered_negotiate_ntlm_and_basic(tms12):
    """A request without credentials gets 401 listing Negotiate, NTLM and Basic, as IIS lists them."""
    data = tms12.client.envelope("GetDefaultConference", "", service="booking", session=None)
    response = requests.post(tms12.server.base_url + BOOKING_PATH, data=data, timeout=5)
    assert response.status_code == 401
    assert _offered(response) == ["Negotiate", "NTLM", 'Basic realm="tms"']


def test_requests_ntlm_books_through_the_three_message_handshake(tms):
    """requests-ntlm's NTLM handshake authenticates the service user, and booking calls then succeed."""
    tms.client.auth = NTLM_AUTH
    result = tms.client.call("GetDefaultConference")
    assert result.status == 200
    assert result.value("tns:GetDefaultConferenceResult/tns:OwnerUserName") == "LAB\\svc-tms"
    saved = tms.client.call("SaveConferenceWithMode", conference_xml() + "<BookingMode>Strict</BookingMode>")
    assert saved.status == 200
    assert saved.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:OwnerUserName") == "LAB\\alice"


def test_handshake_runs_once_per_keep_alive_connection(tms12):
    """The 401 probe and the NEGOTIATE leg happen once; the connection then stays authenticated."""
    http = requests.Session()
    url = tms12.server.base_url + BOOKING_PATH + "?wsdl"
    first = http.get(url, auth=NTLM_AUTH, timeout=5)
    second = http.get(url, auth=NTLM_AUTH, timeout=5)
    http.close()
    assert [r.status_code for r in first.history] == [401, 401]
    assert first.history[1].headers["WWW-Authenticate"].startswith("NTLM ")
    assert first.status_code == 200
    assert first.headers["Persistent-Auth"] == "true"
    assert second.status_code == 200
    assert second.history == []
    assert tms12.counter.count("tms", AUTH_OPERATION) == 2
    assert tms12.counter.count("tms", "wsdl") == 2


def test_without_persistence_every_request_repeats_the_handshake(tms12):
    """With auth_persist off, each request on the connection goes through NTLM again."""
    tms12.sim.set_knobs({"auth_persist": False})
    http = requests.Session()
    url = tms12.server.base_url + BOOKING_PATH + "?wsdl"
    answers = [http.get(url, auth=NTLM_AUTH, timeout=5) for _ in range(2)]
    http.close()
    assert [len(a.history) for a in answers] == [2, 2]
    assert all(a.status_code == 200 for a in answers)
    assert tms12.counter.count("tms", AUTH_OPERATION) == 4


def test_wrong_password_or_unknown_user_is_refused(tms12):
    """NTLM with a wrong password or an unknown user ends in 401, the challenge offered again."""
    url = tms12.server.base_url + BOOKING_PATH + "?wsdl"
    for auth in (HttpNtlmAuth("LAB\\svc-tms", "wrong"), HttpNtlmAuth("LAB\\nobody", "lab-tms-secret")):
        response = requests.get(url, auth=auth, timeout=5)
        assert response.status_code == 401
        assert "NTLM" in _offered(response)


@pytest.mark.parametrize("login", ["svc-tms@lab.example", "lab.example\\SVC-TMS", "lab\\svc-tms"])
def test_service_user_authenticates_in_every_login_form(tms12, login):
    """The NetBIOS, DNS-domain and UPN forms of the service user all verify, case-insensitively."""
    response = requests.get(
        tms12.server.base_url + BOOKING_PATH + "?wsdl", auth=HttpNtlmAuth(login, "lab-tms-secret"), timeout=5
    )
    assert response.status_code == 200


def test_basic_can_be_switched_off(tms12):
    """With auth = negotiate, ntlm, Basic credentials get 401 and the challenge no longer offers Basic."""
    tms12.sim.set_knobs({"auth": ["negotiate", "ntlm"]})
    result = tms12.client.call("GetDefaultConference")
    assert result.status == 401
    response = requests.get(tms12.server.base_url + BOOKING_PATH + "?wsdl", auth=AUTH, timeout=5)
    assert _offered(response) == ["Negotiate", "NTLM"]
    tms12.client.auth = NTLM_AUTH
    assert tms12.client.call("GetDefaultConference").status == 200


def test_ntlm_can_be_switched_off(tms12):
    """With auth = basic only, an NTLM NEGOTIATE message is refused and Basic still works."""
    tms12.sim.set_knobs({"auth": ["basic"]})
    response = requests.get(tms12.server.base_url + BOOKING_PATH + "?wsdl", auth=NTLM_AUTH, timeout=5)
    assert response.status_code == 401
    assert _offered(response) == ['Basic realm="tms"']
    assert tms12.client.call("GetDefaultConference").status == 200


def test_negotiate_with_spnego_tokens_completes(tms12):
    """A SPNEGO-wrapped NTLM handshake under the Negotiate scheme completes on one connection."""
    tms12.sim.set_knobs({"auth": ["negotiate"]})
    client = spnego.client(
        "LAB\\svc-tms", "lab-tms-secret", protocol="negotiate", options=spnego.NegotiateOptions.use_negotiate
    )
    http = requests.Session()
    url = tms12.server.base_url + BOOKING_PATH + "?wsdl"
    token = client.step()
    for _ in range(3):
        response = http.get(url, headers={"Authorization": f"Negotiate {base64.b64encode(token).decode()}"})
        if response.status_code != 401:
            break
        token = client.step(base64.b64decode(response.headers["WWW-Authenticate"].split(" ", 1)[1]))
    http.close()
    assert response.status_code == 200
    assert b'name="SaveConference"' in response.content


def test_authenticate_message_on_another_connection_is_refused(tms12):
    """NTLM authenticates a connection: the AUTHENTICATE message sent on a new connection gets 401."""
    client = spnego.client(
        "LAB\\svc-tms", "lab-tms-secret", protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm
    )
    url = tms12.server.base_url + BOOKING_PATH + "?wsdl"
    first, second = requests.Session(), requests.Session()
    challenge = first.get(url, headers={"Authorization": "NTLM " + base64.b64encode(client.step()).decode()})
    token = client.step(base64.b64decode(challenge.headers["WWW-Authenticate"].split(" ", 1)[1]))
    response = second.get(url, headers={"Authorization": "NTLM " + base64.b64encode(token).decode()})
    first.close()
    second.close()
    assert challenge.status_code == 401
    assert response.status_code == 401


def test_unknown_scheme_knob_is_refused(tms12):
    """The auth knob takes only negotiate, ntlm and basic, and never an empty list."""
    for value in (["kerberos"], []):
        with pytest.raises(ControlError):
            tms12.sim.set_knobs({"auth": value})


def test_fixture_can_start_with_windows_authentication_only():
    """A fixture whose [tms] auth lists no Basic starts a TMS that refuses Basic from the first request."""
    import dataclasses  # noqa: PLC0415

    from xesync.lab.fixture import load_fixture  # noqa: PLC0415

    base = load_fixture()
    served = Served(11, dataclasses.replace(base, tms={**base.tms, "auth": ["NTLM"]}))
    try:
        assert served.client.call("GetDefaultConference").status == 401
        served.client.auth = NTLM_AUTH
        assert served.client.call("GetDefaultConference").status == 200
    finally:
        served.stop()
