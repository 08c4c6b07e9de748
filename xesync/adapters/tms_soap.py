"""SOAP 1.2 for the TMS adapter: envelopes out, answers and faults in, and the one fault-code table.

Envelopes follow tms-booking-api.md §12.1: ``ContextHeader`` (no TMS confirmation mail: xesync writes
its own replies, §3.2) and ``ExternalAPIVersionSoapHeader`` with ``ClientVersionIn`` and the current
``ClientSession`` (§3.1), in the service's own namespace; the body element is the operation, with its
namespace as default (§2.3). Faults are read by local names as §10.1 says: ``detail/errorcode`` (an
int) and ``detail/clientsessionid``; the reason text is kept for people but never branched on.

:func:`fault_error` is the one place a TMS error code becomes an :mod:`xesync.errors` type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from lxml import etree

from xesync.errors import (
    ServiceUnavailableError,
    TmsConflictError,
    TmsFaultError,
    TmsLimitError,
    TmsNotFoundError,
    TmsOwnerError,
    TmsStaleVersionError,
    XesyncError,
)
from xesync.xmlsafe import UnsafeXmlError, parse

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
BOOKING_NS = "http://tandberg.net/2004/02/tms/external/booking/"
REMOTE_NS = "http://tandberg.net/2004/02/tms/external/booking/remotesetup/"
EXCEPTION_NS = "http://tandberg.net/2004/02/tms/external/exception/"
CLIENT_IDENTIFIER = "xesync"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"


class Code(IntEnum):
    """TMS error codes: §10.2 [documented], and the lab's guesses where the spec has none.

    The lab's TMS simulator keeps its own copy (``xesync/lab/tms/soap.py``) on purpose: client and
    simulator each transcribe the spec, so a mistake in one shows up as a failing test against the other.
    """

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
    # spec: tms-booking-api.md §10.2: the codes below are [unconfirmed] (one page of the table is
    # missing from every copy). These are the values the lab's TMS answers by default
    # (xesync/lab/tms/knobs.py DEFAULT_CODES); check them on a real TMS 15 before trusting them.
    TOO_MANY_OCCURRENCES = -2147218263
    YEARLY_RECURRENCE = -2147218261
    STALE_VERSION = -2147218260
    TIME_ZONE_RULE = -2147218259


SESSION_CODES = frozenset({Code.ERR_CLIENT_SESSION_EXPIRED, Code.ERR_CLIENT_SESSION_BLANK})

# The one table from TMS error code to our error type (STYLE.md §4: translated once, at the edge).
FAULT_TYPES: dict[int, type[TmsFaultError]] = {
    # A room is busy, or (BestEffortForced aside) there is no route: the room declines the meeting.
    Code.SYSTEM_ALREADY_BOOKED: TmsConflictError,
    # The owner is neither a TMS user nor creatable (book-on-behalf off): policy decides.
    Code.ERR_USER_NOT_FOUND: TmsOwnerError,
    # Booking limits (tms-booking-api.md §11, product.md L1-L7): the planner checks them first, so
    # TMS answering one means the planner and TMS disagree (booking windows, clocks).
    Code.CANNOTBOOKINTHEPAST: TmsLimitError,
    Code.START_TIME_AFTER_MAX_NUMBER_OF_DAYS_IN_FUTURE: TmsLimitError,
    Code.NEVER_ENDING_RECURRENCE_NOT_SUPPORTED: TmsLimitError,
    Code.TOO_MANY_OCCURRENCES: TmsLimitError,
    Code.YEARLY_RECURRENCE: TmsLimitError,
    Code.MEETINGACTIVE: TmsLimitError,  # the start of a running meeting cannot move
    # A system that TMS does not know or that may not be booked: a room mapping or TMS setting to fix.
    Code.SYSTEMNOTFOUND: TmsLimitError,
    Code.SYSTEM_NOT_ALLOWED_IN_BOOKING: TmsLimitError,
    # The conference or occurrence is not there (any more).
    Code.MEETINGNOTFOUND: TmsNotFoundError,
    Code.MEETINGISDELETED: TmsNotFoundError,
    Code.INSTANCE_NOT_FOUND_WITHIN_PATTERN: TmsNotFoundError,
    # Someone saved in between: re-read (find), then save again with the new Version (§7.3).
    Code.STALE_VERSION: TmsStaleVersionError,
}
# TMS is up but cannot serve now: the same call may succeed later.
TRANSIENT_CODES = frozenset({Code.DATABASE_DOWN})


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP fault as TMS sent it: ``errorcode`` (``None`` if absent), reason text, suggested session."""

    code: int | None
    text: str
    session: str | None = None

    @property
    def is_session(self) -> bool:
        """A blank or expired ``ClientSession`` (§3.4): retry once with :attr:`session`."""
        return self.code in SESSION_CODES


