"""TMS → CMS: drive a Cisco Meeting Server over its REST API the way TMS 15.x does (cms-api.md §4.1).

Only the documented CMS API is used, over HTTP: Basic auth, form-encoded POST/PUT, the new object's id
from the last segment of ``Location``, paging with ``offset += len(items)`` until ``total``.

- Pool: ``cospaceBulkParameterSets`` + ``cospaceBulkSyncs`` (polled until ``complete``) create spaces
  ``TMS_Scheduled_Meeting_<n>`` with ``nonMemberAccess=false``; individual ``POST /coSpaces`` is the
  fallback when the bulk API answers an error.
- Start: the lowest-numbered pool space without a call is renamed and opened (``PUT``), then
  ``POST /calls coSpace=…`` and one ``POST /calls/<id>/callLegs remoteParty=…`` per room.
- End: the space is reset (``ownerJid`` left alone unless the knob says otherwise, §4.1 item 8) and the
  call is deleted.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
import structlog

from xesync import events
from xesync.lab.fixture import ServiceLink
from xesync.xmlsafe import UnsafeXmlError, parse

log = structlog.get_logger(__name__)

POOL_PREFIX = "TMS_Scheduled_Meeting_"
TIMEOUT_S = 5.0
MAX_BULK_POLLS = 50


class CmsDriveError(Exception):
    """CMS answered an error (or nothing) to a request the driver needed."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        self.method, self.path, self.status, self.detail = method, path, status, detail
        super().__init__(f"{method} {path}: {status} {detail}")


@dataclass(slots=True, frozen=True)
class MeetingStart:
    """What the driver needs to start one sitting on CMS."""

    conference_id: int
    title: str
    passcode: str
    numeric_id: int
    remote_parties: tuple[str, ...]
    owner_fields: dict[str, str] = field(default_factory=dict)
    uri_fields: dict[str, str] = field(default_factory=dict)


