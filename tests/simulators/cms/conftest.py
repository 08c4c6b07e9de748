"""Fixtures for the CMS simulator's contract tests: the simulator on loopback and a raw-HTTP client.

The client is plain ``requests`` plus :mod:`xesync.xmlsafe`, independent of any xesync CMS client. Most
tests run against an in-memory directory (ldap3's mock strategy) patched in as the simulator's LDAP
connection, so users arrive through the simulator's real sync code; the ``slapd`` tests use a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ldap3
import pytest
import requests

from xesync.lab.clock import LabClock
from xesync.lab.cms import CmsSimulator, ldapsync
from xesync.lab.faults import FaultBook, RequestCounter
from xesync.lab.fixture import DirectoryLink, load_fixture
from xesync.lab.http import LabHTTPServer
from xesync.xmlsafe import parse

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BASE_DN = "dc=lab,dc=example"
PMP_GROUP = "cn=cms-pmp,ou=groups,dc=lab,dc=example"
TEAM_GROUP = "cn=video-team,ou=groups,dc=lab,dc=example"
BIND_DN = "cn=svc-xesync,ou=service,dc=lab,dc=example"
BIND_PW = "lab-ldap-secret"
PEOPLE = {
    "alice": ("Alice Example", [PMP_GROUP]),
    "bob": ("Bob Builder", [TEAM_GROUP]),
    "carol": ("Carol Jones", []),
    "dave": ("Dave Null", []),
}


def person_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{BASE_DN}"


class MockDirectory:
    """The lab's people and groups on ldap3's mock strategy (direct memberOf, like OpenLDAP's overlay)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.server = ldap3.Server("lab-mock", get_info=ldap3.NONE)
        admin = ldap3.Connection(self.server, user=BIND_DN, password=BIND_PW, client_strategy=ldap3.MOCK_SYNC)
        add = admin.strategy.add_entry
        add(BIND_DN, {"objectClass": ["person"], "cn": "svc-xesync", "sn": "svc", "userPassword": BIND_PW})
        members: dict[str, list[str]] = {PMP_GROUP: [TEAM_GROUP], TEAM_GROUP: []}
        for n, (uid, (name, groups)) in enumerate(PEOPLE.items()):
            add(
                person_dn(uid),
                {
                    "objectClass": ["inetOrgPerson"],
                    "uid": uid,
                    "sAMAccountName": uid,
                    "cn": name,
                    "sn": name.split()[-1],
                    "mail": f"{uid}@lab.example",
                    "memberOf": groups,
                    "entryUUID": f"00000000-0000-4000-8000-{n:012d}",
                },
            )
            for group in groups:
                members[group].append(person_dn(uid))
        add(
            TEAM_GROUP,
            {
                "objectClass": ["groupOfNames"],
                "cn": "video-team",
                "member": members[TEAM_GROUP],
                "memberOf": [PMP_GROUP],
            },
        )
        add(PMP_GROUP, {"objectClass": ["groupOfNames"], "cn": "cms-pmp", "member": members[PMP_GROUP]})
        self.admin = admin
        admin.bind()

    def connect(self, _server_values):
        conn = ldap3.Connection(self.server, user=BIND_DN, password=BIND_PW, client_strategy=ldap3.MOCK_SYNC)
        conn.bind()
        return conn

    def leave_group(self, uid: str, group: str):
        """Take a person out of a group (both sides, as the memberof overlay would)."""
        self.admin.modify(group, {"member": [(ldap3.MODIFY_DELETE, [person_dn(uid)])]})
        self.admin.modify(person_dn(uid), {"memberOf": [(ldap3.MODIFY_DELETE, [group])]})


@dataclass
class Served:
    sim: CmsSimulator
    http: LabHTTPServer
    clock: LabClock
    faults: FaultBook
    counter: RequestCounter
    directory: MockDirectory | None

    @property
    def url(self) -> str:
        return f"{self.http.base_url}/api/v1"

    def knobs(self, **changes):
        """Change knobs through the control entry point, as ``PUT /lab/cms/knobs`` does."""
        return self.sim.control("knobs", "PUT", changes)

    def control(self, action: str, method: str = "GET", body=None):
        """``METHOD /lab/cms/<action>`` through the simulator's control entry point."""
        return self.sim.control(action, method, body)


class Api:
    """A raw-HTTP CMS API client for tests: form bodies out, parsed XML in."""

    def __init__(self, url: str, auth=("api", "lab-cms-secret")):
        self.url = url
        self.session = requests.Session()
        self.session.auth = auth

    def request(self, method: str, path: str, **kw) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=10, **kw)

    def get(self, path: str, **params) -> requests.Response:
        return self.request("GET", path, params=params)

    def xml(self, path: str, **params):
        response = self.get(path, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return parse(response.content)

    def post(self, path: str, **form) -> requests.Response:
        return self.request("POST", path, data=form)

    def put(self, path: str, **form) -> requests.Response:
        return self.request("PUT", path, data=form)

    def delete(self, path: str) -> requests.Response:
        return self.request("DELETE", path)

    def create(self, path: str, **form) -> str:
        """POST, check 200 + empty body + Location, and return the new id."""
        response = self.post(path, **form)
        assert response.status_code == 200, (path, response.status_code, response.text)
        assert response.content == b""
        return response.headers["Location"].rsplit("/", 1)[-1]

    def ok(self, response: requests.Response) -> None:
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.content == b""

    def all(self, path: str, **params) -> list[Any]:
        """Every item of a collection, paging with offset += len(items) until total."""
        items: list[Any] = []
        while True:
            root = self.xml(path, offset=len(items), **params)
            page = list(root)
            items += page
            if not page or len(items) >= int(root.get("total")):
                return items

    @staticmethod
    def text(element, tag: str) -> str | None:
        """The text of a child element, or None when CMS left it out."""
        child = element.find(tag)
        return None if child is None else child.text

    def failure(self, response: requests.Response) -> tuple[int, str, dict[str, str]]:
        """``(status, code, attributes)`` of a failureDetails answer."""
        root = parse(response.content)
        assert root.tag == "failureDetails"
        code = root[0]
        return response.status_code, code.tag, dict(code.attrib)


def directory_link(url: str = "ldap://127.0.0.1:9") -> DirectoryLink:
    return DirectoryLink(url=url, bind_dn=BIND_DN, password=BIND_PW, base_dn=BASE_DN, pmp_group_dn=PMP_GROUP)


@pytest.fixture(scope="module")
def cms_served():
    """One CMS simulator on loopback per test module, on the mock directory and a frozen clock."""
    directory = MockDirectory()
    patch = pytest.MonkeyPatch()
    patch.setattr(ldapsync, "connect", directory.connect)
    clock = LabClock(T0, frozen=True)
    sim = CmsSimulator(load_fixture(), clock, directory=directory_link())
    faults, counter = FaultBook(), RequestCounter()
    http = LabHTTPServer(sim, faults, counter)
    http.start()
    yield Served(sim, http, clock, faults, counter, directory)
    http.stop()
    patch.undo()


@pytest.fixture
def cms(cms_served):
    """The module's simulator, back at the fixture (clock, directory, knobs, objects, faults, counts)."""
    cms_served.directory.reset()
    cms_served.clock.set(T0)
    cms_served.faults.clear()
    cms_served.counter.reset()
    cms_served.sim.reset()
    return cms_served


@pytest.fixture
def api(cms) -> Api:
    """A raw-HTTP client with the fixture's API credentials."""
    return Api(cms.url)
