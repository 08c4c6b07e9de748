"""CMS API basics over raw HTTP: auth, paths, methods, XML, failureDetails and injected faults."""

from __future__ import annotations

import pytest
import requests

from xesync.lab.faults import parse_fault


def test_no_credentials_gets_401_with_the_acano_realm(cms):
    """A request without credentials is answered 401 with WWW-Authenticate: Basic realm="acano"."""
    response = requests.get(f"{cms.url}/system/status", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="acano"'


def test_wrong_password_gets_401(cms):
    """Bad credentials are refused like missing ones."""
    response = requests.get(f"{cms.url}/coSpaces", auth=("api", "wrong"), timeout=10)
    assert response.status_code == 401


def test_get_answers_xml_with_the_declaration(api):
    """A GET answers 200 text/xml beginning with <?xml version="1.0"?>."""
    response = api.get("/system/status")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0"?>')


def test_paths_are_case_insensitive_and_location_is_camel_case(api):
    """POST to /cospaces answers 200, no body, Location /api/v1/coSpaces/<id>; GET in any case works."""
    response = api.post("/cospaces", name="Case")
    assert response.status_code == 200
    assert response.content == b""
    location = response.headers["Location"]
    assert location.startswith("/api/v1/coSpaces/")
    space_id = location.rsplit("/", 1)[1]
    assert api.text(api.xml(f"/COSPACES/{space_id}"), "name") == "Case"


def test_put_and_delete_answer_200_with_an_empty_body(api):
    """PUT and DELETE answer 200 with no body."""
    space = api.create("/coSpaces", name="Temp")
    api.ok(api.put(f"/coSpaces/{space}", name="Renamed"))
    api.ok(api.delete(f"/coSpaces/{space}"))
    assert api.get(f"/coSpaces/{space}").status_code == 404


def test_unknown_path_is_unrecognised_object_in_the_british_spelling_by_default(api):
    """An unknown object path answers 404 <unrecognisedObject/>."""
    assert api.failure(api.get("/system/profile")) == (404, "unrecognisedObject", {})


def test_unrecognised_spelling_is_a_knob(cms, api):
    """With the knob set to the documented spelling, the element is <unrecognizedObject/>."""
    cms.knobs(unrecognised_object="unrecognizedObject")
    assert api.failure(api.get("/noSuchThing")) == (404, "unrecognizedObject", {})


def test_bad_api_version_is_invalid_version(cms):
    """/api/v2 answers failureDetails invalidVersion."""
    response = requests.get(
        f"{cms.http.base_url}/api/v2/coSpaces", auth=("api", "lab-cms-secret"), timeout=10
    )
    assert response.status_code == 400
    assert b"<invalidVersion />" in response.content


def test_unknown_id_is_404_does_not_exist(api):
    """An unknown id in the URL answers 404 with the object's *DoesNotExist code."""
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.failure(api.get(f"/coSpaces/{missing}"))[:2] == (404, "coSpaceDoesNotExist")
    assert api.failure(api.get(f"/calls/{missing}"))[:2] == (404, "callDoesNotExist")
    assert api.failure(api.get(f"/callLegs/{missing}"))[:2] == (404, "callLegDoesNotExist")
    assert api.failure(api.get(f"/users/{missing}"))[:2] == (404, "userDoesNotExist")
    assert api.failure(api.get(f"/callProfiles/{missing}"))[:2] == (404, "callProfileDoesNotExist")
    assert api.failure(api.put(f"/userProfiles/{missing}", hasLicense="true"))[:2] == (
        404,
        "userProfileDoesNotExist",
    )


def test_bad_parameter_value_is_a_parameter_error(api):
    """A bad boolean answers 400 <parameterError parameter=… error="invalidValue"/>."""
    response = api.post("/coSpaces", name="x", nonMemberAccess="maybe")
    assert api.failure(response) == (
        400,
        "parameterError",
        {"parameter": "nonMemberAccess", "error": "invalidValue"},
    )


def test_reference_to_nothing_is_400_does_not_exist(api):
    """A reference to a missing object answers 400 with that object's *DoesNotExist code."""
    response = api.post("/coSpaces", name="x", callProfile="00000000-0000-0000-0000-000000000000")
    assert api.failure(response) == (400, "callProfileDoesNotExist", {})


def test_unsupported_method_is_invalid_operation(api):
    """POST /users (users come only from LDAP) and POST /system/profiles answer invalidOperation."""
    assert api.failure(api.post("/users", userJid="x@lab.example")) == (400, "invalidOperation", {})
    assert api.failure(api.post("/system/profiles", userProfile="")) == (400, "invalidOperation", {})


def test_unknown_parameters_are_ignored_or_rejected_per_knob(cms, api):
    """An unknown form parameter is ignored, or a parameterError with unknown_parameters=reject."""
    assert api.post("/coSpaces", name="x", colour="blue").status_code == 200
    cms.knobs(unknown_parameters="reject")
    assert api.failure(api.post("/coSpaces", name="y", colour="blue"))[:2] == (400, "parameterError")


def test_injected_503_carries_retry_after(cms, api):
    """The generic http_status fault answers 503 with Retry-After on matching paths only, count times."""
    cms.faults.add(_fault(kind="http_status", operation="/coSpaces", count=1, status=503, retry_after_s=7))
    assert api.get("/system/status").status_code == 200
    first = api.get("/coSpaces")
    assert (first.status_code, first.headers["Retry-After"]) == (503, "7")
    assert api.get("/coSpaces").status_code == 200


def test_failure_fault_answers_failure_details(cms, api):
    """The CMS fault kind `failure` answers its status with <failureDetails><code/></failureDetails>."""
    cms.faults.add(_fault(kind="failure", operation="/calls", status=503, code="databaseNotReady"))
    assert api.failure(api.get("/calls")) == (503, "databaseNotReady", {})


def test_requests_are_counted_per_template(cms, api):
    """The lab counts requests under the canonical template; the control API counts per method too."""
    space = api.create("/coSpaces", name="x")
    api.get(f"/cospaces/{space}")
    api.get(f"/coSpaces/{space}")
    assert cms.counter.count("cms", "/coSpaces/{id}") == 2
    assert cms.control("requests")["operations"]["POST /coSpaces"] == 1


@pytest.mark.parametrize("body", [b"%zz=\xff", b"a=%ff%fe"])
def test_malformed_form_body_is_a_parameter_error(api, body):
    """A body that is not UTF-8 form data gets failureDetails, not a crash."""
    response = api.request(
        "POST", "/coSpaces", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert api.failure(response)[:2] == (400, "parameterError")


def _fault(**spec):
    return parse_fault({"service": "cms", **spec}, {"cms": frozenset({"failure"})})
