"""Raw-SOAP helpers for the TMS simulator's contract tests (tms-booking-api.md), not xesync's client.

Every request body of an operation that exists in the vendor WSDL is validated against the schema
embedded in that WSDL before it is sent, so the tests speak the documented wire format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import requests
import xmlschema
from lxml import etree

from xesync.lab.clock import LabClock
from xesync.lab.faults import FaultBook, RequestCounter, parse_fault
from xesync.lab.fixture import load_fixture
from xesync.lab.http import LabHTTPServer
from xesync.lab.tms import TmsSimulator
from xesync.xmlsafe import parse

NS = "http://tandberg.net/2004/02/tms/external/booking/"
RS = "http://tandberg.net/2004/02/tms/external/booking/remotesetup/"
EXC = "http://tandberg.net/2004/02/tms/external/exception/"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSDL_DIR = Path(__file__).resolve().parents[3] / "xesync" / "lab" / "tms" / "wsdl"
BOOKING_PATH = "/tms/external/booking/bookingservice.asmx"
REMOTE_PATH = "/tms/external/booking/remotesetup/remotesetupservice.asmx"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
AUTH = ("LAB\\svc-tms", "lab-tms-secret")
SESSION_FAULTS = (-2147218253, -2147218247)


def wsdl_schema(name: str) -> xmlschema.XMLSchema:
    """The ``<s:schema>`` embedded in a vendor WSDL, as an XML Schema."""
    root = etree.parse(str(WSDL_DIR / name)).getroot()
    schema = root.find(".//{http://www.w3.org/2001/XMLSchema}schema")
    return xmlschema.XMLSchema(etree.tostring(schema).decode())


SCHEMAS = {"booking": wsdl_schema("bookingservice.wsdl"), "remote": wsdl_schema("remotesetupservice.wsdl")}


def tms_time(value: datetime) -> str:
    """The space form TMS uses."""
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def q(name: str, ns: str = NS) -> str:
    return f"{{{ns}}}{name}"


@dataclass
class Result:
    """One SOAP answer."""

    status: int
    content_type: str
    root: etree._Element | None
    text: str

    @property
    def fault_code(self) -> int | None:
        """``detail/errorcode`` of a fault, else ``None``."""
        if self.root is None:
            return None
        code = self.root.find(f".//detail/{{{EXC}}}errorcode")
        return None if code is None else int(code.text)

    @property
    def fault_session(self) -> str | None:
        """``detail/clientsessionid`` of a session fault."""
        if self.root is None:
            return None
        found = self.root.find(f".//detail/{{{EXC}}}clientsessionid")
        return None if found is None else found.text

    def body(self) -> etree._Element:
        """The first child of ``Body``."""
        for ns in (SOAP11, SOAP12):
            found = self.root.find(f"{{{ns}}}Body")
            if found is not None:
                return found[0]
        raise AssertionError("no Body")

    def header(self, name: str, ns: str = NS) -> etree._Element | None:
        """A response header element."""
        for env_ns in (SOAP11, SOAP12):
            found = self.root.find(f"{{{env_ns}}}Header/{{{ns}}}{name}")
            if found is not None:
                return found
        return None

    def find(self, path: str) -> etree._Element | None:
        """``path`` (``tns:`` = booking namespace) under the body element."""
        return self.body().find(path, {"tns": NS, "rs": RS})

    def findall(self, path: str) -> list[etree._Element]:
        """All matches of ``path`` under the body element."""
        return self.body().findall(path, {"tns": NS, "rs": RS})

    def value(self, path: str) -> str | None:
        """The text at ``path`` under the body element."""
        found = self.find(path)
        return None if found is None else (found.text or "")


class TmsClient:
    """A raw-SOAP client: builds envelopes by hand, validates WSDL operations, keeps a session."""

    def __init__(self, base_url: str, soap: int) -> None:
        self.base_url = base_url
        self.soap = soap
        self.session_id = ""
        self.http = requests.Session()
        self.sent: list[str] = []
        # What ``call`` authenticates with: Basic by default, an ``HttpNtlmAuth`` for Windows auth.
        self.auth = AUTH

    def envelope(self, op: str, body: str, *, service: str, session: str | None, version: int = 22) -> str:
        ns = NS if service == "booking" else RS
        env_ns = SOAP12 if self.soap == 12 else SOAP11
        session_xml = "" if session is None else f"<ClientSession>{escape(session)}</ClientSession>"
        return (
            f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{env_ns}">'
            f'<soap:Header><ExternalAPIVersionSoapHeader xmlns="{ns}">'
            f"<ClientVersionIn>{version}</ClientVersionIn>"
            f"<ClientIdentifierIn>contract-tests</ClientIdentifierIn>{session_xml}</ExternalAPIVersionSoapHeader>"
            f'</soap:Header><soap:Body><{op} xmlns="{ns}">{body}</{op}></soap:Body></soap:Envelope>'
        )

    def post(
        self, data: bytes | str, *, path: str = BOOKING_PATH, op: str = "", auth="default", content_type=None
    ):
        auth = self.auth if auth == "default" else auth
        ns = RS if "remotesetup" in path.lower() else NS
        if content_type is None:
            content_type = (
                "application/soap+xml; charset=utf-8" if self.soap == 12 else "text/xml; charset=utf-8"
            )
        headers = {"Content-Type": content_type}
        if self.soap == 11:
            headers["SOAPAction"] = f'"{ns}{op}"'
        resp = self.http.post(self.base_url + path, data=data, headers=headers, auth=auth, timeout=10)
        root = None
        if resp.content.startswith(b"<?xml") or resp.content.startswith(b"<soap"):
            root = parse(resp.content)
        return Result(resp.status_code, resp.headers.get("Content-Type", ""), root, resp.text)

    def call(
        self,
        op: str,
        body: str = "",
        *,
        service: str = "booking",
        session: str | None = None,
        retry_session: bool = True,
        validate: bool = True,
        version: int = 22,
    ) -> Result:
        """Call ``op``; validate the body against the WSDL if it has ``op``; retry once on a session fault."""
        ns = NS if service == "booking" else RS
        if validate and op in SCHEMAS[service].elements:
            element = parse(f'<{op} xmlns="{ns}">{body}</{op}>'.encode())
            SCHEMAS[service].validate(element)
            self.sent.append(op)
        path = BOOKING_PATH if service == "booking" else REMOTE_PATH
        sid = self.session_id if session is None else session
        result = self.post(
            self.envelope(op, body, service=service, session=sid, version=version), path=path, op=op
        )
        if retry_session and session is None and result.fault_code in SESSION_FAULTS:
            self.session_id = result.fault_session or ""
            result = self.post(
                self.envelope(op, body, service=service, session=self.session_id, version=version),
                path=path,
                op=op,
            )
        return result


def conference_xml(
    *,
    conference_id: int = -1,
    title: str = "Weekly sync",
    start: datetime | None = None,
    end: datetime | None = None,
    owner: str | None = "LAB\\alice",
    owner_email: str | None = None,
    systems: tuple[int, ...] = (11,),
    key: str | None = "uid-1",
    source: str = "xesync:lab",
    pattern: str = "",
    version: int | None = None,
    instance: datetime | None = None,
) -> str:
    """A ``Conference`` in the WSDL's element order (``Version`` only for TMS 15 operations)."""
    start = start or T0 + timedelta(hours=1)
    end = end or start + timedelta(hours=1)
    parts = "".join(
        f"<Participant><ParticipantId>{s}</ParticipantId><ParticipantCallType>TMS</ParticipantCallType></Participant>"
        for s in systems
    )
    owner_xml = f"<OwnerUserName>{escape(owner)}</OwnerUserName>" if owner else ""
    if owner_email:
        owner_xml += f"<OwnerEmailAddress>{owner_email}</OwnerEmailAddress>"
    instance_xml = (
        f"<RecurrenceInstanceIdUTC>{tms_time(instance)}</RecurrenceInstanceIdUTC>" if instance else ""
    )
    keys = (
        f"<ExternalSourceId>{source}</ExternalSourceId><ExternalPrimaryKey>{key}</ExternalPrimaryKey>"
        if key
        else ""
    )
    version_xml = f"<Version>{version}</Version>" if version is not None else ""
    return (
        f"<Conference><ConferenceId>{conference_id}</ConferenceId><Title>{escape(title)}</Title>"
        f"<StartTimeUTC>{tms_time(start)}</StartTimeUTC><EndTimeUTC>{tms_time(end)}</EndTimeUTC>{instance_xml}"
        f"{pattern}<OwnerId>-1</OwnerId>{owner_xml}"
        "<ConferenceType>One Button To Push</ConferenceType><Bandwidth>Default</Bandwidth>"
        "<PictureMode>Default</PictureMode><Encrypted>Default</Encrypted><DataConference>Default</DataConference>"
        "<ShowExtendOption>Default</ShowExtendOption><ISDNRestrict>false</ISDNRestrict>"
        f"{keys}<Participants>{parts}</Participants>{version_xml}</Conference>"
    )


