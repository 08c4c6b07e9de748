"""The directory adapter: organisers and their PMP+ entitlement from LDAP / Active Directory (ldap3).

:class:`LdapResolver` holds the lookups: it finds a person by mail address, decides PMP+
entitlement, and caches each answer (a miss too) for ``ldap.cache_ttl``. It runs its searches
through an :class:`LdapSession`, which owns the connection. :class:`LdapDirectory`, the production
implementation of :class:`xesync.directory.Directory`, is the resolver over a server
(``ldaps://``, or ``ldap://`` with or without StartTLS); its connection, TLS verification, the one
reconnect after a drop, and the translation of ldap3's errors into ours live in
:mod:`xesync.adapters.ldap_connection`. Other sessions exist outside the core: the lab runs the same
resolver on its LDIF fixture (ldap3's mock strategy), the tests on stand-ins for servers we cannot run.

PMP+ entitlement is membership of any of ``ldap.pmp_groups``, nested groups included, found as
``ldap.group_membership`` says (see :class:`~xesync.config.GroupMembership`); ``auto`` asks the rootDSE
whether the server is AD, else probes whether the server maintains ``memberOf``.

The values the searches deal in (filter escaping, DN comparison, GUIDs, the username / JID
templates, decoding and picking search entries) live in :mod:`xesync.adapters.ldap_values`; the
public ones are re-exported here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, Self, TypeVar

import ldap3
import structlog
from ldap3.core import exceptions as lx

from xesync import events
from xesync.adapters.ldap_connection import LdapConnector, parse_endpoint
from xesync.adapters.ldap_values import (
    decode_entry,
    escape_filter_value,
    first_text,
    format_template,
    mail_value,
    normalise_dn,
    pick_entry,
    render_guid,
    texts,
)
from xesync.config import GroupMembership, LdapConfig
from xesync.config.ldap_section import ldap_problems
from xesync.config.reader import ca_file_problem
from xesync.directory import NotInDirectory, Person
from xesync.errors import ConfigError, LdapLookupError

__all__ = [
    "IN_CHAIN_RULE",
    "LdapDirectory",
    "LdapResolver",
    "LdapSession",
    "escape_filter_value",
    "format_template",
    "normalise_dn",
    "render_guid",
]

T = TypeVar("T")

IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN (AD only)
# rootDSE supportedCapabilities of AD DS (LDAP_CAP_ACTIVE_DIRECTORY_OID) and AD LDS (…_ADAM_OID).
_AD_CAPABILITIES = frozenset({"1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1851"})
_MAX_NESTING = 32  # deeper group nesting than this is a directory bug, not an organisation chart
_CACHE_LIMIT = 10_000


class LdapSession(Protocol):
    """Owns the connection an :class:`LdapResolver` searches on."""

    def call(self, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run ``operation`` on a bound connection (opening one if need be) and return its result.

        :raises xesync.errors.XesyncError: ldap3's errors, translated (see
            :meth:`xesync.adapters.ldap_connection.LdapConnector.call`).
        """
        ...

    def close(self) -> None:
        """Release the connection; a later :meth:`call` opens a new one."""
        ...


