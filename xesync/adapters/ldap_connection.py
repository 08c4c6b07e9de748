"""The directory adapter's connection: open, bind, reopen, and turn ldap3's errors into ours.

:class:`~xesync.adapters.ldap.LdapDirectory` resolves; this module connects. One of two kinds of
connection, chosen by ``ldap.url``:

- ``ldaps://host[:636]``: TLS from the first byte;
- ``ldap://host[:389]``: StartTLS when ``ldap.start_tls`` is true, else plain (warned about unless
  the host is a loopback address).

TLS is verified by default (``ldap.verify_tls``), against ``ldap.ca_file`` or the system's CAs, with
OpenSSL's own host name check. The connection is opened lazily, reused, and re-opened **once** when
it drops in the middle of a lookup (lookups are reads, so repeating one is safe); a second failure
is :class:`~xesync.errors.LdapUnavailableError`, which callers retry on their next run.

ldap3's errors are translated here, once (STYLE.md §4): into
:class:`~xesync.errors.LdapUnavailableError` (unreachable or busy; retry later),
:class:`~xesync.errors.LdapTlsError` (the certificate did not verify) or
:class:`~xesync.errors.LdapLookupError` (bind refused, no such entry, no access, StartTLS refused).
:func:`ldap_error` is that table, for any session that runs the resolver's searches.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as lx

from xesync import events
from xesync.config import LdapConfig
from xesync.config.ldap_section import ldap_endpoint
from xesync.errors import (
    ConfigError,
    LdapLookupError,
    LdapTlsError,
    LdapUnavailableError,
    XesyncError,
)

__all__ = ["Endpoint", "LdapConnector", "VerifyingTls", "ldap_error", "parse_endpoint", "unbind"]

T = TypeVar("T")

# A dropped or hung connection: worth one reconnect.
_DROPPED = (lx.LDAPCommunicationError, lx.LDAPResponseTimeoutError)
# The server is up but will not serve now: retry on the next run.
_BUSY = (
    lx.LDAPBusyResult,
    lx.LDAPUnavailableResult,
    lx.LDAPTimeLimitExceededResult,
    lx.LDAPAdminLimitExceededResult,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where ``ldap.url`` points."""

    scheme: str  # ldap | ldaps
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Whether the host is this machine (``localhost`` or a loopback address)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_endpoint(url: str) -> Endpoint:
    """Parse ``ldap.url`` (the rule is :func:`xesync.config.ldap_section.ldap_endpoint`).

    :raises ConfigError: not an ``ldap://host[:port]`` or ``ldaps://host[:port]`` URL.
    """
    try:
        scheme, host, port = ldap_endpoint(url)
    except ValueError as exc:
        raise ConfigError([f"ldap.url: {exc}"]) from None
    return Endpoint(scheme, host, port)