def weekly(
    count: int | None = 4,
    *,
    end_type: str = "EndByInstances",
    frequency: str = "Weekly",
    day: str = "Tuesday",
) -> str:
    """A ``RecurrencePattern`` in the WSDL's element order."""
    return (
        f"<RecurrencePattern><FrequencyType>{frequency}</FrequencyType><Interval>1</Interval>"
        f"<DaysOfWeek><DayOfWeek>{day}</DayOfWeek></DaysOfWeek><FirstDayOfWeek>Monday</FirstDayOfWeek>"
        f"<BySetPosition>0</BySetPosition><PatternEndType>{end_type}</PatternEndType>"
        f"<PatternInstances>{count or 0}</PatternInstances></RecurrencePattern>"
    )


class Served:
    """The simulator on loopback, with its clock, faults and a raw client."""

    def __init__(self, soap: int, fixture=None) -> None:
        self.clock = LabClock(T0, frozen=True)
        self.faults = FaultBook()
        self.counter = RequestCounter()
        self.sim = TmsSimulator(fixture or load_fixture(), self.clock)
        self.server = LabHTTPServer(self.sim, self.faults, self.counter)
        self.server.start()
        self.client = TmsClient(self.server.base_url, soap)

    def inject(self, **spec) -> None:
        self.faults.add(parse_fault({"service": "tms", **spec}, {"tms": self.sim.fault_kinds}))

    def stop(self) -> None:
        self.client.http.close()
        self.server.stop()