class CmsDriver:
    """Talks to one CMS like TMS does; thread-safe (the lab clock calls it from its ticker)."""

    def __init__(self, link: ServiceLink, *, pool_first: int, pool_size: int) -> None:
        self.link = link
        self.pool_first = pool_first
        self.pool_size = pool_size
        self._lock = threading.Lock()
        # One HTTP session per start/end/pool step, closed after it: the lab has no stop hook for
        # simulators, and a long-lived session would leave sockets open after the lab stops.
        self._session: requests.Session | None = None
        self.pool: dict[int, str] = {}  # pool index -> coSpace id
        self.calls = 0

    def close(self) -> None:
        """Release any HTTP connection still open."""
        if self._session is not None:
            self._session.close()
            self._session = None

    @contextlib.contextmanager
    def _connected(self) -> Iterator[None]:
        with self._lock, requests.Session() as session:
            session.auth = (self.link.username, self.link.password)
            self._session = session
            try:
                yield
            finally:
                self._session = None

    # ---------------------------------------------------------------------------------- HTTP

    def _url(self, path: str) -> str:
        return self.link.url.rstrip("/") + path

    def _request(
        self, method: str, path: str, data: dict[str, str] | None = None, **params: Any
    ) -> requests.Response:
        if self._session is None:  # pragma: no cover - every caller opens one
            raise CmsDriveError(method, path, 0, "not connected")
        try:
            resp = self._session.request(
                method, self._url(path), data=data, params=params or None, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            raise CmsDriveError(method, path, 0, type(exc).__name__) from None
        self.calls += 1
        if resp.status_code != 200:  # noqa: PLR2004 - CMS answers 200 to every success
            raise CmsDriveError(method, path, resp.status_code, resp.text[:200])
        return resp

    def _post(self, path: str, data: dict[str, str]) -> str:
        resp = self._request("POST", path, data)
        location = resp.headers.get("Location", "")
        if not location:
            raise CmsDriveError("POST", path, resp.status_code, "no Location header")
        return location.rstrip("/").rsplit("/", 1)[-1]

    def _xml(self, path: str, **params: Any) -> Any:
        resp = self._request("GET", path, **params)
        try:
            return parse(resp.content)
        except UnsafeXmlError as exc:
            raise CmsDriveError("GET", path, resp.status_code, str(exc)) from None

    def _collection(self, path: str, **params: Any) -> list[Any]:
        items: list[Any] = []
        while True:
            root = self._xml(path, offset=len(items), limit=50, **params)
            page = [c for c in root if isinstance(c.tag, str)]
            items.extend(page)
            total = int(root.get("total", len(items)))
            if not page or len(items) >= total:
                return items

    # ---------------------------------------------------------------------------------- pool

    def ensure_pool(self) -> dict[int, str]:
        """Find or create the ``TMS_Scheduled_Meeting_<n>`` pool; returns index → coSpace id."""
        with self._connected():
            return self._ensure_pool()

    def _ensure_pool(self) -> dict[int, str]:
        self._scan_pool()
        wanted = range(self.pool_first, self.pool_first + self.pool_size)
        if all(i in self.pool for i in wanted):
            return self.pool
        try:
            self._bulk_create()
        except CmsDriveError as exc:
            log.warning(events.LAB_TMS_CMS_FAILED, step="bulk_pool", error=str(exc))
        self._scan_pool()
        for index in wanted:
            if index not in self.pool:
                self.pool[index] = self._post(
                    "/coSpaces", {"name": f"{POOL_PREFIX}{index}", "nonMemberAccess": "false"}
                )
        return self.pool

    def _scan_pool(self) -> None:
        found: dict[int, str] = {}
        for item in self._collection("/coSpaces", filter=POOL_PREFIX):
            name = _child_text(item, "name") or ""
            suffix = name[len(POOL_PREFIX) :] if name.startswith(POOL_PREFIX) else ""
            if suffix.isdigit() and item.get("id"):
                found.setdefault(int(suffix), str(item.get("id")))
        # A pool space renamed for a running meeting keeps its slot.
        for index, space in self.pool.items():
            found.setdefault(index, space)
        self.pool = found

    def _bulk_create(self) -> None:
        self._request("GET", "/system/status")
        # The traced registration posts these two profiles (cms-api.md §2.6); a CMS that refuses one
        # of their fields still gets a pool without them.
        profiles: dict[str, str] = {}
        try:
            profiles["callProfile"] = self._post(
                "/callProfiles", {"participantLimit": "1000", "messageBoardEnabled": "false"}
            )
        except CmsDriveError:
            profiles["callProfile"] = self._post("/callProfiles", {"participantLimit": "1000"})
        profiles["callLegProfile"] = self._post(
            "/callLegProfiles",
            {
                "defaultLayout": "telepresence",
                "changeLayoutAllowed": "true",
                "presentationContributionAllowed": "true",
                "presentationViewingAllowed": "true",
                "muteSelfAllowed": "true",
                "videoMuteSelfAllowed": "true",
            },
        )
        params = {
            "startIndex": str(self.pool_first),
            "endIndex": str(self.pool_first + self.pool_size - 1),
            "coSpaceUriMapping": "",
            "coSpaceNameMapping": f"{POOL_PREFIX}$index$",
            "coSpaceCallIdMapping": "",
            "nonMemberAccess": "false",
            **profiles,
        }
        param_set = self._post("/cospaceBulkParameterSets", params)
        sync = self._post("/cospaceBulkSyncs", {"cospaceBulkParameterSet": param_set})
        for _ in range(MAX_BULK_POLLS):
            status = _child_text(self._xml(f"/cospaceBulkSyncs/{sync}"), "status") or ""
            if status == "complete":
                return
            if status.startswith("failed"):
                raise CmsDriveError("GET", f"/cospaceBulkSyncs/{sync}", 200, status)
            threading.Event().wait(0.02)
        raise CmsDriveError("GET", f"/cospaceBulkSyncs/{sync}", 200, "still not complete")

    # ---------------------------------------------------------------------------------- meetings

    def start(self, meeting: MeetingStart) -> dict[str, Any]:
        """Open a pool space for a sitting and start its call; returns what was done."""
        with self._connected():
            self._request("GET", "/system/status")
            pool = self._ensure_pool()
            busy = {_child_text(c, "coSpace") for c in self._collection("/calls")}
            index = next((i for i in sorted(pool) if pool[i] not in busy), None)
            if index is None:
                raise CmsDriveError("GET", "/coSpaces", 200, "no free pool space")
            space = pool[index]
            opened = {
                "name": meeting.title,
                "nonMemberAccess": "true",
                "passcode": meeting.passcode,
                "secret": str(uuid.uuid4()),
                **meeting.uri_fields,
            }
            owner_error = None
            fields = {**opened, **meeting.owner_fields}
            try:
                self._request("PUT", f"/coSpaces/{space}", fields)
            except CmsDriveError as exc:
                if not meeting.owner_fields or exc.status != 400:  # noqa: PLR2004
                    raise
                # The owner is not a CMS user: TMS still runs the meeting, without an owner (SMP).
                owner_error, fields = exc.detail, opened
                self._request("PUT", f"/coSpaces/{space}", opened)
            call = self._post("/calls", {"coSpace": space})
            self._request("GET", "/callLegs")
            legs = [
                self._post(f"/calls/{call}/callLegs", {"remoteParty": party})
                for party in meeting.remote_parties
            ]
            return {
                "pool_index": index,
                "space_id": space,
                "call_id": call,
                "legs": legs,
                "owner": meeting.owner_fields,
                "owner_error": owner_error,
                "fields": fields,
            }

    def extend(self, record: dict[str, Any]) -> None:
        """Extend: PUT the start's fields again; CMS has no timeout field (cms-api.md §4.1 item 4)."""
        with self._connected():
            self._request("PUT", f"/coSpaces/{record['space_id']}", dict(record.get("fields") or {}))

    def end(self, record: dict[str, Any], *, clear_owner: bool) -> None:
        """Reset the pool space and delete the call (cms-api.md §4.1 item 5)."""
        with self._connected():
            reset = {
                "name": f"{POOL_PREFIX}{record['pool_index']}",
                "nonMemberAccess": "false",
                "regenerateSecret": "true",
                "passcode": "",
            }
            if clear_owner:
                reset["ownerJid"] = ""
                reset.update(dict.fromkeys(record.get("owner") or {}, ""))
            try:
                self._request("PUT", f"/coSpaces/{record['space_id']}", reset)
            finally:
                self._request("DELETE", f"/calls/{record['call_id']}")


def _child_text(element: Any, name: str) -> str | None:
    for child in element:
        if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == name:
            return str(child.text or "")
    return None