class VerifyingTls(ldap3.Tls):  # type: ignore[misc]  # ldap3 ships no type hints
    """ldap3's Tls, but with OpenSSL's host name check and the reason of a failed verification kept.

    ldap3 2.9 checks host names with ``ssl.match_hostname``, deprecated since Python 3.7 and gone in
    3.12; OpenSSL checks them during the handshake instead (IP addresses included).
    """

    def __init__(self, *, verify: bool, ca_file: Path | None) -> None:
        super().__init__(
            validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
            ca_certs_file=str(ca_file) if ca_file else None,
        )
        self.verify = verify
        self.failure: str | None = None

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:  # noqa: ARG002 - always shakes hands
        context = ssl.create_default_context(cafile=self.ca_certs_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            connection.socket = context.wrap_socket(
                connection.socket, server_hostname=connection.server.host, do_handshake_on_connect=True
            )
        except ssl.SSLCertVerificationError as exc:
            self.failure = exc.verify_message or str(exc)
            raise


class LdapConnector:
    """Holds the one connection of an :class:`~xesync.adapters.ldap.LdapDirectory`.

    Not thread-safe on its own: the directory calls it under its lock.

    :param cfg: the ``[ldap]`` section, already checked.
    :param endpoint: ``cfg.url``, parsed by :func:`parse_endpoint`.
    :param logger: the directory's structlog logger.
    :raises ldap3.core.exceptions.LDAPSSLConfigurationError: ``ldap.ca_file`` does not exist (the
        directory checks that first and raises :class:`~xesync.errors.ConfigError` instead).
    """

    def __init__(self, cfg: LdapConfig, endpoint: Endpoint, logger: Any) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self._log = logger
        self._tls = (
            VerifyingTls(verify=cfg.tls.verify, ca_file=cfg.tls.ca_file)
            if endpoint.scheme == "ldaps" or (endpoint.scheme == "ldap" and cfg.start_tls)
            else None
        )
        self.conn: ldap3.Connection | None = None
        """The open connection, or ``None`` until the next :meth:`call` opens one."""

    def close(self) -> None:
        """Unbind; a later :meth:`call` connects again."""
        conn, self.conn = self.conn, None
        if conn is not None:
            unbind(conn)

    def connect(self) -> ldap3.Connection:
        """Open and bind a new connection (StartTLS first if configured); log how it is secured.

        :raises LdapTlsError: the server's certificate did not verify.
        :raises LdapUnavailableError: the server cannot be reached, or is busy.
        :raises LdapLookupError: the bind was refused, or StartTLS failed.
        """
        ep, cfg = self.endpoint, self.cfg
        if self._tls is not None:
            self._tls.failure = None
        conn: ldap3.Connection | None = None
        try:
            # ldap3 sets SO_RCVTIMEO from whole seconds.
            seconds = max(math.ceil(cfg.timeout.total_seconds()), 1)
            server = ldap3.Server(
                ep.host,
                port=ep.port,
                use_ssl=ep.scheme == "ldaps",
                tls=self._tls,
                get_info=ldap3.NONE,
                connect_timeout=seconds,
            )
            conn = ldap3.Connection(
                server,
                user=cfg.bind_dn,
                password=cfg.password.reveal(),
                receive_timeout=seconds,
                raise_exceptions=True,
                read_only=True,
                auto_referrals=False,
            )
            conn.open()
            if ep.scheme == "ldap" and cfg.start_tls:
                conn.start_tls()
            conn.bind()
            tls = "ldaps" if ep.scheme == "ldaps" else "starttls" if cfg.start_tls else "none"
        except (lx.LDAPException, OSError) as exc:
            if conn is not None:
                unbind(conn)
            raise self.translate(exc, cfg.bind_dn) from None
        plain_remote = tls == "none" and not ep.loopback
        # A plain bind outside the host sends the service account's password in clear text.
        log = self._log.warning if plain_remote else self._log.info
        log(events.LDAP_CONNECTED, url=cfg.url, bind_dn=cfg.bind_dn, tls=tls)
        return conn

    def call(self, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run ``operation`` on the open connection; re-open it once if it dropped.

        :raises LdapUnavailableError: the connection dropped twice, or see :meth:`connect`.
        :raises XesyncError: what :meth:`translate` makes of any other ldap3 error.
        """
        if self.conn is None:
            self.conn = self.connect()
        try:
            return self._attempt(self.conn, operation)
        except _DROPPED as exc:
            self._log.warning(
                events.LDAP_REQUEST_FAILED, url=self.cfg.url, error=type(exc).__name__, retry=True
            )
            self.close()
        self.conn = self.connect()
        self._log.info(events.LDAP_RECONNECTED, url=self.cfg.url)
        try:
            return self._attempt(self.conn, operation)
        except _DROPPED as exc:
            self.close()
            raise LdapUnavailableError(
                self.cfg.url, f"connection lost twice ({type(exc).__name__})"
            ) from None

    def _attempt(self, conn: ldap3.Connection, operation: Callable[[ldap3.Connection], T]) -> T:
        try:
            return operation(conn)
        except _DROPPED:
            raise
        except lx.LDAPException as exc:
            raise self.translate(exc, self.cfg.base_dn) from None

    def translate(self, exc: BaseException, dn: str) -> XesyncError:
        """Log a failed request and return the error of ours it amounts to (see :func:`ldap_error`)."""
        self._log.warning(events.LDAP_REQUEST_FAILED, url=self.cfg.url, error=type(exc).__name__, retry=False)
        failure = self._tls.failure if self._tls is not None else None
        return ldap_error(exc, self.cfg, dn, tls_failure=failure)


def ldap_error(  # noqa: PLR0911 - a table
    exc: BaseException, cfg: LdapConfig, dn: str, *, tls_failure: str | None = None
) -> XesyncError:
    """The error of ours an ldap3 (or socket) error amounts to, naming what to change.

    Transient (:class:`~xesync.errors.LdapUnavailableError`): the server is unreachable, dropped
    the connection, is busy or unavailable, or ran out of time. Everything else is permanent.

    :param exc: what ldap3 (or the socket) raised.
    :param cfg: the ``[ldap]`` section, for the keys named in the advice.
    :param dn: the entry the request was about, for :class:`~xesync.errors.LdapLookupError`.
    :param tls_failure: why the certificate did not verify, if that is what happened.
    """
    url = cfg.url
    if tls_failure is not None:
        return LdapTlsError(url, tls_failure)
    if isinstance(exc, lx.LDAPInvalidCredentialsResult):
        return LdapLookupError(cfg.bind_dn, "invalid credentials; check ldap.bind_dn and ldap.password")
    if isinstance(exc, lx.LDAPNoSuchObjectResult):
        return LdapLookupError(dn, "no such entry; check ldap.base_dn")
    if isinstance(exc, lx.LDAPInsufficientAccessRightsResult):
        return LdapLookupError(dn, f"{cfg.bind_dn} may not read it; grant it read access")
    if isinstance(exc, lx.LDAPStartTLSError):
        return LdapLookupError(dn, f"StartTLS failed ({exc}); enable TLS on the server or use ldaps://")
    if isinstance(exc, _BUSY):
        return LdapUnavailableError(url, str(exc.description))
    if isinstance(exc, (*_DROPPED, OSError)):
        return LdapUnavailableError(url, _reason(exc))
    if isinstance(exc, lx.LDAPOperationResult):
        return LdapLookupError(dn, f"{exc.description}: {exc.message}".rstrip(": "))
    return LdapLookupError(dn, f"{type(exc).__name__}: {exc}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unbind(conn: ldap3.Connection) -> None:
    """Unbind, and close the socket even when the unbind cannot be sent (a dead or half-open link)."""
    with contextlib.suppress(lx.LDAPException, OSError):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
