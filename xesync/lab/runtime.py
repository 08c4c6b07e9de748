"""The lab runtime: starts the directory and the simulators, wires them, and serves the control API.

Start order follows the dependencies: the directory (a real ``slapd`` when installed, else the fixture's
LDIF on ldap3's mock strategy) → CMS (which syncs its users from the directory) → TMS (which drives
CMS over HTTP, like TMS 15.x does) → EWS → the control server. The same object backs
``xesync lab serve``, the demo, the tests and the benchmarks (``shared/spec/lab-contract.md``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from xesync import events
from xesync.directory import Directory
from xesync.lab.base import ControlError, Simulator
from xesync.lab.clock import LabClock, Ticker
from xesync.lab.faults import FaultBook, RequestCounter, parse_fault
from xesync.lab.fixture import DirectoryLink, LabFixture, ServiceLink, load_fixture
from xesync.lab.http import LabHTTPServer, LabRequest, LabResponse, RequestInfo, check_loopback

log = structlog.get_logger(__name__)

SERVICES = ("ews", "tms", "cms")


class Lab:
    """The running lab.

    :param fixture: who and what the simulators start with (default: the shipped ``lab.toml``).
    :param host: a loopback address to bind.
    :param only: which simulators to run.
    :param directory: whether to serve the fixture's directory.
    """

    def __init__(
        self,
        fixture: LabFixture | None = None,
        *,
        host: str = "127.0.0.1",
        only: Iterable[str] = SERVICES,
        directory: bool = True,
    ) -> None:
        self.host = check_loopback(host)
        self.fixture = fixture or load_fixture()
        self.only = tuple(s for s in SERVICES if s in set(only))
        unknown = set(only) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown simulator(s) {sorted(unknown)}; choose from {list(SERVICES)}")
        self.want_directory = directory and self.fixture.directory is not None
        self.clock = LabClock(self.fixture.clock_start, frozen=self.fixture.clock_frozen)
        self.faults = FaultBook()
        self.requests = RequestCounter()
        self.ews: Simulator | None = None
        self.tms: Simulator | None = None
        self.cms: Simulator | None = None
        self.directory: DirectoryLink | None = None
        self.directory_kind: str | None = None
        self._servers: dict[str, LabHTTPServer] = {}
        self._control: LabHTTPServer | None = None
        self._ticker = Ticker(self.clock)
        self._stack = contextlib.ExitStack()

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start everything; on a failure, stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        log.info(events.LAB_STARTED, simulators=list(self.only), directory=self.directory_kind)
        return self

    def _start(self) -> None:
        if self.want_directory:
            self.directory = self._start_directory()
        if "cms" in self.only:
            from xesync.lab.cms import CmsSimulator  # noqa: PLC0415 - each simulator loads on demand

            self.cms = CmsSimulator(self.fixture, self.clock, directory=self.directory)
            self._serve(self.cms)
        if "tms" in self.only:
            from xesync.lab.tms import TmsSimulator  # noqa: PLC0415

            cms_link = None
            if self.cms is not None:
                section = self.cms.describe(self._servers["cms"].base_url)
                cms_link = ServiceLink(
                    url=section["url"], username=section["username"], password=section["password"]
                )
            self.tms = TmsSimulator(self.fixture, self.clock, cms=cms_link, directory=self.directory)
            self._serve(self.tms)
        if "ews" in self.only:
            from xesync.lab.ews import EwsSimulator  # noqa: PLC0415

            self.ews = EwsSimulator(self.fixture, self.clock)
            self._serve(self.ews)
        control = _ControlService(self)
        self._control = LabHTTPServer(control, FaultBook(), RequestCounter(), host=self.host)
        self._control.start()
        self._stack.callback(self._control.stop)
        self._ticker.start()
        self._stack.callback(self._ticker.stop)

    def _serve(self, simulator: Simulator) -> None:
        port = _fixture_port(self.fixture, simulator.name)
        server = LabHTTPServer(simulator, self.faults, self.requests, host=self.host, port=port)
        server.start()
        self._stack.callback(server.stop)
        self._servers[simulator.name] = server

    def _start_directory(self) -> DirectoryLink:
        spec = self.fixture.directory
        if spec is None:  # pragma: no cover - guarded by want_directory
            raise RuntimeError("no directory in the fixture")
        use_slapd = spec.serve == "slapd" or (spec.serve == "auto" and _have_slapd())
        if use_slapd:
            from xesync.lab.slapd import SlapdServer  # noqa: PLC0415

            slapd = SlapdServer(
                ldif=spec.ldif, base_dn=spec.base_dn, bind_dn=spec.bind_dn, password=spec.password
            )
            self._stack.enter_context(slapd)
            self.directory_kind = "slapd"
            url = slapd.url
        else:
            self.directory_kind = "mock"
            url = spec.ldif.as_uri().replace("file://", "ldif://", 1)
        return DirectoryLink(
            url=url,
            bind_dn=spec.bind_dn,
            password=spec.password,
            base_dn=spec.base_dn,
            pmp_group_dn=spec.pmp_group_dn,
        )

    def stop(self) -> None:
        """Stop every server, the ticker and the directory (idempotent)."""
        self._stack.close()
        self._servers.clear()
        log.info(events.LAB_STOPPED)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------- queries

    def simulators(self) -> dict[str, Simulator]:
        """The running simulators by name."""
        sims = {"ews": self.ews, "tms": self.tms, "cms": self.cms}
        return {name: sim for name, sim in sims.items() if sim is not None}

    def base_url(self, service: str) -> str:
        """``http://127.0.0.1:PORT`` of a running simulator."""
        return self._servers[service].base_url

    @property
    def control_url(self) -> str:
        """The control API's root (``…/lab``)."""
        if self._control is None:
            raise RuntimeError("the lab is not running")
        return f"{self._control.base_url}/lab"

    def directory_port(self, **overrides: Any) -> Directory:
        """xesync's :class:`~xesync.directory.Directory` over the running lab's directory; close it after use.

        On slapd this is the production :class:`~xesync.adapters.ldap.LdapDirectory`; without slapd
        it is :class:`~xesync.lab.ldif_directory.LdifDirectory`, the same resolver on the fixture's
        LDIF. ``overrides`` replace keys of :func:`~xesync.lab.ldif_directory.lab_ldap_config`.

        :raises RuntimeError: the lab serves no directory (``directory=False``, or ``serve = "off"``).
        """
        from xesync.lab.ldif_directory import LdifDirectory, lab_ldap_config  # noqa: PLC0415 - ldap3

        spec = self.fixture.directory
        if self.directory is None or spec is None:
            raise RuntimeError("the lab serves no directory (started with directory=False, or serve = 'off')")
        cfg = lab_ldap_config(self.directory, self.fixture, **overrides)
        if self.directory_kind == "slapd":
            from xesync.adapters.ldap import LdapDirectory  # noqa: PLC0415

            return LdapDirectory(cfg)
        return LdifDirectory(spec.ldif, cfg)

    def describe(self) -> dict[str, Any]:
        """The one JSON line of ``xesync lab serve`` (lab-contract.md)."""
        out: dict[str, Any] = {}
        for name, sim in self.simulators().items():
            out[name] = sim.describe(self._servers[name].base_url)
        if self.directory is not None:
            out["ldap"] = {
                "url": self.directory.url,
                "bind_dn": self.directory.bind_dn,
                "password": self.directory.password,
                "base_dn": self.directory.base_dn,
                "pmp_group_dn": self.directory.pmp_group_dn,
                "kind": self.directory_kind,
            }
        out["control"] = {"url": self.control_url}
        return out

    def state(self) -> dict[str, Any]:
        """``GET /lab/state``."""
        out: dict[str, Any] = {"clock": self.clock.now().isoformat(), "faults": self.faults.active()}
        for name, sim in self.simulators().items():
            out[name] = sim.state()
        return out

    # ---------------------------------------------------------------------------------- steering

    def inject(self, **spec: Any) -> None:
        """Inject a fault, as ``POST /lab/faults`` does."""
        kinds = {name: sim.fault_kinds for name, sim in self.simulators().items()}
        fault = parse_fault(spec, kinds)
        self.faults.add(fault)
        log.info(events.LAB_FAULT_INJECTED, **fault.as_dict())

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.faults.clear()

    def reset(self) -> None:
        """Back to the fixture: simulators, faults, request counts and the clock."""
        self.faults.clear()
        self.requests.reset()
        for sim in self.simulators().values():
            sim.reset()
        if self.fixture.clock_start is not None:
            self.clock.set(self.fixture.clock_start)


