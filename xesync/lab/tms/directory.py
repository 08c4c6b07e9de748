"""What TMS knows from the directory: each user's directory GUID, for ``owner_to_cms = ownerAdGuid``.

A real TMS learns users, and their AD ``objectGUID``, from its own LDAP/AD sync. The lab's TMS reads the
running lab directory the same way, once at start: ``entryUUID`` on OpenLDAP (slapd, or the LDIF on
ldap3's mock strategy, which derives a stable ``entryUUID`` from the DN), ``objectGUID`` on AD-shaped
data. The CMS simulator syncs the same directory, so both sides agree on each user's GUID.
spec: cms-api.md §4.2: whether TMS sends ``ownerAdGuid`` at all is [unconfirmed] (hence the knob).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog

from xesync import events
from xesync.adapters.ldap_connection import unbind
from xesync.lab.fixture import DirectoryLink

log = structlog.get_logger(__name__)

GUID_ATTRIBUTES = ("entryUUID", "objectGUID")
KEY_ATTRIBUTES = ("uid", "sAMAccountName", "mail")
PEOPLE = "(|(objectClass=inetOrgPerson)(objectClass=user))"


def directory_guids(link: DirectoryLink | None) -> dict[str, str]:
    """``{uid, sAMAccountName or mail (casefolded): guid}`` read from the lab directory.

    An unreachable directory gives an empty map (TMS then knows no GUIDs), logged, never raised: the
    lab must start even when the directory is down, as a real TMS does.
    """
    if link is None:
        return {}
    from ldap3.core.exceptions import LDAPException  # noqa: PLC0415 - ldap3 loads only when needed

    try:
        conn = _connect(link)
    except (LDAPException, OSError, ValueError) as exc:
        log.warning(events.LAB_TMS_DIRECTORY_FAILED, url=link.url, error=type(exc).__name__)
        return {}
    try:
        conn.search(link.base_dn, PEOPLE, attributes=[*KEY_ATTRIBUTES, *GUID_ATTRIBUTES])
        return guid_map(entry["attributes"] for entry in conn.response or [])
    except LDAPException as exc:
        log.warning(events.LAB_TMS_DIRECTORY_FAILED, url=link.url, error=type(exc).__name__)
        return {}
    finally:
        unbind(conn)


def guid_map(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The GUID map of directory entries (attribute name → value or list of values)."""
    out: dict[str, str] = {}
    lowered = ({k.lower(): v for k, v in entry.items()} for entry in entries)
    for attrs in lowered:
        guid = next((g for name in GUID_ATTRIBUTES if (g := _guid(name, attrs.get(name.lower())))), None)
        if guid is None:
            continue
        for name in KEY_ATTRIBUTES:
            for key in _values(attrs.get(name.lower())):
                out[str(key).casefold()] = guid
    return out


def _values(raw: Any) -> list[Any]:
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list | tuple) else [raw]


def _guid(name: str, raw: Any) -> str | None:
    values = _values(raw)
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes) and name == "objectGUID" and len(value) == 16:  # noqa: PLR2004
        return str(uuid.UUID(bytes_le=value))  # AD's binary GUID in its string form
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value) or None


def _connect(link: DirectoryLink) -> Any:
    import ldap3  # noqa: PLC0415

    if link.url.lower().startswith("ldif://"):
        from xesync.lab.ldif import mock_connection_from_ldif  # noqa: PLC0415

        return mock_connection_from_ldif(Path(unquote(urlsplit(link.url).path)), link.bind_dn, link.password)
    server = ldap3.Server(link.url, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(
        server, user=link.bind_dn, password=link.password, receive_timeout=10, raise_exceptions=True
    )
    try:
        conn.bind()
    except Exception:
        unbind(conn)  # ldap3 leaves the socket of a failed open behind
        raise
    return conn
