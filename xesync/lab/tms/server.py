"""The TMS Booking API simulator: HTTP, auth, sessions, faults and dispatch (tms-booking-api.md §13).

Both ``.asmx`` endpoints are served (paths case-insensitive, query string ignored); ``GET …?wsdl``
returns the vendor WSDL. The lab clock moves conferences Pending → Ongoing → Finished and, when a CMS
simulator runs, drives it as TMS 15.x does (``cms_driver.py``).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from xesync import events
from xesync.lab.base import ControlError
from xesync.lab.clock import LabClock
from xesync.lab.faults import Fault
from xesync.lab.fixture import DirectoryLink, LabFixture, ServiceLink
from xesync.lab.http import LabRequest, LabResponse, RequestInfo
from xesync.lab.tms import control
from xesync.lab.tms.cms_driver import CmsDriver
from xesync.lab.tms.directory import directory_guids
from xesync.lab.tms.knobs import TmsKnobs, parse_knobs
from xesync.lab.tms.lifecycle import Lifecycle
from xesync.lab.tms.operations import BOOKING, Call
from xesync.lab.tms.remote_setup import REMOTE
from xesync.lab.tms.soap import (
    BOOKING_NS,
    REMOTE_NS,
    Code,
    MalformedRequestError,
    TmsFault,
    default_ns,
    fault_response,
    parse_envelope,
    response,
    sniff_operation,
    version_header,
)
from xesync.lab.tms.store import TmsStore
from xesync.lab.winauth import Account, WindowsAuth

log = structlog.get_logger(__name__)

BOOKING_PATH = "/tms/external/booking/bookingservice.asmx"
REMOTE_PATH = "/tms/external/booking/remotesetup/remotesetupservice.asmx"
WSDL_DIR = Path(__file__).parent / "wsdl"
_ERROR_PAGE = (
    b"<html><head><title>Runtime Error</title></head>"
    b"<body><h1>Server Error in '/tms' Application.</h1></body></html>"
)
FAULT_KINDS = frozenset({"session_expired", "soap_fault", "database_down", "license", "non_soap_500"})


class TmsSimulator:
    """Cisco TMS 15.x Booking API and Remote Setup API on the lab clock.

    :param fixture: users (directory users exist in TMS), rooms (TMS systems) and the ``[tms]`` knobs.
    :param clock: the lab clock.
    :param cms: the CMS simulator's API, when it runs; TMS then schedules calls on it.
    """

    name = "tms"
    fault_kinds = FAULT_KINDS

    def __init__(
        self,
        fixture: LabFixture,
        clock: LabClock,
        cms: ServiceLink | None = None,
        directory: DirectoryLink | None = None,
    ) -> None:
        self.fixture = fixture
        self.clock = clock
        self.cms_link = cms
        self.knobs: TmsKnobs = parse_knobs(fixture.tms)
        self.guids = directory_guids(directory)
        self.store = TmsStore(fixture, self.knobs, self.guids)
        self.driver = self._driver()
        self.lifecycle = Lifecycle(self)
        self.counts: Counter[str] = Counter()
        self._windows: tuple[tuple[str, str], WindowsAuth[str]] | None = None
        clock.subscribe(self.lifecycle.on_tick)

    def _driver(self) -> CmsDriver | None:
        if self.cms_link is None:
            return None
        return CmsDriver(
            self.cms_link, pool_first=self.knobs.cms_pool_first, pool_size=self.knobs.cms_pool_size
        )

    @property
    def dial_domain(self) -> str:
        """The domain of dial-in URIs in ``ConferenceInfoText``."""
        return self.knobs.dial_domain or f"video.{self.fixture.domain}"

    # ---------------------------------------------------------------------------------- LabService

    def classify(self, request: LabRequest) -> RequestInfo:
        """The SOAP operation (or ``wsdl``, ``unknown``); counted per operation here, once per request."""
        service = _service(request.path)
        if request.method == "GET" and service is not None:
            op = "wsdl"
        else:
            op = sniff_operation(request.body) or "unknown"
        self.counts[op] += 1
        return RequestInfo(op)

    @property
    def windows(self) -> WindowsAuth[str]:
        """IIS's authentication for the service user (rebuilt when its knobs change)."""
        key = (self.knobs.username, self.knobs.password)
        if self._windows is None or self._windows[0] != key:
            account = Account(self.knobs.username, self.knobs.password, self.knobs.username)
            auth = WindowsAuth(
                [account], netbios=self.fixture.netbios, dns_domain=self.fixture.domain, realm="tms"
            )
            self._windows = (key, auth)
        return self._windows[1]

    def gate(self, request: LabRequest) -> LabResponse | None:
        """Windows authentication in front of both ``.asmx`` endpoints (``xesync.lab.winauth``)."""
        if _service(request.path) is None:
            return None
        return self.windows.gate(request, schemes=self.knobs.auth, persist=self.knobs.auth_persist)

    def handle(self, request: LabRequest, faults: list[Fault]) -> LabResponse:
        """Answer one request."""
        service = _service(request.path)
        if service is None:
            return LabResponse(status=404, body=b"Not Found", content_type="text/plain")
        if not self._authorised(request):
            return self.windows.challenge(self.knobs.auth)
        if request.method == "GET":
            # ASMX answers ``GET …?wsdl`` with the WSDL. The lab core parses the query without blank
            # values, so the bare ``wsdl`` flag is invisible here: every GET gets the WSDL (instead of
            # the ASMX help page, which no client reads).
            name = "bookingservice.wsdl" if service == "booking" else "remotesetupservice.wsdl"
            return LabResponse(body=(WSDL_DIR / name).read_bytes(), content_type="text/xml; charset=utf-8")
        if request.method != "POST":
            return LabResponse(status=405, body=b"Use SOAP over POST", content_type="text/plain")
        # §10.1: soap:Node is the URL the request was sent to, query included (…asmx?wsdl observed).
        query = f"?{request.raw_query}" if request.raw_query else ""
        node = f"http://{request.header('Host', '127.0.0.1')}{request.path}{query}"
        try:
            env = parse_envelope(request.body)
        except MalformedRequestError as exc:
            soap12 = b"2003/05/soap-envelope" in request.body[:2000]
            fault = TmsFault(self.knobs.code("invalid_request"), f"Unspecified Exception: {exc}")
            return fault_response(fault, soap12=soap12, node=node)
        try:
            return self._answer(env, service, faults, request)
        except _NonSoap500:
            # An IIS/ASP.NET error page instead of a SOAP fault (checklist item 12).
            return LabResponse(status=500, body=_ERROR_PAGE, content_type="text/html; charset=utf-8")
        except TmsFault as fault:
            return fault_response(fault, soap12=env.soap12, node=node)

    def _authorised(self, request: LabRequest) -> bool:
        if request.principal is not None:
            return True
        raw = request.header("Authorization")
        scheme, _, value = raw.partition(" ")
        if scheme.lower() != "basic" or "basic" not in self.knobs.auth:
            return False
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user.casefold() == self.knobs.username.casefold() and password == self.knobs.password

    def _answer(self, env: Any, service: str, faults: list[Fault], request: LabRequest) -> LabResponse:
        ns = BOOKING_NS if service == "booking" else REMOTE_NS
        table = BOOKING if service == "booking" else REMOTE
        handler = table.get(env.operation)
        if handler is None:
            raise TmsFault(self.knobs.code("invalid_request"), f"Unknown operation {env.operation}.")
        presented = env.header_text("ExternalAPIVersionSoapHeader", "ClientSession")
        raw_version = env.header_text("ExternalAPIVersionSoapHeader", "ClientVersionIn")
        try:
            client_version = int(raw_version) if raw_version else 0
        except ValueError:
            client_version = 0
        with self.store.lock:
            now = self.clock.now()
            for fault in faults:
                self._injected(fault, presented, now)
            if service == "booking" and self.knobs.needs_session(env.operation):
                presented = self.store.check_session(presented, now)
            caller = self.store.user_by_name(self.knobs.username) or next(iter(self.store.users.values()))
            call = Call(
                store=self.store,
                env=env,
                caller=caller,
                now=now,
                client_version=min(client_version, self.knobs.api_version),
                dial_domain=self.dial_domain,
            )
            body = handler(call)
        echo = {
            name: env.header_text("ExternalAPIVersionSoapHeader", name)
            for name in ("ClientVersionIn", "ClientIdentifierIn", "ClientLatestNamespaceIn", "NewServiceURL")
        }
        headers = [version_header(ns, echo, presented)]
        if env.operation == "GetDefaultConference":
            from lxml import etree  # noqa: PLC0415

            version = etree.Element(f"{{{BOOKING_NS}}}VersionSoapHeader", nsmap=default_ns(BOOKING_NS))
            etree.SubElement(version, f"{{{BOOKING_NS}}}ConfAPIVersion").text = str(self.knobs.api_version)
            headers.append(version)
        log.debug(events.LAB_REQUEST_HANDLED, service="tms", operation=env.operation, path=request.path)
        return response(soap12=env.soap12, headers=headers, body=body)

    def _injected(self, fault: Fault, presented: str | None, now: datetime) -> None:
        if fault.kind == "session_expired":
            self.store.expire_session(presented)
            raise TmsFault(
                Code.ERR_CLIENT_SESSION_EXPIRED,
                "The client session id is expired.",
                session=self.store.suggest(now),
            )
        if fault.kind == "database_down":
            raise TmsFault(Code.DATABASE_DOWN, "The TMS database is not available.", sender=False)
        if fault.kind == "license":
            raise TmsFault(Code.LICENSE, "Not enough licenses to book the systems.", sender=False)
        if fault.kind == "soap_fault":
            raise TmsFault(
                int(fault.params.get("errorcode", -1)), str(fault.params.get("message", "Injected fault."))
            )
        if fault.kind == "non_soap_500":
            raise _NonSoap500

    # ---------------------------------------------------------------------------------- lab API

    def describe(self, base_url: str) -> dict[str, Any]:
        """The ``tms`` section of the lab's JSON line."""
        return {
            "url": base_url + BOOKING_PATH,
            "remote_setup_url": base_url + REMOTE_PATH,
            "username": self.knobs.username,
            "password": self.knobs.password,
            "auth": list(self.knobs.auth),
            "api_version": self.knobs.api_version,
            "owner_to_cms": self.knobs.owner_to_cms,
            "systems": [s.as_dict() for s in sorted(self.store.systems.values(), key=lambda s: s.system_id)],
        }

    def state(self) -> dict[str, Any]:
        """A summary for ``GET /lab/state``."""
        return control.state(self)

    def reset(self) -> None:
        """Back to the fixture: knobs, users, systems, conferences, transactions, sessions, counts."""
        with self.store.lock:
            self.knobs = parse_knobs(self.fixture.tms)
            self.store = TmsStore(self.fixture, self.knobs, self.guids)
            if self.driver is not None:
                self.driver.close()
            self.driver = self._driver()
            self.counts.clear()

    def control(self, action: str, method: str, body: Any) -> Any:
        """``METHOD /lab/tms/<action>``; see :mod:`xesync.lab.tms.control`."""
        return control.route(self, action, method, body)

    def set_knobs(self, changes: dict[str, Any]) -> TmsKnobs:
        """Apply knob changes to the simulator and its store.

        :raises ControlError: for an unknown knob or a bad value.
        """
        try:
            knobs = self.knobs.updated(changes)
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None
        with self.store.lock:
            self.knobs = knobs
            self.store.knobs = knobs
            if self.driver is not None and {"cms_pool_first", "cms_pool_size"} & set(changes):
                self.driver.pool_first, self.driver.pool_size = knobs.cms_pool_first, knobs.cms_pool_size
        return knobs


class _NonSoap500(TmsFault):
    def __init__(self) -> None:
        super().__init__(0, "non-SOAP 500")


def _service(path: str) -> str | None:
    low = path.lower().rstrip("/")
    if low == BOOKING_PATH:
        return "booking"
    if low == REMOTE_PATH:
        return "remote"
    return None