def _have_slapd() -> bool:
    return shutil.which("slapd") is not None or Path("/usr/sbin/slapd").exists()


def _fixture_port(fixture: LabFixture, name: str) -> int:
    table = {"ews": fixture.ews, "tms": fixture.tms, "cms": fixture.cms}[name]
    port = table.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:  # noqa: PLR2004
        raise ValueError(f"{fixture.path}: {name}.port must be a port number (0 = any free port)")
    return port


# ------------------------------------------------------------------------------------ control API


class _ControlService:
    """JSON over HTTP under ``/lab`` (lab-contract.md, "Control API")."""

    name = "control"

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def classify(self, request: LabRequest) -> RequestInfo:
        return RequestInfo(request.path)

    def handle(self, request: LabRequest, faults: list[Any]) -> LabResponse:  # noqa: ARG002
        try:
            body = json.loads(request.body) if request.body.strip() else None
        except ValueError:
            return _json({"error": "body must be JSON"}, 400)
        try:
            return _json(self._route(request, body))
        except ControlError as exc:
            return _json({"error": exc.message}, exc.status)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)

    def _route(self, request: LabRequest, body: Any) -> Any:
        lab = self.lab
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0].lower() != "lab":
            raise ControlError(404, "the control API lives under /lab")
        route = (request.method, "/".join(parts[1:2]).lower())
        if route == ("GET", "state"):
            return lab.state()
        if route == ("POST", "clock"):
            return self._clock(body)
        if route == ("POST", "faults"):
            if not isinstance(body, dict):
                raise ControlError(400, "body must be a JSON object")
            lab.inject(**body)
            return {"faults": lab.faults.active()}
        if route == ("DELETE", "faults"):
            lab.clear_faults()
            return {"faults": []}
        if route == ("GET", "faults"):
            return {"faults": lab.faults.active()}
        if route == ("GET", "requests"):
            return lab.requests.snapshot(request.query_value("service"))
        if route == ("POST", "reset"):
            lab.reset()
            return {"reset": True}
        sims = lab.simulators()
        if len(parts) >= 3 and parts[1].lower() in sims:  # noqa: PLR2004
            return sims[parts[1].lower()].control("/".join(parts[2:]), request.method, body)
        raise ControlError(404, f"no control route {request.method} {request.path}")

    def _clock(self, body: Any) -> Any:
        clock = self.lab.clock
        if not isinstance(body, dict):
            raise ControlError(400, 'body must be {"now": "..."} or {"advance_seconds": n}')
        if "now" in body:
            try:
                now = datetime.fromisoformat(str(body["now"]))
            except ValueError:
                raise ControlError(400, "now must be an ISO-8601 time with offset") from None
            if now.tzinfo is None:
                raise ControlError(400, "now needs a UTC offset, e.g. 2026-12-01T09:00:00Z")
            clock.set(now)
        elif "advance_seconds" in body:
            step = body["advance_seconds"]
            if isinstance(step, bool) or not isinstance(step, int | float):
                raise ControlError(400, "advance_seconds must be a number")
            clock.advance(float(step))
        if "frozen" in body:
            clock.freeze(bool(body["frozen"]))
        return {"now": clock.now().isoformat(), "frozen": clock.frozen}


def _json(data: Any, status: int = 200) -> LabResponse:
    return LabResponse(
        status=status,
        body=json.dumps(data, default=str).encode(),
        content_type="application/json",
    )
