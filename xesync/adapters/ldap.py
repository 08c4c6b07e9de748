"""The directory adapter: organisers and their PMP+ entitlement from LDAP / Active Directory (ldap3).

One resolver, :class:`LdapDirectory`: it finds a person by mail address, decides PMP+ entitlement,
and caches each answer (a miss too) for ``ldap.cache_ttl``. Its connection (``ldaps://``,
``ldap://`` with or without StartTLS, or an ``ldif://`` mock), TLS verification, the one reconnect
after a drop, and the translation of ldap3's errors into ours live in
:mod:`xesync.adapters.ldap_connection`.

PMP+ entitlement is membership of any of ``ldap.pmp_groups``, nested groups included, found as
``ldap.group_membership`` says (see :class:`~xesync.config.GroupMembership`); ``auto`` asks the rootDSE
whether the server is AD, else probes whether the server maintains ``memberOf``.
"""

from __future__ import annotations

import re
import string
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Self

import ldap3
import structlog
from ldap3.core import exceptions as lx
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import safe_dn

from xesync import events
from xesync.adapters.ldap_connection import LdapConnector, parse_endpoint
from xesync.config import GroupMembership, LdapConfig
from xesync.directory import NotInDirectory, Person
from xesync.errors import ConfigError, LdapLookupError
from xesync.ldif import mock_connection_from_ldif, normalise_dn

__all__ = [
    "IN_CHAIN_RULE",
    "LdapDirectory",
    "escape_filter_value",
    "format_template",
    "mock_connection_from_ldif",
    "render_guid",
    "template_problems",
]

IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN (AD only)
# rootDSE supportedCapabilities of AD DS (LDAP_CAP_ACTIVE_DIRECTORY_OID) and AD LDS (…_ADAM_OID).
_AD_CAPABILITIES = frozenset({"1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1851"})
TEMPLATE_FIELDS = frozenset({"domain", "username", "mail"})
_MAX_NESTING = 32  # deeper group nesting than this is a directory bug, not an organisation chart
_CACHE_LIMIT = 10_000
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")
_FILTER_SPECIALS = {"\\": r"\5c", "*": r"\2a", "(": r"\28", ")": r"\29", "\0": r"\00"}


def escape_filter_value(value: str) -> str:
    r"""Escape an assertion value for an LDAP filter (RFC 4515 §3): NUL, ``*``, ``(``, ``)`` and ``\``."""
    return "".join(_FILTER_SPECIALS.get(ch, ch) for ch in value)


def format_template(template: str, *, domain: str, username: str, mail: str) -> str:
    """Fill ``ldap.tms_username_format`` or ``ldap.jid_template`` ({domain}, {username}, {mail})."""
    return template.format(domain=domain, username=username, mail=mail)


def template_problems(key: str, template: str) -> list[str]:
    """What is wrong with a template (unknown fields, attribute access, bad braces), with its key."""
    try:
        fields = [
            name for _text, name, _spec, _conv in string.Formatter().parse(template) if name is not None
        ]
    except ValueError as exc:
        return [f"{key}: {exc}"]
    allowed = ", ".join(f"{{{f}}}" for f in sorted(TEMPLATE_FIELDS))
    return [
        f"{key}: unknown field {{{name}}}; use {allowed}" for name in fields if name not in TEMPLATE_FIELDS
    ]


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


