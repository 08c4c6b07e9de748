"""The lab's directory without slapd: xesync's resolver over the fixture's LDIF on ldap3's mock.

:class:`LdifDirectory` implements :class:`xesync.directory.Directory` with the production resolver
(:class:`xesync.adapters.ldap.LdapResolver`: the same searches, membership walk, templates and
cache) and a session of its own, :class:`LdifSession`, that opens the LDIF as a bound ldap3
``MOCK_SYNC`` connection. Only the connection differs from production, and it lives here, in the
lab: the production configuration and adapter know only ``ldap://`` and ``ldaps://``.

:func:`lab_ldap_config` is the ``[ldap]`` section that fits the lab's directory (OpenLDAP attribute
names, the fixture's NetBIOS and mail domains); ``xesync lab serve --write-config`` writes the same
values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import ldap3
import structlog
from ldap3.core import exceptions as lx

from xesync import events
from xesync.adapters.ldap import LdapResolver
from xesync.adapters.ldap_connection import ldap_error, unbind
from xesync.config import GroupMembership, LdapConfig, Secret
from xesync.lab.fixture import DirectoryLink, LabFixture
from xesync.lab.ldif import mock_connection_from_ldif

__all__ = ["LdifDirectory", "LdifSession", "lab_ldap_config"]

T = TypeVar("T")


def lab_ldap_config(link: DirectoryLink, fixture: LabFixture, **overrides: Any) -> LdapConfig:
    """The ``[ldap]`` section for the lab's directory at ``link``, with ``overrides`` applied."""
    values: dict[str, Any] = {
        "url": link.url,
        "bind_dn": link.bind_dn,
        "password": Secret(link.password),
        "base_dn": link.base_dn,
        "pmp_groups": (link.pmp_group_dn,),
        "username_attribute": "uid",
        "guid_attribute": "entryUUID",
        "tms_domain": fixture.netbios,
        "tms_username_format": "{domain}\\{username}",
        "jid_template": "{username}@" + fixture.domain,
        "group_membership": GroupMembership.MEMBER_OF,
        "timeout": timedelta(seconds=5),
    }
    values.update(overrides)
    return LdapConfig(**values)


class LdifSession:
    """The resolver's session on an LDIF file (:class:`xesync.adapters.ldap.LdapSession`).

    The file is read when the first lookup needs it and bound as ``cfg.bind_dn`` with
    ``cfg.password``, so a wrong password is refused as a server would refuse it. ldap3's errors
    become ours through :func:`xesync.adapters.ldap_connection.ldap_error`, as in production.

    :param ldif: the LDIF file.
    :param cfg: the ``[ldap]`` section; ``url``, ``start_tls``, ``tls`` and ``timeout`` are unused.
    :param logger: a structlog logger.
    """

    def __init__(self, ldif: Path, cfg: LdapConfig, logger: Any) -> None:
        self.ldif = ldif
        self.cfg = cfg
        self._log = logger
        self.conn: ldap3.Connection | None = None

    def call(self, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run ``operation`` on the mock connection, opening it first if need be.

        :raises xesync.lab.ldif.LdifError: the file is not LDIF the lab's reader accepts (a bug of
            the fixture, not an outage).
        """
        try:
            if self.conn is None:
                self.conn = mock_connection_from_ldif(self.ldif, self.cfg.bind_dn, self.cfg.password.reveal())
                self._log.info(
                    events.LDAP_CONNECTED, url=self.ldif.as_uri(), bind_dn=self.cfg.bind_dn, tls="mock"
                )
            return operation(self.conn)
        except (lx.LDAPException, OSError) as exc:
            # A missing or unreadable file is the mock's "server down": LdapUnavailableError.
            self._log.warning(
                events.LDAP_REQUEST_FAILED, url=self.ldif.as_uri(), error=type(exc).__name__, retry=False
            )
            raise ldap_error(exc, self.cfg, self.cfg.base_dn) from None

    def close(self) -> None:
        """Drop the mock connection; the next lookup reads the file again."""
        conn, self.conn = self.conn, None
        if conn is not None:
            unbind(conn)


class LdifDirectory(LdapResolver):
    """xesync's resolver over an LDIF file on ldap3's mock (:class:`xesync.directory.Directory`).

    :param ldif: the LDIF file (the lab's fixture directory, or a test's).
    :param cfg: the ``[ldap]`` section; its connection keys (``url``, ``start_tls``, ``tls``,
        ``timeout``) are unused.
    :param clock: monotonic seconds, for the cache.
    :param logger: a structlog logger (default: this module's).
    """

    def __init__(
        self,
        ldif: Path,
        cfg: LdapConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        log = logger if logger is not None else structlog.get_logger(__name__)
        self.session = LdifSession(ldif, cfg, log)
        super().__init__(cfg, self.session, clock=clock, logger=log)
