"""SOAP for the TMS simulator: envelopes in, envelopes and faults out (tms-booking-api.md §2, §3, §10).

The SOAP version is read from the envelope namespace, never from ``Content-Type`` (§2.2); the operation
is the local name of the first child of ``Body``, and ``SOAPAction`` is only advisory. Every answer
echoes ``ExternalAPIVersionSoapHeader`` in the service's own namespace, with the current session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from xesync.lab.http import LabResponse, xml_response
from xesync.xmlsafe import UnsafeXmlError, parse

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
BOOKING_NS = "http://tandberg.net/2004/02/tms/external/booking/"
REMOTE_NS = "http://tandberg.net/2004/02/tms/external/booking/remotesetup/"
EXCEPTION_NS = "http://tandberg.net/2004/02/tms/external/exception/"


class Code:
    """TMS error codes (tms-booking-api.md §10.2, [documented])."""

    LICENSE = -2147219503
    DATABASE_DOWN = -2147219500
    MEETINGNOTFOUND = -2147218302
    SYSTEMNOTFOUND = -2147218301
    SYSTEM_ALREADY_BOOKED = -2147218300
    MEETINGNOTACTIVE = -2147218272
    MEETINGISDELETED = -2147218271
    MEETINGACTIVE = -2147218270
    CANNOTBOOKINTHEPAST = -2147218269
    NO_ACCESS_TO_CONFERENCE = -2147218266
    START_TIME_AFTER_MAX_NUMBER_OF_DAYS_IN_FUTURE = -2147218265
    NEVER_ENDING_RECURRENCE_NOT_SUPPORTED = -2147218264
    SYSTEM_NOT_ALLOWED_IN_BOOKING = -2147218262
    ERR_USER_NOT_FOUND = -2147218255
    ERR_CLIENT_SESSION_EXPIRED = -2147218253
    INSTANCE_NOT_FOUND_WITHIN_PATTERN = -2147218252
    ERR_CLIENT_SESSION_BLANK = -2147218247


class TmsFault(Exception):  # noqa: N818 - mirrors the wire's <soap:Fault>, not an xesync error
    """A TMS SOAP fault: ``errorcode`` in the exception namespace, and a new session id when given."""

    def __init__(self, code: int, message: str, *, session: str | None = None, sender: bool = True) -> None:
        self.code = code
        self.message = message
        self.session = session
        self.sender = sender
        super().__init__(f"{code}: {message}")


class MalformedRequestError(ValueError):
    """The body is not a SOAP envelope the simulator can dispatch."""


@dataclass(slots=True)
class Envelope:
    """A parsed request envelope."""

    soap12: bool
    operation: str
    body: etree._Element
    headers: dict[str, etree._Element] = field(default_factory=dict)

    def header_text(self, header: str, child: str) -> str | None:
        """The text of ``<header><child>`` (by local names), or ``None`` when absent."""
        element = self.headers.get(header)
        if element is None:
            return None
        found = first(element, child)
        return None if found is None else (found.text or "")


def default_ns(ns: str) -> Any:
    """An ``nsmap`` making ``ns`` the default namespace (lxml-stubs cannot type a ``None`` prefix)."""
    return {None: ns}


def local(element: etree._Element) -> str:
    """An element's local name."""
    return etree.QName(element).localname


def first(parent: etree._Element, name: str) -> etree._Element | None:
    """The first child with local name ``name`` (ASMX matches names exactly, in any namespace)."""
    for child in parent:
        if isinstance(child.tag, str) and local(child) == name:
            return child
    return None


def children(parent: etree._Element, name: str) -> list[etree._Element]:
    """Every child with local name ``name``."""
    return [c for c in parent if isinstance(c.tag, str) and local(c) == name]


def text(parent: etree._Element, name: str) -> str | None:
    """The stripped text of the first ``name`` child, ``None`` when absent (``""`` when empty)."""
    found = first(parent, name)
    return None if found is None else (found.text or "").strip()


def parse_envelope(data: bytes) -> Envelope:
    """Parse a SOAP 1.1 or 1.2 request.

    :raises MalformedRequestError: for non-XML, non-SOAP or body-less input.
    """
    try:
        root = parse(data)
    except UnsafeXmlError as exc:
        raise MalformedRequestError(str(exc)) from None
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP11, SOAP12):
        raise MalformedRequestError("not a SOAP envelope")
    ns = qname.namespace
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        raise MalformedRequestError("the envelope has no Body")
    op = next((c for c in body if isinstance(c.tag, str)), None)
    if op is None:
        raise MalformedRequestError("the Body is empty")
    headers: dict[str, etree._Element] = {}
    header = root.find(f"{{{ns}}}Header")
    if header is not None:
        for child in header:
            if isinstance(child.tag, str):
                headers[local(child)] = child
    return Envelope(soap12=ns == SOAP12, operation=local(op), body=op, headers=headers)


