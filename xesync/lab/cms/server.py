"""The Cisco Meeting Server API simulator: authentication, routing and failures (cms-api.md §1, §5).

It serves ``/api/v1`` behind :class:`xesync.lab.http.LabHTTPServer`: HTTP Basic (401 with
``WWW-Authenticate: Basic realm="acano"``), case-insensitive paths, form bodies, XML answers, and every
error as ``failureDetails``. Requests are counted under their canonical template (``/coSpaces/{id}``),
which is also what a fault's ``operation`` prefix matches (e.g. ``"operation": "/calls"``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from xesync.lab.base import ControlError
from xesync.lab.clock import LabClock
from xesync.lab.cms import access, calls, config_api, spaces, syncs, system
from xesync.lab.cms.control import control
from xesync.lab.cms.knobs import CmsKnobs, parse_knobs
from xesync.lab.cms.routing import Req, Route, Router
from xesync.lab.cms.seed import seed
from xesync.lab.cms.state import CmsState
from xesync.lab.cms.wire import CmsFailure
from xesync.lab.faults import Fault
from xesync.lab.fixture import DirectoryLink, LabFixture
from xesync.lab.http import LabRequest, LabResponse, RequestInfo

log = structlog.get_logger(__name__)

UNRECOGNISED = "unrecognised"


class CmsSimulator:
    """A simulated Call Bridge with its API, LDAP sync and licence engine.

    :param fixture: the lab fixture; its ``[cms]`` table holds the knobs (:mod:`xesync.lab.cms.knobs`).
    :param clock: the lab clock (call durations, licence snapshots).
    :param directory: the lab's directory; when given, the simulator is configured to sync from it and
        syncs once at start (knob ``sync_on_start``).
    """

    name = "cms"
    # ``failure``: answer with ``status`` (default 503) and ``<failureDetails><code/></failureDetails>``
    # (``code``, default ``databaseNotReady``; optional ``parameter``/``error`` attributes).
    fault_kinds = frozenset({"failure"})

    def __init__(self, fixture: LabFixture, clock: LabClock, directory: DirectoryLink | None = None) -> None:
        self.fixture = fixture
        self.clock = clock
        self.directory = directory
        self._fixture_knobs = parse_knobs(fixture.cms)
        self.router = Router(
            [
                *config_api.routes(),
                *spaces.routes(),
                *access.routes(),
                *calls.routes(),
                *system.routes(),
                *syncs.routes(),
            ]
        )
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self.db = self._fresh()
        clock.subscribe(self._on_clock)

    def _on_clock(self, now: datetime) -> None:
        # A clock set back before the bridge "started" (a lab reset to the fixture's time) restarts
        # uptime and the 5-minute licence snapshots from there.
        db = self.db
        with db.lock:
            db.started = min(db.started, now)

    def _fresh(self) -> CmsState:
        state = CmsState(
            replace(self._fixture_knobs, page_caps=dict(self._fixture_knobs.page_caps)), self.clock
        )
        state.domain = self.fixture.domain
        with state.lock:
            seed(state, self.fixture.domain, self.directory)
        if self.directory is not None and state.knobs.sync_on_start:
            syncs.execute(state, None, None)
        return state

    @property
    def knobs(self) -> CmsKnobs:
        """The knobs in force (the control API may have changed them)."""
        return self.db.knobs

    # ------------------------------------------------------------------------------ LabService

    def _route(self, request: LabRequest) -> tuple[Route, list[str]] | CmsFailure:
        segments = [s for s in request.path.split("/") if s]
        if len(segments) < 2 or segments[0].lower() != "api":  # noqa: PLR2004
            return CmsFailure(404, self.knobs.unrecognised_object)
        if segments[1].lower() != "v1":
            return CmsFailure(400, "invalidVersion")
        found = self.router.find(segments[2:])
        if found is None:
            return CmsFailure(404, self.knobs.unrecognised_object)
        return found

    def classify(self, request: LabRequest) -> RequestInfo:
        """The canonical path template, e.g. ``/calls/{id}/callLegs`` (never raises)."""
        try:
            found = self._route(request)
        except Exception:  # noqa: BLE001 - classify must never raise
            return RequestInfo(UNRECOGNISED)
        return RequestInfo(UNRECOGNISED if isinstance(found, CmsFailure) else found[0].operation)

    def handle(self, request: LabRequest, faults: list[Fault]) -> LabResponse:
        """Answer one API request."""
        for fault in faults:
            if fault.kind == "failure":
                params = {k: str(v) for k, v in fault.params.items() if k in {"parameter", "error"}}
                code = str(fault.params.get("code", "databaseNotReady"))
                return CmsFailure(int(fault.params.get("status", 503)), code, **params).response()
        if not self._authorised(request):
            return LabResponse(status=401, headers=[("WWW-Authenticate", 'Basic realm="acano"')])
        found = self._route(request)
        if isinstance(found, CmsFailure):
            self._count(request.method, UNRECOGNISED)
            return found.response()
        route, ids = found
        self._count(request.method, route.operation)
        handler = route.methods.get(request.method.upper())
        if handler is None:
            return CmsFailure(400, "invalidOperation").response()
        req = Req(method=request.method.upper(), query=request.query, body=request.body)
        with self.db.lock:
            try:
                return handler(self.db, req, ids)
            except CmsFailure as failure:
                return failure.response()

    def _authorised(self, request: LabRequest) -> bool:
        header = request.header("Authorization")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.knobs.username.encode()) and hmac.compare_digest(
            password.encode(), self.knobs.password.encode()
        )

    def _count(self, method: str, operation: str) -> None:
        with self._counts_lock:
            self._counts[f"{method.upper()} {operation}"] += 1

    def request_counts(self) -> dict[str, int]:
        """Requests since the last reset per ``METHOD /template`` (e.g. ``POST /calls``)."""
        with self._counts_lock:
            return dict(self._counts)

    def clear_request_counts(self) -> None:
        """Forget the per-method counts."""
        with self._counts_lock:
            self._counts.clear()

    # ------------------------------------------------------------------------------ Simulator

    def describe(self, base_url: str) -> dict[str, Any]:
        """The ``cms`` section of the lab's JSON line."""
        return {
            "url": f"{base_url}/api/v1",
            "username": self.knobs.username,
            "password": self.knobs.password,
            "version": self.knobs.cms_version,
            "host_id": self.knobs.host_id,
        }

    def state(self) -> dict[str, Any]:
        """``GET /lab/state``'s CMS part: spaces, users and calls with their licences."""
        state = self.db
        with state.lock:
            return {
                "version": state.knobs.cms_version,
                "users": len(state.users),
                "licensed_users": sum(1 for u in state.users.values() if state.has_license(u)),
                "spaces": len(state.spaces),
                "calls": [
                    {"id": c.id, "name": c.name, "coSpace": c.cospace, **c.grant.as_dict()}
                    for c in state.calls.values()
                ],
                "ended_calls": len(state.ended_calls),
                "last_ldap_sync": state.last_ldap_sync,
            }

    def reset(self) -> None:
        """Back to the fixture: knobs, objects, users (re-synced), calls and counts."""
        self.db = self._fresh()
        self.clear_request_counts()

    def control(self, action: str, method: str, body: Any) -> Any:
        """``METHOD /lab/cms/<action>`` (see :mod:`xesync.lab.cms.control`)."""
        try:
            return control(self, action, method.upper(), body)
        except CmsFailure as failure:
            raise ControlError(failure.status, f"{failure.code} {failure.attrs or ''}".strip()) from None
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