@dataclass(frozen=True, slots=True)
class Answer:
    """A parsed SOAP answer: the body's first element or a fault, and the session TMS echoed."""

    body: etree._Element | None
    fault: Fault | None
    session: str | None


def code_name(code: int | None) -> str:
    """The symbolic name of a known code (``SYSTEM_ALREADY_BOOKED``), else the number."""
    if code is None:
        return "unknown"
    try:
        return Code(code).name
    except ValueError:
        return str(code)


def fault_error(fault: Fault, operation: str) -> XesyncError:
    """The :mod:`xesync.errors` error for a (non-session) fault."""
    if fault.code in TRANSIENT_CODES:
        return ServiceUnavailableError("tms", f"{operation}: {code_name(fault.code)}")
    kind = FAULT_TYPES.get(fault.code, TmsFaultError) if fault.code is not None else TmsFaultError
    return kind(code_name(fault.code), fault.text, operation)


def _ns_map(ns: str) -> Any:
    return {None: ns}


def envelope(
    operation: str,
    ns: str,
    children: list[etree._Element],
    *,
    client_version: int,
    session: str,
) -> bytes:
    """A SOAP 1.2 request for ``operation``; ``children`` are moved into the body element."""
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"soap": SOAP12})
    header = etree.SubElement(env, f"{{{SOAP12}}}Header")
    if ns == BOOKING_NS:
        context = etree.SubElement(header, f"{{{ns}}}ContextHeader", nsmap=_ns_map(ns))
        etree.SubElement(context, f"{{{ns}}}SendConfirmationMail").text = "false"
        etree.SubElement(context, f"{{{ns}}}ExcludeConferenceInformation").text = "false"
    version = etree.SubElement(header, f"{{{ns}}}ExternalAPIVersionSoapHeader", nsmap=_ns_map(ns))
    etree.SubElement(version, f"{{{ns}}}ClientVersionIn").text = str(client_version)
    etree.SubElement(version, f"{{{ns}}}ClientIdentifierIn").text = CLIENT_IDENTIFIER
    # spec: tms-booking-api.md §3.1: ClientSession is not in the WSDL; TMS 15 reads it as the last child.
    etree.SubElement(version, f"{{{ns}}}ClientSession").text = session
    body = etree.SubElement(env, f"{{{SOAP12}}}Body")
    op = etree.SubElement(body, f"{{{ns}}}{operation}", nsmap=_ns_map(ns))
    op.extend(children)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def element(ns: str, name: str, value: str | None = None) -> etree._Element:
    """A standalone ``<name>value</name>`` in ``ns``, for an operation's arguments."""
    el = etree.Element(f"{{{ns}}}{name}")
    if value is not None:
        el.text = value
    return el


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _find(parent: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in parent if _local(c) == name), None)


def read_answer(content: bytes) -> Answer | None:
    """Parse a SOAP 1.1 or 1.2 answer; ``None`` when it is not a SOAP envelope (an IIS error page)."""
    if content.lstrip()[:1] != b"<":
        return None
    try:
        root = parse(content)
    except UnsafeXmlError:
        return None
    if _local(root) != "Envelope":
        return None
    session = None
    header = _find(root, "Header")
    version = _find(header, "ExternalAPIVersionSoapHeader") if header is not None else None
    if version is not None:
        found = _find(version, "ClientSession")
        session = (found.text or "").strip() or None if found is not None else None
    body = _find(root, "Body")
    if body is None or not len(body):
        return None
    first = body[0]
    if _local(first) == "Fault":
        return Answer(body=None, fault=_fault(first), session=session)
    return Answer(body=first, fault=None, session=session)


def _fault(fault: etree._Element) -> Fault:
    detail = next((e for e in fault.iter() if _local(e) in ("detail", "Detail")), None)
    code: int | None = None
    session = None
    if detail is not None:
        raw = next((e.text for e in detail.iter() if _local(e) == "errorcode"), None)
        try:
            code = int((raw or "").strip()) if raw else None
        except ValueError:
            code = None
        session = next(
            ((e.text or "").strip() or None for e in detail.iter() if _local(e) == "clientsessionid"), None
        )
    # SOAP 1.2 Reason/Text, else SOAP 1.1 faultstring.
    reason = next((e.text for e in fault.iter() if _local(e) in ("Text", "faultstring")), None)
    return Fault(code=code, text=(reason or "").strip(), session=session)
