"""CMS wire format: form bodies in, ``<?xml version="1.0"?>`` documents and ``failureDetails`` out.

``cms-api.md`` §1.2-1.4: form-encoded POST/PUT, XML answers, collections ``<plural total="N">`` with
``offset``/``limit`` under a server page cap, and errors as ``<failureDetails><code …/></failureDetails>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from lxml import etree

from xesync.lab.http import LabResponse

XML_HEAD = b'<?xml version="1.0"?>\n'
CALL_ID = re.compile(r"^[0-9]{1,19}$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# A rendered value: text, a bool/number, or nested ``(tag, value)`` pairs (callLeg ``status{…}``).
Value = str | bool | int | float | Sequence[tuple[str, "Value"]] | None
Fields = Sequence[tuple[str, Value]]


class CmsFailure(Exception):  # noqa: N818 - named after the wire element, like CMS's own failures
    """An error answer: HTTP ``status`` with ``<failureDetails><code attrs/></failureDetails>``."""

    def __init__(self, status: int, code: str, **attrs: str) -> None:
        self.status = status
        self.code = code
        self.attrs = attrs
        super().__init__(f"{status} {code} {attrs or ''}".strip())

    def response(self) -> LabResponse:
        """The failure as an HTTP response."""
        root = etree.Element("failureDetails")
        etree.SubElement(root, self.code, {k: str(v) for k, v in self.attrs.items()})
        return xml_doc(root, self.status)


def parameter_error(parameter: str, error: str = "invalidValue") -> CmsFailure:
    """400 ``<parameterError parameter=… error=…/>`` (the form production clients match verbatim)."""
    return CmsFailure(400, "parameterError", parameter=parameter, error=error)


_EMPTY_TAG = re.compile(rb"<([^<>]*[^<> ])/>")


def xml_doc(root: etree._Element, status: int = 200) -> LabResponse:
    """A ``text/xml`` response beginning ``<?xml version="1.0"?>``.

    Empty elements are written with a space before the slash, as CMS writes them
    (``<coSpaceDoesNotExist />``, cms-api.md §1.4); clients that match an error's text depend on it.
    ``/>`` occurs only in tags: text escapes ``>``.
    """
    body = _EMPTY_TAG.sub(rb"<\1 />", etree.tostring(root))
    return LabResponse(status=status, body=XML_HEAD + body, content_type="text/xml")


def render_value(value: Value) -> str:
    """Text of a scalar value as CMS writes it (booleans ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def add_fields(parent: etree._Element, items: Fields) -> None:
    """Append ``<tag>value</tag>`` children; ``None`` values are omitted, as CMS omits unset fields."""
    for tag, value in items:
        if value is None:
            continue
        child = etree.SubElement(parent, tag)
        if isinstance(value, list | tuple):
            add_fields(child, value)
        else:
            child.text = render_value(value) or None  # "" is an empty element, <tag />


def object_doc(tag: str, obj_id: str | None, items: Fields) -> LabResponse:
    """A single object: ``<tag id="…">fields</tag>``."""
    root = etree.Element(tag, {"id": obj_id} if obj_id else {})
    add_fields(root, items)
    return xml_doc(root)


def collection_doc(
    plural: str, singular: str, total: int, items: Iterable[tuple[str, Fields]]
) -> LabResponse:
    """A collection page: ``<plural total="N"><singular id="…">…</singular>…</plural>``."""
    root = etree.Element(plural, {"total": str(total)})
    for obj_id, fields in items:
        add_fields(etree.SubElement(root, singular, {"id": obj_id}), fields)
    return xml_doc(root)


def empty_ok(location: str | None = None) -> LabResponse:
    """``200`` with an empty body, and ``Location`` for a POST (cms-api.md §1.2)."""
    headers = [("Location", location)] if location else []
    return LabResponse(status=200, body=b"", headers=headers)


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a form-encoded body; the last of repeated parameters wins.

    :raises CmsFailure: 400 parameterError when the body is not UTF-8 form data.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text.strip()), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise parameter_error("body", "invalidValue") from None
    return dict(pairs)


@dataclass(frozen=True, slots=True)
class Page:
    """The slice of a collection a GET asked for, after the server's cap."""

    offset: int
    count: int

    def apply(self, items: Sequence[Any]) -> list[Any]:
        """The page's items."""
        return list(items[self.offset : self.offset + self.count])


def paging(query: Mapping[str, list[str]], cap: int) -> Page:
    """Read ``offset``/``limit`` and apply the server cap: a page never exceeds ``cap`` items.

    :raises CmsFailure: 400 parameterError for a non-numeric or negative value.
    """
    offset = _non_negative(query, "offset", 0)
    limit = _non_negative(query, "limit", cap)
    return Page(offset=offset, count=min(limit, cap))


def _non_negative(query: Mapping[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    raw = values[0].strip()
    if not raw.isdigit():
        raise parameter_error(name)
    return int(raw)


def as_bool(name: str, raw: str) -> bool:
    """``true``/``false`` (case-insensitive) or parameterError."""
    low = raw.strip().lower()
    if low in {"true", "false"}:
        return low == "true"
    raise parameter_error(name)


def as_int(name: str, raw: str, *, low: int = 0, high: int = 2**31 - 1) -> int:
    """A decimal integer within ``[low, high]`` or parameterError."""
    text = raw.strip()
    if not re.fullmatch(r"-?[0-9]+", text) or not low <= int(text) <= high:
        raise parameter_error(name)
    return int(text)


def parse_time(name: str, raw: str) -> datetime:
    """An RFC 3339 UTC time (``2019-05-16T14:44:52Z``) or parameterError."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise parameter_error(name) from None
    if value.tzinfo is None:
        raise parameter_error(name)
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """``2019-05-16T14:44:52Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand_mapping(template: str, resolve: Callable[[str], str]) -> str:
    """Expand ``$name$`` placeholders (``\\$`` and ``\\\\`` escape) as CMS LDAP and bulk mappings do.

    ``resolve`` gets the name between the dollars (``index``, an LDAP attribute) and returns its text.
    """
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "\\" and i + 1 < len(template):
            out.append(template[i + 1])
            i += 2
        elif ch == "$":
            end = template.find("$", i + 1)
            if end < 0:
                out.append(template[i:])
                break
            out.append(resolve(template[i + 1 : end]))
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
