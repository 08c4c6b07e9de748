"""The CMS simulator's LDAP helpers and its Simulator surface (classify, describe, reset, control)."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from email.message import Message

import ldap3
import pytest
import requests

from xesync.lab.base import ControlError
from xesync.lab.clock import LabClock
from xesync.lab.cms import CmsSimulator, ldap_search, ldapsync
from xesync.lab.fixture import load_fixture
from xesync.lab.http import LabRequest
from xesync.lab.runtime import Lab

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PMP = "cn=cms-pmp,ou=groups,dc=lab,dc=example"
TEAM = "cn=video-team,ou=groups,dc=lab,dc=example"
BOB = "uid=bob,ou=people,dc=lab,dc=example"


def _mock_groups():
    server = ldap3.Server("unit-mock", get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user="cn=admin", password="pw", client_strategy=ldap3.MOCK_SYNC)
    conn.strategy.add_entry("cn=admin", {"userPassword": "pw", "objectClass": ["person"], "sn": "a"})
    conn.strategy.add_entry(
        PMP, {"objectClass": ["groupOfNames"], "member": [TEAM, "uid=alice,ou=people,dc=lab,dc=example"]}
    )
    conn.strategy.add_entry(TEAM, {"objectClass": ["groupOfNames"], "member": [BOB, PMP]})
    conn.strategy.add_entry(BOB, {"objectClass": ["inetOrgPerson"], "uid": "bob", "memberOf": [TEAM]})
    conn.bind()
    return conn


def test_in_chain_term_expands_to_nested_groups():
    """(memberOf:1.2.840.113556.1.4.1941:=G) becomes an OR over G and its nested groups (cycles are fine)."""
    rewritten = ldapsync.expand_in_chain(
        _mock_groups(), f"(&(objectClass=inetOrgPerson)(memberOf:1.2.840.113556.1.4.1941:={PMP}))"
    )
    assert rewritten == f"(&(objectClass=inetOrgPerson)(|(memberOf={PMP})(memberOf={TEAM})))"


def test_other_filters_are_left_alone():
    """A filter without the in-chain rule is unchanged."""
    assert ldapsync.expand_in_chain(_mock_groups(), f"(memberOf={PMP})") == f"(memberOf={PMP})"


def test_unreachable_directory_is_an_ldap_error():
    """A server nobody listens on fails the sync with ldapError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ldapsync.SyncFailedError) as caught:
        ldapsync.connect({"address": "127.0.0.1", "portNumber": str(port), "secure": "false"})
    assert caught.value.reason == "ldapError"


def test_ad_object_guid_bytes_become_a_guid():
    """A binary objectGUID is rendered as the GUID string ownerAdGuid uses."""
    guid = uuid.uuid4()
    assert ldap_search._normalise({"objectGUID": [guid.bytes_le]}) == {"objectguid": [str(guid)]}


def test_entry_without_a_jid_is_skipped():
    """An entry whose jidMapping expands to nothing imports no user."""
    plan = ldapsync.SourcePlan(
        source_id="s",
        server={},
        mapping={"jidMapping": "$uid$@lab.example"},
        base_dn="",
        filter="",
        tenant=None,
        user_profile=None,
        non_member_access=None,
    )
    assert ldapsync._map("cn=x", {"cn": ["x"]}, plan) is None
    record = ldapsync._map("uid=a", {"uid": ["a"], "entryuuid": ["u-1"]}, plan)
    assert (record.jid, record.guid) == ("a@lab.example", "u-1")


@pytest.fixture
def sim():
    return CmsSimulator(load_fixture(), LabClock(T0, frozen=True))


def _req(path, method="GET"):
    return LabRequest(method=method, path=path, query={}, headers=Message(), body=b"")


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/api/v1/cospaces/abc/cospaceusers", "/coSpaces/{id}/coSpaceUsers"),
        ("/api/v1/calls/x/calllegs", "/calls/{id}/callLegs"),
        ("/api/v1/system/profiles", "/system/profiles"),
        ("/nonsense/%%%", "unrecognised"),
        ("", "unrecognised"),
    ],
)
def test_classify_names_the_canonical_template(sim, path, operation):
    """classify answers the canonical template, or 'unrecognised', for any path."""
    assert sim.classify(_req(path)).operation == operation


def test_describe_gives_the_contract_fields(sim):
    """The cms section of the JSON line has url, username and password."""
    section = sim.describe("http://127.0.0.1:5")
    assert section["url"] == "http://127.0.0.1:5/api/v1"
    assert (section["username"], section["password"]) == ("api", "lab-cms-secret")


def test_reset_restores_fixture_knobs_and_objects(sim):
    """reset() forgets calls, objects and knob changes."""
    sim.control("knobs", "PUT", {"member_join_upgrades": True})
    sim.control("calls", "POST", {"name": "x"})
    sim.reset()
    assert sim.knobs.member_join_upgrades is False
    assert sim.state()["calls"] == []


@pytest.mark.parametrize(
    ("action", "method", "body", "status"),
    [
        ("knobs", "PUT", {"nope": 1}, 400),
        ("knobs", "PUT", ["not", "an", "object"], 400),
        ("calls", "POST", {}, 400),
        ("calls", "POST", {"coSpace": "missing"}, 404),
        ("calls", "POST", {"name": "x", "participants": [{"userJid": "ghost@lab.example"}]}, 400),
        ("calls/missing", "GET", None, 404),
        ("teleport", "POST", {}, 404),
    ],
)
def test_control_errors_are_control_errors(sim, action, method, body, status):
    """Bad control calls raise ControlError with a fitting status."""
    with pytest.raises(ControlError) as caught:
        sim.control(action, method, body)
    assert caught.value.status == status


def test_control_api_through_the_lab_runtime():
    """Through the lab's control server, POST /lab/cms/calls starts a call the CMS API then shows."""
    with Lab(only=("cms",), directory=False) as lab:
        control = lab.describe()["control"]["url"]
        cms = lab.describe()["cms"]
        started = requests.post(f"{control}/cms/calls", json={"name": "Ad hoc"}, timeout=10).json()
        assert started["licence"] == "smp"
        got = requests.get(
            f"{cms['url']}/calls/{started['id']}", auth=(cms["username"], cms["password"]), timeout=10
        )
        assert got.status_code == 200
        kinds = requests.get(f"{control}/cms/fault_kinds", timeout=10).json()
        assert kinds["cms"] == ["failure"]
        lab.inject(service="cms", kind="failure", status=503, code="databaseNotReady", count=1)
        busy = requests.get(f"{cms['url']}/calls", auth=(cms["username"], cms["password"]), timeout=10)
        assert (busy.status_code, b"<databaseNotReady />" in busy.content) == (503, True)


def test_clock_set_back_restarts_uptime_and_snapshots():
    """Setting the lab clock before the bridge's start (a lab reset) makes that the new start."""
    clock = LabClock(T0, frozen=True)
    sim = CmsSimulator(load_fixture(), clock)
    clock.set(datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    assert sim.db.started == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    clock.advance(600)
    assert sim.db.started == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