class LdapDirectory:
    """Resolves organisers in LDAP / AD (:class:`xesync.directory.Directory`).

    :param cfg: the ``[ldap]`` section.
    :param clock: monotonic seconds, for the cache (tests pass their own).
    :param logger: a structlog logger (default: this module's).
    :raises ConfigError: a template, the filter, the URL or the CA file is unusable.
    """

    def __init__(
        self, cfg: LdapConfig, *, clock: Callable[[], float] = time.monotonic, logger: Any = None
    ) -> None:
        self.cfg = cfg
        endpoint = parse_endpoint(cfg.url)
        # Before the connector: ldap3 itself refuses a missing CA file, without naming the key.
        _check_config(cfg)
        self._clock = clock
        self._log = logger if logger is not None else structlog.get_logger(__name__)
        self._connector = LdapConnector(cfg, endpoint, self._log)
        self._pmp = {normalise_dn(g): g for g in cfg.pmp_groups}
        self._membership: GroupMembership | None = (
            None if cfg.group_membership is GroupMembership.AUTO else cfg.group_membership
        )
        self._in_chain_checked = False
        self._cache: dict[str, tuple[float, Person | NotInDirectory]] = {}
        self._lock = threading.RLock()

    # ---------------------------------------------------------------------------------- public

    def resolve(self, address: str) -> Person | NotInDirectory:
        """Find the person with ``address`` (see :meth:`xesync.directory.Directory.resolve`)."""
        wanted = address.strip()
        key = wanted.casefold()
        with self._lock:
            now = self._clock()
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
            # No SMTP address contains a control character (RFC 5321), and some servers cut an
            # assertion value at NUL (OpenLDAP matches "alice@x\0" to alice@x): never ask.
            searchable = wanted and not any(ord(c) < 32 or ord(c) == 127 for c in wanted)  # noqa: PLR2004
            result: Person | NotInDirectory = (
                self._connector.call(lambda conn: self._lookup(conn, wanted))
                if searchable
                else NotInDirectory(wanted)
            )
            self._remember(key, result, now)
        if isinstance(result, Person):
            self._log.debug(events.LDAP_USER_RESOLVED, address=wanted, dn=result.dn, pmp=result.pmp)
        else:
            self._log.info(events.LDAP_USER_NOT_FOUND, address=wanted)
        return result

    @property
    def membership(self) -> GroupMembership | None:
        """How group membership is resolved; ``None`` until ``auto`` has been decided."""
        return self._membership

    def forget(self) -> None:
        """Empty the cache (e.g. after the PMP+ group changed)."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Unbind; a later :meth:`resolve` connects again."""
        with self._lock:
            self._connector.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- connection

    @property
    def _conn(self) -> ldap3.Connection | None:
        # The connector's open connection, kept under its old name: tests look at it, or put a
        # stand-in (an AD-like mock) in its place.
        return self._connector.conn

    @_conn.setter
    def _conn(self, conn: ldap3.Connection | None) -> None:
        self._connector.conn = conn

    # ---------------------------------------------------------------------------------- cache

    def _remember(self, key: str, result: Person | NotInDirectory, now: float) -> None:
        ttl = self.cfg.cache_ttl.total_seconds()
        if ttl <= 0:
            return
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= _CACHE_LIMIT:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (now + ttl, result)

    # ---------------------------------------------------------------------------------- lookups

    def _lookup(self, conn: ldap3.Connection, address: str) -> Person | NotInDirectory:
        cfg = self.cfg
        value = escape_filter_value(address)
        alternatives = "".join(f"({attr}={_mail_value(attr, value)})" for attr in cfg.mail_attributes)
        query = f"(&{cfg.user_filter}(|{alternatives}))"
        entries = self._search(conn, cfg.base_dn, query, self._attributes())
        if not entries:
            return NotInDirectory(address)
        dn, attrs = _pick(entries, address, cfg.mail_attributes, cfg.base_dn)
        group = self._pmp_group(conn, dn, attrs)
        return self._person(dn, attrs, address, group)

    def _attributes(self) -> list[str]:
        cfg = self.cfg
        wanted = ["cn", "displayName", "givenName", "sn", "mail", "proxyAddresses", "memberOf"]
        wanted += [*cfg.mail_attributes, cfg.username_attribute, cfg.guid_attribute]
        return list({a.lower(): a for a in wanted}.values())

    def _search(
        self, conn: ldap3.Connection, base: str, query: str, attributes: list[str]
    ) -> list[tuple[str, dict[str, list[bytes]]]]:
        seconds = max(int(self.cfg.timeout.total_seconds()), 1)
        responses = conn.extend.standard.paged_search(
            base,
            query,
            search_scope=ldap3.SUBTREE,
            attributes=attributes,
            paged_size=self.cfg.page_size,
            time_limit=seconds,
            generator=False,
        )
        return [_entry(item) for item in responses if item.get("type") == "searchResEntry"]

    def _read(self, conn: ldap3.Connection, dn: str, attributes: list[str]) -> dict[str, list[bytes]] | None:
        """One entry's attributes, or ``None`` when it does not exist (a dangling member value)."""
        try:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=attributes)
        except lx.LDAPNoSuchObjectResult:
            return None
        found = [_entry(item) for item in conn.response or [] if item.get("type") == "searchResEntry"]
        return found[0][1] if found else None

    def _person(self, dn: str, attrs: dict[str, list[bytes]], address: str, group: str | None) -> Person:
        cfg = self.cfg
        username = _first(attrs, cfg.username_attribute)
        if username is None:
            raise LdapLookupError(
                dn, f"the entry has no {cfg.username_attribute}; set ldap.username_attribute"
            )
        mails = _texts(attrs, "mail")
        proxies = [p for p in _texts(attrs, "proxyAddresses") if p[:5].lower() == "smtp:"]
        primary = next((p[5:] for p in proxies if p.startswith("SMTP:")), None)
        email = (mails[0] if mails else None) or primary or _first(attrs, "userPrincipalName") or address
        guid_raw = attrs.get(cfg.guid_attribute.lower(), [])
        return Person(
            dn=dn,
            username=username,
            tms_username=format_template(
                cfg.tms_username_format, domain=cfg.tms_domain, username=username, mail=email
            ),
            display_name=_first(attrs, "displayName") or _first(attrs, "cn") or email,
            first_name=_first(attrs, "givenName"),
            last_name=_first(attrs, "sn"),
            email=email,
            addresses=frozenset(a.lower() for a in [*mails, *(p[5:] for p in proxies)]),
            jid=format_template(cfg.jid_template, domain=cfg.tms_domain, username=username, mail=email),
            guid=render_guid(guid_raw[0]) if guid_raw else None,
            pmp=group is not None,
            pmp_group=group,
        )

    # ---------------------------------------------------------------------------------- membership

    def _pmp_group(self, conn: ldap3.Connection, dn: str, attrs: dict[str, list[bytes]]) -> str | None:
        """The PMP+ group ``dn`` belongs to (nested groups included), or ``None``."""
        mode = self._membership or self._detect(conn)
        if mode is GroupMembership.IN_CHAIN:
            if not self._in_chain_checked:
                self._in_chain_checked = True
                if not self._is_ad(conn):
                    # Other servers evaluate the unknown rule as Undefined: nobody would be PMP+.
                    self._log.warning(
                        events.LDAP_MEMBERSHIP_DETECTED,
                        membership=str(mode),
                        reason="configured, but the server is not Active Directory; use member_of or walk",
                    )
            for group in self.cfg.pmp_groups:
                # The server expands the nesting; a BASE search returns the entry only if it matches.
                query = f"(memberOf:{IN_CHAIN_RULE}:={escape_filter_value(group)})"
                conn.search(dn, query, search_scope=ldap3.BASE, attributes=[ldap3.NO_ATTRIBUTES])
                if any(item.get("type") == "searchResEntry" for item in conn.response or []):
                    return group
            return None
        if mode is GroupMembership.MEMBER_OF:
            return self._climb(_texts(attrs, "memberOf"), lambda g: self._member_of(conn, g))
        return self._climb(self._containing(conn, dn), lambda g: self._containing(conn, g))

    def _climb(self, first: list[str], parents: Callable[[str], list[str]]) -> str | None:
        """Walk up from ``first`` through ``parents`` (breadth first, each group once) to a PMP+ group."""
        seen: set[str] = set()
        level = first
        for _depth in range(_MAX_NESTING):
            fresh = [g for g in level if normalise_dn(g) not in seen]
            for group in fresh:
                key = normalise_dn(group)
                if key in self._pmp:
                    return self._pmp[key]
                seen.add(key)
            if not fresh:
                return None
            level = [parent for group in fresh for parent in parents(group)]
        return None

    def _member_of(self, conn: ldap3.Connection, group: str) -> list[str]:
        attrs = self._read(conn, group, ["memberOf"])
        return _texts(attrs, "memberOf") if attrs else []

    def _containing(self, conn: ldap3.Connection, member: str) -> list[str]:
        """The groups whose ``member`` names ``member`` (one step of a walk without ``memberOf``)."""
        query = f"(member={escape_filter_value(member)})"
        return [dn for dn, _attrs in self._search(conn, self.cfg.base_dn, query, [ldap3.NO_ATTRIBUTES])]

    def _is_ad(self, conn: ldap3.Connection) -> bool:
        """Whether the rootDSE announces Active Directory (DS or LDS)."""
        try:
            conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["supportedCapabilities"])
        except (lx.LDAPNoSuchObjectResult, lx.LDAPInvalidDnError):  # the mock has no rootDSE
            return False
        found = [_entry(item)[1] for item in conn.response or [] if item.get("type") == "searchResEntry"]
        return bool(found) and bool(_AD_CAPABILITIES & set(_texts(found[0], "supportedCapabilities")))

    def _detect(self, conn: ldap3.Connection) -> GroupMembership:
        """``auto``: in-chain on AD, else memberOf if the server maintains it, else a walk."""
        self._in_chain_checked = True
        if self._is_ad(conn):
            mode, reason = GroupMembership.IN_CHAIN, "the server is Active Directory"
        else:
            mode, reason = GroupMembership.WALK, "no PMP+ group with members was found"
            for group in self.cfg.pmp_groups:
                members = _texts(self._read(conn, group, ["member"]) or {}, "member")
                probe = self._read(conn, members[0], ["memberOf"]) if members else None
                if probe is None:
                    continue
                if normalise_dn(group) in {normalise_dn(g) for g in _texts(probe, "memberOf")}:
                    mode, reason = GroupMembership.MEMBER_OF, "the server maintains memberOf"
                else:
                    reason = "the server does not maintain memberOf"
                break
        self._membership = mode
        level = self._log.warning if reason.startswith("no ") else self._log.info
        level(events.LDAP_MEMBERSHIP_DETECTED, membership=str(mode), reason=reason)
        return mode