def sniff_operation(data: bytes) -> str | None:
    """The operation of a request, or ``None`` when it cannot be parsed (used to count requests)."""
    try:
        return parse_envelope(data).operation
    except MalformedRequestError:
        return None


def _envelope(soap12: bool) -> tuple[etree._Element, str]:
    ns = SOAP12 if soap12 else SOAP11
    root = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns, "xsi": XSI, "xsd": XSD})
    return root, ns


_EMPTY_TAG = re.compile(rb"<([^<>]*[^<> ])/>")


def _serialise(root: etree._Element) -> bytes:
    # XmlSerializer writes an empty element with a space before the slash (``<Participants />``, §8.1);
    # lxml writes ``<Participants/>``. ``/>`` occurs only in tags: text escapes ``>`` as ``&gt;``.
    raw = bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    return _EMPTY_TAG.sub(rb"<\1 />", raw)


def version_header(service_ns: str, echo: dict[str, str | None], session: str | None) -> etree._Element:
    """``ExternalAPIVersionSoapHeader`` echoing the client's values, session last (§3.1)."""
    header = etree.Element(f"{{{service_ns}}}ExternalAPIVersionSoapHeader", nsmap=default_ns(service_ns))
    for name in ("ClientVersionIn", "ClientIdentifierIn", "ClientLatestNamespaceIn", "NewServiceURL"):
        value = echo.get(name)
        if value is None and name == "ClientVersionIn":
            value = "0"
        if value is not None:
            etree.SubElement(header, f"{{{service_ns}}}{name}").text = value
    if session is not None:
        etree.SubElement(header, f"{{{service_ns}}}ClientSession").text = session
    return header


def response(*, soap12: bool, headers: list[etree._Element], body: etree._Element | None) -> LabResponse:
    """A 200 answer carrying ``headers`` and the ``body`` element."""
    root, ns = _envelope(soap12)
    if headers:
        head = etree.SubElement(root, f"{{{ns}}}Header")
        for element in headers:
            head.append(element)
    soap_body = etree.SubElement(root, f"{{{ns}}}Body")
    if body is not None:
        soap_body.append(body)
    return _typed(xml_response(_serialise(root), soap12=soap12))


def fault_response(fault: TmsFault, *, soap12: bool, node: str) -> LabResponse:
    """HTTP 500 with the fault in the observed SOAP 1.2 shape (§10.1), or its SOAP 1.1 equivalent.

    spec: tms-booking-api.md §10.1: the SOAP 1.1 fault shape is [unconfirmed] (standard ASMX is
    assumed), and so is ``Sender`` vs ``Receiver`` for non-session faults (``sender`` picks).
    """
    root, ns = _envelope(soap12)
    body = etree.SubElement(root, f"{{{ns}}}Body")
    element = etree.SubElement(body, f"{{{ns}}}Fault")
    if soap12:
        code = etree.SubElement(element, f"{{{ns}}}Code")
        etree.SubElement(code, f"{{{ns}}}Value").text = "soap:Sender" if fault.sender else "soap:Receiver"
        reason = etree.SubElement(element, f"{{{ns}}}Reason")
        reason_text = etree.SubElement(reason, f"{{{ns}}}Text")
        reason_text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        reason_text.text = fault.message
        etree.SubElement(element, f"{{{ns}}}Node").text = node
    else:
        etree.SubElement(element, "faultcode").text = "soap:Client" if fault.sender else "soap:Server"
        etree.SubElement(element, "faultstring").text = fault.message
        etree.SubElement(element, "faultactor").text = node
    detail = etree.SubElement(element, "detail")  # lower-case and unqualified, as observed
    etree.SubElement(detail, f"{{{EXCEPTION_NS}}}errorcode", nsmap=default_ns(EXCEPTION_NS)).text = str(
        fault.code
    )
    if fault.session is not None:
        etree.SubElement(
            detail, f"{{{EXCEPTION_NS}}}clientsessionid", nsmap=default_ns(EXCEPTION_NS)
        ).text = fault.session
    resp = _typed(xml_response(_serialise(root), status=500, soap12=soap12))
    # Observed on TMS 15: ASP.NET marks its SOAP 500 answers private.
    resp.headers.append(("Cache-Control", "private"))
    return resp


def _typed(resp: LabResponse) -> LabResponse:
    # IIS with Windows authentication answers every authorised request with this header (§2.4, CAP).
    resp.headers.append(("Persistent-Auth", "true"))
    return resp
