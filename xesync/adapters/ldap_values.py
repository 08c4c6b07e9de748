"""The values an LDAP search deals in, with no connection: filter escaping (RFC 4515), DN comparison,
GUID rendering, the ``ldap.tms_username_format`` / ``ldap.jid_template`` templates, and the decoding of
ldap3's raw search entries, down to picking the one entry an address names.

The resolver that runs the searches is :mod:`xesync.adapters.ldap` (which re-exports the public names).
"""

from __future__ import annotations

import uuid
from typing import Any

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from xesync.errors import LdapLookupError

__all__ = [
    "decode_entry",
    "escape_filter_value",
    "first_text",
    "format_template",
    "mail_value",
    "normalise_dn",
    "pick_entry",
    "render_guid",
    "texts",
]

_FILTER_SPECIALS = {"\\": r"\5c", "*": r"\2a", "(": r"\28", ")": r"\29", "\0": r"\00"}


def escape_filter_value(value: str) -> str:
    r"""Escape an assertion value for an LDAP filter (RFC 4515 §3): NUL, ``*``, ``(``, ``)`` and ``\``."""
    return "".join(_FILTER_SPECIALS.get(ch, ch) for ch in value)


def format_template(template: str, *, domain: str, username: str, mail: str) -> str:
    """Fill ``ldap.tms_username_format`` or ``ldap.jid_template`` ({domain}, {username}, {mail})."""
    return template.format(domain=domain, username=username, mail=mail)


def normalise_dn(dn: str) -> str:
    """A comparable form of ``dn``: attribute types and values lower-cased, spacing removed."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return dn.strip().lower()
    return ",".join(f"{attr.lower()}={value.lower()}" for attr, value, _sep in parts)


def render_guid(raw: bytes) -> str:
    """The canonical string of a GUID attribute value.

    AD's ``objectGUID`` is 16 bytes, little-endian in its first three fields (as AD shows it);
    OpenLDAP's ``entryUUID`` is already text.
    """
    if len(raw) == 16:  # noqa: PLR2004 - the size of a binary GUID
        return str(uuid.UUID(bytes_le=raw))
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        return str(uuid.UUID(text.strip("{}")))
    except ValueError:
        return text


def mail_value(attribute: str, escaped: str) -> str:
    """The assertion value that finds the (already escaped) address in ``attribute``."""
    # proxyAddresses carries a type prefix; AD (and the lab schema) compare it case-insensitively,
    # so "smtp:" also finds the primary "SMTP:" address.
    return f"smtp:{escaped}" if attribute.lower() == "proxyaddresses" else escaped


def pick_entry(
    entries: list[tuple[str, dict[str, list[bytes]]]], address: str, order: tuple[str, ...], base: str
) -> tuple[str, dict[str, list[bytes]]]:
    """The entry whose best-ranked mail attribute (``ldap.mail_attributes`` order) has the address."""
    wanted = address.casefold()

    def rank(attrs: dict[str, list[bytes]]) -> int:
        for index, attr in enumerate(order):
            values = texts(attrs, attr)
            if attr.lower() == "proxyaddresses":
                values = [v[5:] for v in values if v[:5].lower() == "smtp:"]
            if wanted in (v.casefold() for v in values):
                return index
        return len(order)

    ranked = sorted(entries, key=lambda e: rank(e[1]))
    best = [e for e in ranked if rank(e[1]) == rank(ranked[0][1])]
    if len(best) > 1:
        names = "; ".join(sorted(dn for dn, _attrs in best)[:5])
        raise LdapLookupError(base, f"{address} names {len(best)} entries ({names}); make it unique")
    return best[0]


def decode_entry(item: dict[str, Any]) -> tuple[str, dict[str, list[bytes]]]:
    """One ldap3 search response item as its DN and raw values by lower-cased attribute name."""
    raw = item.get("raw_attributes") or {}
    attrs: dict[str, list[bytes]] = {}
    for name, values in raw.items():
        attrs.setdefault(name.lower(), []).extend(
            v if isinstance(v, bytes) else str(v).encode() for v in values
        )
    return str(item["dn"]), attrs


def texts(attrs: dict[str, list[bytes]], name: str) -> list[str]:
    """The values of attribute ``name`` as text."""
    return [v.decode("utf-8", errors="replace") for v in attrs.get(name.lower(), [])]


def first_text(attrs: dict[str, list[bytes]], name: str) -> str | None:
    """The first non-blank value of attribute ``name``, or ``None``."""
    values = [v for v in texts(attrs, name) if v.strip()]
    return values[0] if values else None
