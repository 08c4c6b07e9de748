"""EWS XML building blocks: namespaces, value formats, envelopes, response messages and SOAP faults.

Every value format here guards one of the exchangelib traps (``ews.md`` §4): datetimes never carry
fractional seconds (trap 1), booleans are ``true``/``false``, the ``ServerVersionInfo`` ``Version``
always starts with ``V`` (trap 13), and SOAP faults put ``MessageXml`` in the *types* namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

Element = etree._Element  # noqa: SLF001 - lxml names its element type privately


def m(tag: str) -> str:
    """Clark name in the messages namespace."""
    return f"{{{M}}}{tag}"


def t(tag: str) -> str:
    """Clark name in the types namespace."""
    return f"{{{T}}}{tag}"


def local(el: Element) -> str:
    """An element's local name (``""`` for comments and processing instructions)."""
    tag: object = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def sub(parent: Element, tag: str, text: str | None = None, **attrs: str) -> Element:
    """Append a child (Clark ``tag``) with optional text and attributes."""
    el = etree.SubElement(parent, tag, attrib=attrs or None)
    if text is not None:
        el.text = text
    return el


def child(el: Element | None, name: str) -> Element | None:
    """The first child with local name ``name`` (any namespace)."""
    if el is None:
        return None
    for c in el:
        if local(c) == name:
            return c
    return None


def children(el: Element | None, name: str | None = None) -> list[Element]:
    """Element children (with local name ``name`` if given)."""
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and (name is None or local(c) == name)]


def text_of(el: Element | None, name: str | None = None, default: str | None = None) -> str | None:
    """Text of ``el`` (or of its child ``name``), stripped; ``default`` when absent."""
    target = el if name is None else child(el, name)
    if target is None:
        return default
    return (target.text or "").strip()


# ----------------------------------------------------------------------------------- value formats


def fmt_dt(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: UTC, whole seconds (trap 1: a fraction plus ``Z`` parses as None)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_date(value: date) -> str:
    """A recurrence date with a zone suffix, as EWS writes them (``2025-03-04Z``)."""
    return value.isoformat() + "Z"


def fmt_bool(value: bool) -> str:
    """``true``/``false`` (exchangelib sends ``0``/``1``; we answer in the canonical form)."""
    return "true" if value else "false"


def parse_bool(value: str | None, default: bool = False) -> bool:
    """Full xs:boolean: ``true``/``false``/``1``/``0`` (trap 31)."""
    if value is None:
        return default
    v = value.strip().lower()
    if v in {"true", "1"}:
        return True
    if v in {"false", "0"}:
        return False
    raise ValueError(f"not an xs:boolean: {value!r}")


def parse_dt(value: str | None) -> datetime | None:
    """Parse a request datetime leniently: ``Z``, offsets, fractions; naive means UTC."""
    if value is None or not value.strip():
        return None
    raw = value.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def parse_date(value: str | None) -> date | None:
    """A recurrence ``StartDate``/``EndDate``: ``2025-03-04``, ``2025-03-04Z`` or ``2025-03-04+01:00``."""
    if value is None or not value.strip():
        return None
    return date.fromisoformat(value.strip()[:10])


# ----------------------------------------------------------------------------------- envelopes


def envelope(body_child: Element | None, version_header: Element | None) -> Element:
    """``s:Envelope`` with an optional ``ServerVersionInfo`` header and one body child."""
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    if version_header is not None:
        header = sub(env, f"{{{SOAP}}}Header")
        header.append(version_header)
    body = sub(env, f"{{{SOAP}}}Body")
    if body_child is not None:
        body.append(body_child)
    return env


def server_version_info(build: tuple[int, int, int, int], version: str) -> Element:
    """``h:ServerVersionInfo`` (types namespace), the four build numbers and a ``V…`` version."""
    el = etree.Element(t("ServerVersionInfo"), nsmap={"h": T})
    el.set("MajorVersion", str(build[0]))
    el.set("MinorVersion", str(build[1]))
    el.set("MajorBuildNumber", str(build[2]))
    el.set("MinorBuildNumber", str(build[3]))
    el.set("Version", version)
    return el


def to_bytes(el: Element) -> bytes:
    """Serialise with an XML declaration, UTF-8."""
    return bytes(etree.tostring(el, xml_declaration=True, encoding="utf-8"))


def operation_response(operation: str) -> tuple[Element, Element]:
    """``m:<Op>Response`` with its ``m:ResponseMessages``; returns both."""
    resp = etree.Element(m(f"{operation}Response"), nsmap={"m": M, "t": T})
    messages = sub(resp, m("ResponseMessages"))
    return resp, messages


def success(messages: Element, operation: str) -> Element:
    """Append a ``Success``/``NoError`` response message and return it for its payload."""
    msg = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Success")
    sub(msg, m("ResponseCode"), "NoError")
    return msg


def error(
    messages: Element,
    operation: str,
    code: str,
    text: str,
    *,
    values: Iterable[tuple[str, str]] = (),
    response_class: str = "Error",
) -> Element:
    """Append an error response message (``MessageText``, ``ResponseCode``, ``DescriptiveLinkKey``)."""
    msg = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass=response_class)
    sub(msg, m("MessageText"), text)
    sub(msg, m("ResponseCode"), code)
    sub(msg, m("DescriptiveLinkKey"), "0")
    values = list(values)
    if values:
        xml = sub(msg, m("MessageXml"))
        for name, value in values:
            sub(xml, t("Value"), value, Name=name)
    return msg


def soap_fault(code: str, message: str, *, values: Iterable[tuple[str, str]] = ()) -> Element:
    """An EWS SOAP fault (``ews.md`` §2.5): unqualified faultcode/faultstring/detail, MessageXml in types."""
    fault = etree.Element(f"{{{SOAP}}}Fault", nsmap={"s": SOAP})
    fc = sub(fault, "faultcode", f"a:{code}")
    # The fault code's prefix must be declared where it is used.
    fault_code = etree.Element("faultcode", nsmap={"a": T})
    fault_code.text = f"a:{code}"
    fault.replace(fc, fault_code)
    fs = sub(fault, "faultstring", message)
    fs.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    detail = sub(fault, "detail")
    rc = etree.SubElement(detail, f"{{{E_NS}}}ResponseCode", nsmap={"e": E_NS})
    rc.text = code
    msg = etree.SubElement(detail, f"{{{E_NS}}}Message", nsmap={"e": E_NS})
    msg.text = message
    values = list(values)
    if values:
        xml = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T})
        for name, value in values:
            if name in {"LineNumber", "LinePosition", "Violation"}:
                sub(xml, t(name), value)
            else:
                sub(xml, t("Value"), value, Name=name)
    return fault