class LdapResolver:
    """Resolves organisers (:class:`xesync.directory.Directory`) by searching through a session.

    :param cfg: the ``[ldap]`` section (its connection keys are the session's business).
    :param session: where the searches run.
    :param clock: monotonic seconds, for the cache (tests pass their own).
    :param logger: a structlog logger (default: this module's).
    """

    def __init__(
        self,
        cfg: LdapConfig,
        session: LdapSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        self.cfg = cfg
        self._clock = clock
        self._log = logger if logger is not None else structlog.get_logger(__name__)
        self._session = session
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
                self._session.call(lambda conn: self._lookup(conn, wanted))
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
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        alternatives = "".join(f"({attr}={mail_value(attr, value)})" for attr in cfg.mail_attributes)
        query = f"(&{cfg.user_filter}(|{alternatives}))"
        entries = self._search(conn, cfg.base_dn, query, self._attributes())
        if not entries:
            return NotInDirectory(address)
        dn, attrs = pick_entry(entries, address, cfg.mail_attributes, cfg.base_dn)
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
        return [decode_entry(item) for item in responses if item.get("type") == "searchResEntry"]

    def _read(self, conn: ldap3.Connection, dn: str, attributes: list[str]) -> dict[str, list[bytes]] | None:
        """One entry's attributes, or ``None`` when it does not exist (a dangling member value)."""
        try:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=attributes)
        except lx.LDAPNoSuchObjectResult:
            return None
        found = [decode_entry(item) for item in conn.response or [] if item.get("type") == "searchResEntry"]
        return found[0][1] if found else None

    def _person(self, dn: str, attrs: dict[str, list[bytes]], address: str, group: str | None) -> Person:
        cfg = self.cfg
        username = first_text(attrs, cfg.username_attribute)
        if username is None:
            raise LdapLookupError(
                dn, f"the entry has no {cfg.username_attribute}; set ldap.username_attribute"
            )
        mails = texts(attrs, "mail")
        proxies = [p for p in texts(attrs, "proxyAddresses") if p[:5].lower() == "smtp:"]
        primary = next((p[5:] for p in proxies if p.startswith("SMTP:")), None)
        email = (mails[0] if mails else None) or primary or first_text(attrs, "userPrincipalName") or address
        guid_raw = attrs.get(cfg.guid_attribute.lower(), [])
        return Person(
            dn=dn,
            username=username,
            tms_username=format_template(
                cfg.tms_username_format, domain=cfg.tms_domain, username=username, mail=email
            ),
            display_name=first_text(attrs, "displayName") or first_text(attrs, "cn") or email,
            first_name=first_text(attrs, "givenName"),
            last_name=first_text(attrs, "sn"),
            email=email,
            addresses=frozenset(a.lower() for a in [*mails, *(p[5:] for p in proxies)]),
            jid=None
            if cfg.jid_template is None
            else format_template(cfg.jid_template, domain=cfg.tms_domain, username=username, mail=email),
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
            return self._climb(texts(attrs, "memberOf"), lambda g: self._member_of(conn, g))
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
        return texts(attrs, "memberOf") if attrs else []

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
        found = [
            decode_entry(item)[1] for item in conn.response or [] if item.get("type") == "searchResEntry"
        ]
        return bool(found) and bool(_AD_CAPABILITIES & set(texts(found[0], "supportedCapabilities")))

    def _detect(self, conn: ldap3.Connection) -> GroupMembership:
        """``auto``: in-chain on AD, else memberOf if the server maintains it, else a walk."""
        self._in_chain_checked = True
        if self._is_ad(conn):
            mode, reason = GroupMembership.IN_CHAIN, "the server is Active Directory"
        else:
            mode, reason = GroupMembership.WALK, "no PMP+ group with members was found"
            for group in self.cfg.pmp_groups:
                members = texts(self._read(conn, group, ["member"]) or {}, "member")
                probe = self._read(conn, members[0], ["memberOf"]) if members else None
                if probe is None:
                    continue
                if normalise_dn(group) in {normalise_dn(g) for g in texts(probe, "memberOf")}:
                    mode, reason = GroupMembership.MEMBER_OF, "the server maintains memberOf"
                else:
                    reason = "the server does not maintain memberOf"
                break
        self._membership = mode
        level = self._log.warning if reason.startswith("no ") else self._log.info
        level(events.LDAP_MEMBERSHIP_DETECTED, membership=str(mode), reason=reason)
        return mode


class LdapDirectory(LdapResolver):
    """The production directory: the resolver over an LDAP / AD server (``ldaps://`` or ``ldap://``).

    :param cfg: the ``[ldap]`` section.
    :param clock: monotonic seconds, for the cache (tests pass their own).
    :param logger: a structlog logger (default: this module's).
    :raises ConfigError: the section breaks a rule of :func:`xesync.config.ldap_section.ldap_problems`
        (a configuration built by :func:`xesync.config.load` never does), or the CA file is missing.
    """

    def __init__(
        self, cfg: LdapConfig, *, clock: Callable[[], float] = time.monotonic, logger: Any = None
    ) -> None:
        problems = [f"ldap.{key}: {text}" for key, text in ldap_problems(cfg)]
        # Before the connector: ldap3 itself refuses a missing CA file, without naming the key.
        ca_problem = ca_file_problem(cfg.tls.ca_file)
        if ca_problem:
            problems.append(f"ldap.ca_file: {ca_problem}")
        if problems:
            raise ConfigError(problems)
        log = logger if logger is not None else structlog.get_logger(__name__)
        self._connector = LdapConnector(cfg, parse_endpoint(cfg.url), log)
        super().__init__(cfg, self._connector, clock=clock, logger=log)