# ---------------------------------------------------------------------------------- helpers


def _check_config(cfg: LdapConfig) -> None:
    problems = template_problems("ldap.tms_username_format", cfg.tms_username_format)
    problems += template_problems("ldap.jid_template", cfg.jid_template)
    try:
        if not cfg.user_filter.startswith("("):
            raise lx.LDAPInvalidFilterError("a filter starts with '('")
        parse_filter(
            cfg.user_filter, None, auto_escape=False, auto_encode=False, validator=None, check_names=False
        )
    except lx.LDAPException as exc:
        problems.append(f"ldap.user_filter: not an LDAP filter ({exc})")
    for index, group in enumerate(cfg.pmp_groups):
        try:
            safe_dn(group)
        except lx.LDAPInvalidDnError:
            problems.append(f"ldap.pmp_groups[{index}]: not a DN: {group!r}")
    if not cfg.pmp_groups:
        problems.append("ldap.pmp_groups: name at least one PMP+ group")
    if cfg.tls.ca_file is not None and not cfg.tls.ca_file.is_file():
        problems.append(f"ldap.ca_file: no such file: {cfg.tls.ca_file}")
    if not cfg.mail_attributes:
        problems.append("ldap.mail_attributes: name at least one attribute")
    named = [(f"ldap.mail_attributes[{i}]", a) for i, a in enumerate(cfg.mail_attributes)]
    named += [
        ("ldap.username_attribute", cfg.username_attribute),
        ("ldap.guid_attribute", cfg.guid_attribute),
    ]
    problems += [
        f"{key}: not an attribute name: {name!r}" for key, name in named if not _ATTRIBUTE.match(name)
    ]
    if problems:
        raise ConfigError(problems)


