"""Reading a directory over a bound ldap3 connection, for the lab CMS's LDAP sync (cms-api.md §2.7).

It owns the LDAP side only: the subtree search (paged when the ldapServer asks), attributes normalised
to lower-case names and text values (a binary ``objectGUID`` as its GUID string), and the emulation of
AD's in-chain rule over a directory that records only direct membership. Connecting, mapping entries
to CMS users and applying the result belong to :mod:`xesync.lab.cms.ldapsync`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

IN_CHAIN = re.compile(
    r"\(\s*memberOf:1\.2\.840\.113556\.1\.4\.1941:=((?:[^()\\]|\\[0-9a-fA-F]{2})*)\)", re.IGNORECASE
)
GROUP_CLASSES = {"groupofnames", "groupofuniquenames", "group"}


def search(conn: Any, base: str, query: str, paged: bool) -> list[tuple[str, dict[str, list[str]]]]:
    """Every entry below ``base`` that ``query`` matches, as ``(dn, attributes)``; paged on request."""
    import ldap3  # noqa: PLC0415

    attributes = [ldap3.ALL_ATTRIBUTES, "entryUUID"]
    if paged:
        responses = conn.extend.standard.paged_search(
            base, query, search_scope=ldap3.SUBTREE, attributes=attributes, paged_size=100, generator=False
        )
    else:
        conn.search(base, query, search_scope=ldap3.SUBTREE, attributes=attributes)
        responses = conn.response or []
    return [
        (str(item["dn"]), _normalise(item.get("attributes", {})))
        for item in responses
        if item.get("type") == "searchResEntry"
    ]


def _normalise(attrs: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, raw in attrs.items():
        values = raw if isinstance(raw, list | tuple) else [raw]
        texts = []
        for value in values:
            if isinstance(value, bytes):
                if name.lower() == "objectguid" and len(value) == 16:  # noqa: PLR2004 - a GUID's size
                    texts.append(str(uuid.UUID(bytes_le=value)))
                    continue
                value = value.decode("utf-8", errors="replace")  # noqa: PLW2901
            texts.append(str(value))
        out[name.lower()] = texts
    return out


def expand_in_chain(conn: Any, query: str) -> str:
    """Rewrite AD's in-chain term ``(memberOf:1.2.840.113556.1.4.1941:=G)`` into ``(|(memberOf=G)…)``.

    The alternatives are G and every group nested in G, so that a directory recording only direct
    membership (OpenLDAP's memberof overlay) answers as AD would.
    """
    from ldap3.utils.conv import escape_filter_chars  # noqa: PLC0415

    def replace(match: re.Match[str]) -> str:
        group = re.sub(r"\\([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), match.group(1))
        groups = nested_groups(conn, group)
        terms = "".join(f"(memberOf={escape_filter_chars(g)})" for g in groups)
        return f"(|{terms})"

    return IN_CHAIN.sub(replace, query)


def nested_groups(conn: Any, group_dn: str) -> list[str]:
    """``group_dn`` and every group reachable through ``member``/``uniqueMember``, breadth first."""
    import ldap3  # noqa: PLC0415

    seen = [group_dn]
    queue = [group_dn]
    while queue:
        current = queue.pop(0)
        conn.search(
            current, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["member", "uniqueMember"]
        )
        members: list[str] = []
        for item in conn.response or []:
            attrs = _normalise(item.get("attributes", {}))
            members += attrs.get("member", []) + attrs.get("uniquemember", [])
        for member in members:
            if member.lower() in {s.lower() for s in seen}:
                continue
            conn.search(member, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectClass"])
            classes = {
                c.lower()
                for item in conn.response or []
                for c in _normalise(item.get("attributes", {})).get("objectclass", [])
            }
            if classes & GROUP_CLASSES:
                seen.append(member)
                queue.append(member)
    return seen
