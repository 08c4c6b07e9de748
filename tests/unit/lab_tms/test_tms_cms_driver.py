"""The TMS → CMS driver's wire sequence against a recording CMS stand-in (cms-api.md §4.1).

The stand-in answers the documented CMS REST shapes (POST 200 + Location, collections with ``total``,
a page cap below ``limit``) and records every request, so the tests check what TMS sends.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

import pytest

from xesync.lab.faults import FaultBook, RequestCounter
from xesync.lab.fixture import ServiceLink
from xesync.lab.http import LabHTTPServer, LabRequest, LabResponse, RequestInfo
from xesync.lab.tms.cms_driver import POOL_PREFIX, CmsDriveError, CmsDriver, MeetingStart


class RecordingCms:
    """Just enough of the CMS API: coSpaces, calls, callLegs, profiles, bulk pools; page cap 3."""

    name = "cms"

    def __init__(self, *, bulk_works: bool = True):
        self.bulk_works = bulk_works
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.spaces: dict[str, dict[str, str]] = {}
        self.calls: dict[str, str] = {}
        self.param_sets: dict[str, dict[str, str]] = {}

    def classify(self, request: LabRequest) -> RequestInfo:
        return RequestInfo(request.path)

    def handle(self, request: LabRequest, faults) -> LabResponse:  # noqa: ARG002, C901, PLR0911, PLR0912 - a dispatch table
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        path = request.path.removeprefix("/api/v1")
        self.log.append((request.method, path, form))
        parts = [p for p in path.split("/") if p]
        new = str(uuid.uuid4())
        if request.method == "POST":
            if parts[0] == "cospaceBulkParameterSets" or parts[0] == "cospaceBulkSyncs":
                if not self.bulk_works:
                    return LabResponse(
                        status=400, body=b"<failureDetails><unrecognisedObject/></failureDetails>"
                    )
                if parts[0] == "cospaceBulkParameterSets":
                    self.param_sets[new] = form
                else:
                    params = self.param_sets[form["cospaceBulkParameterSet"]]
                    for i in range(int(params["startIndex"]), int(params["endIndex"]) + 1):
                        name = params["coSpaceNameMapping"].replace("$index$", str(i))
                        self.spaces[str(uuid.uuid4())] = {
                            "name": name,
                            "nonMemberAccess": params["nonMemberAccess"],
                        }
            elif parts[0] == "coSpaces":
                self.spaces[new] = dict(form)
            elif parts[0] == "calls" and len(parts) == 1:
                self.calls[new] = form["coSpace"]
            canonical = {"calls": "calls", "coSpaces": "coSpaces"}.get(parts[0], parts[0])
            if len(parts) == 3:
                canonical = "callLegs"
            return LabResponse(headers=[("Location", f"/api/v1/{canonical}/{new}")])
        if request.method == "PUT":
            space = self.spaces[parts[1]]
            for key, value in form.items():
                if value == "":
                    space.pop(key, None)
                elif key != "regenerateSecret":
                    space[key] = value
            return LabResponse()
        if request.method == "DELETE":
            self.calls.pop(parts[1], None)
            return LabResponse()
        if parts[0] == "coSpaces":
            items = [
                (i, f'<coSpace id="{i}"><name>{s["name"]}</name></coSpace>') for i, s in self.spaces.items()
            ]
            return self._page("coSpaces", items, request)
        if parts[0] == "calls":
            items = [(i, f'<call id="{i}"><coSpace>{s}</coSpace></call>') for i, s in self.calls.items()]
            return self._page("calls", items, request)
        if parts[0] == "cospaceBulkSyncs":
            return LabResponse(
                body=b'<?xml version="1.0"?><cospaceBulkSync><status>complete</status></cospaceBulkSync>'
            )
        return LabResponse(body=b'<?xml version="1.0"?><status/>')

    def _page(self, plural, items, request):
        offset = int(request.query_value("offset") or 0)
        page = items[offset : offset + 3]
        body = "".join(x for _, x in page)
        return LabResponse(
            body=f'<?xml version="1.0"?><{plural} total="{len(items)}">{body}</{plural}>'.encode()
        )


@pytest.fixture
def cms():
    """A recording CMS stand-in on loopback, and a driver pointed at it."""
    fake = RecordingCms()
    server = LabHTTPServer(fake, FaultBook(), RequestCounter())
    server.start()
    driver = CmsDriver(
        ServiceLink(url=server.base_url + "/api/v1", username="api", password="x"), pool_first=1, pool_size=5
    )
    yield fake, driver, server
    server.stop()


MEETING = MeetingStart(
    conference_id=1001,
    title="Weekly sync",
    passcode="4711",
    numeric_id=990001,
    remote_parties=("room-oslo@lab.example", "room-bergen@lab.example"),
    owner_fields={"ownerJid": "alice@lab.example"},
)


def test_pool_is_created_with_a_bulk_parameter_set_and_sync(cms):
    """The pool is TMS_Scheduled_Meeting_<n>, closed to non-members, built with a polled bulk sync."""
    fake, driver, _ = cms
    pool = driver.ensure_pool()
    assert sorted(pool) == [1, 2, 3, 4, 5]
    params = next(form for method, path, form in fake.log if path == "/cospaceBulkParameterSets")
    assert params["coSpaceNameMapping"] == f"{POOL_PREFIX}$index$"
    assert params["nonMemberAccess"] == "false"
    assert (params["startIndex"], params["endIndex"]) == ("1", "5")
    assert params["coSpaceUriMapping"] == ""
    assert ("GET", next(p for m, p, _ in fake.log if p.startswith("/cospaceBulkSyncs/")), {}) in fake.log
    again = driver.ensure_pool()
    assert again == pool
    assert sum(1 for _, path, _ in fake.log if path == "/cospaceBulkParameterSets") == 1


def test_pool_falls_back_to_single_spaces_when_bulk_fails(cms):
    """Without the bulk API the driver creates each pool space with POST /coSpaces."""
    fake, driver, _ = cms
    fake.bulk_works = False
    pool = driver.ensure_pool()
    assert sorted(pool) == [1, 2, 3, 4, 5]
    posted = [form["name"] for method, path, form in fake.log if method == "POST" and path == "/coSpaces"]
    assert posted == [f"{POOL_PREFIX}{i}" for i in range(1, 6)]


def test_start_renames_opens_and_calls_the_lowest_free_space(cms):
    """Start PUTs name, nonMemberAccess, passcode, secret, owner, then POSTs the call and a leg per room."""
    fake, driver, _ = cms
    record = driver.start(MEETING)
    assert record["pool_index"] == 1
    put = next(form for method, path, form in fake.log if method == "PUT")
    assert put["name"] == "Weekly sync"
    assert put["nonMemberAccess"] == "true"
    assert put["passcode"] == "4711"
    assert uuid.UUID(put["secret"])
    assert put["ownerJid"] == "alice@lab.example"
    calls = [form for method, path, form in fake.log if method == "POST" and path == "/calls"]
    assert calls == [{"coSpace": record["space_id"]}]
    legs = [
        form["remoteParty"]
        for method, path, form in fake.log
        if path.endswith("/callLegs") and method == "POST"
    ]
    assert legs == list(MEETING.remote_parties)
    second = driver.start(
        MeetingStart(conference_id=1002, title="Other", passcode="1", numeric_id=2, remote_parties=())
    )
    assert second["pool_index"] == 2


def test_end_resets_the_space_without_clearing_the_owner_and_deletes_the_call(cms):
    """End PUTs the pool name back, closes the space, new secret, masked PIN; ownerJid stays."""
    fake, driver, _ = cms
    record = driver.start(MEETING)
    driver.end(record, clear_owner=False)
    reset = [form for method, path, form in fake.log if method == "PUT"][-1]
    assert reset == {
        "name": f"{POOL_PREFIX}1",
        "nonMemberAccess": "false",
        "regenerateSecret": "true",
        "passcode": "",
    }
    assert ("DELETE", f"/calls/{record['call_id']}", {}) in fake.log
    assert fake.spaces[record["space_id"]]["ownerJid"] == "alice@lab.example"
    record = driver.start(MEETING)
    driver.end(record, clear_owner=True)
    assert "ownerJid" not in fake.spaces[record["space_id"]]


def test_unreachable_cms_raises_a_drive_error():
    """A CMS that does not answer is a CmsDriveError, not a crash of the clock thread."""
    driver = CmsDriver(
        ServiceLink(url="http://127.0.0.1:9/api/v1", username="a", password="b"), pool_first=1, pool_size=1
    )
    with pytest.raises(CmsDriveError):
        driver.ensure_pool()
