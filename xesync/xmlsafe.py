"""The one way xesync and its lab parse XML: no DTDs, no entities, no network, bounded size.

Both sides of every SOAP exchange (the TMS client, the lab's EWS and TMS simulators) and the CMS
client's XML go through :func:`parse`. A document carrying a DOCTYPE is refused outright, so neither
external entities nor entity expansion ("billion laughs") can happen.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

MAX_XML_BYTES = 32 * 1024 * 1024


class UnsafeXmlError(ValueError):
    """The document is not well-formed, too large, or carries a DTD."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes) -> etree._Element:
    """Parse ``data`` into an element tree root, refusing DTDs and entities.

    :raises UnsafeXmlError: on malformed XML, a DOCTYPE, or a document over 32 MiB.
    """
    if len(data) > MAX_XML_BYTES:
        raise UnsafeXmlError("XML document too large")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError(f"malformed XML: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise UnsafeXmlError("XML with a DOCTYPE is refused (no DTDs, no entities)")
    return root