def _mail_value(attribute: str, escaped: str) -> str:
    # proxyAddresses carries a type prefix; AD (and the lab schema) compare it case-insensitively,
    # so "smtp:" also finds the primary "SMTP:" address.
    return f"smtp:{escaped}" if attribute.lower() == "proxyaddresses" else escaped


def _pick(
    entries: list[tuple[str, dict[str, list[bytes]]]], address: str, order: tuple[str, ...], base: str
) -> tuple[str, dict[str, list[bytes]]]:
    """The entry whose best-ranked mail attribute (``ldap.mail_attributes`` order) has the address."""
    wanted = address.casefold()

    def rank(attrs: dict[str, list[bytes]]) -> int:
        for index, attr in enumerate(order):
            values = _texts(attrs, attr)
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


def _entry(item: dict[str, Any]) -> tuple[str, dict[str, list[bytes]]]:
    raw = item.get("raw_attributes") or {}
    attrs: dict[str, list[bytes]] = {}
    for name, values in raw.items():
        attrs.setdefault(name.lower(), []).extend(
            v if isinstance(v, bytes) else str(v).encode() for v in values
        )
    return str(item["dn"]), attrs


def _texts(attrs: dict[str, list[bytes]], name: str) -> list[str]:
    return [v.decode("utf-8", errors="replace") for v in attrs.get(name.lower(), [])]


def _first(attrs: dict[str, list[bytes]], name: str) -> str | None:
    values = [v for v in _texts(attrs, name) if v.strip()]
    return values[0] if values else None
