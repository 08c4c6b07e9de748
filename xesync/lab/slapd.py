"""A throwaway OpenLDAP ``slapd`` on a loopback port: the lab's real directory.

``xesync lab serve`` and the LDAP tests run it (STYLE.md §10, "Real slapd"). Each instance lives in its
own temporary directory with an old-style ``slapd.conf``, runs in the foreground as a child of this
process, and is stopped by its own PID. It runs with ``-d none`` rather than ``-d 0``: both keep slapd
in the foreground, but only ``none`` (uncategorised messages) prints why a start failed, e.g. a config
error or a port in use, and it stays silent while serving.

The LDIF is loaded over the wire by :mod:`xesync.lab.slapd_seed`, so the ``memberof`` overlay sees
every add. With ``ldaps=True`` the server also listens on ``ldaps://`` and offers StartTLS with a
self-signed certificate; :attr:`SlapdServer.ca_file` is that certificate. The installed files, the
``slapd.conf`` (database, overlays, access rules) and the certificate come from
:mod:`xesync.lab.slapd_config`, which owns :class:`SlapdError` and :func:`find_slapd` (re-exported here).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import ldap3
import structlog
from ldap3.core.exceptions import LDAPException

from xesync import events
from xesync.lab.http import check_loopback
from xesync.lab.ldif import LdifEntry, normalise_dn, read_ldif
from xesync.lab.slapd_config import (
    AD_SCHEMA,
    DATA,
    MODULE_DIRS,
    SCHEMA_DIRS,
    SLAPD_CANDIDATES,
    SlapdError,
    find_slapd,
    make_certificate,
    render_config,
)
from xesync.lab.slapd_seed import seed

log = structlog.get_logger(__name__)

__all__ = [
    "AD_SCHEMA",
    "DATA",
    "MODULE_DIRS",
    "SCHEMA_DIRS",
    "SLAPD_CANDIDATES",
    "SlapdError",
    "SlapdServer",
    "find_slapd",
]

_STOP_WAIT = 5.0
_PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
_PORT_ATTEMPTS = 3


class SlapdServer:
    """A running ``slapd`` serving one LDIF under ``base_dn``; a context manager.

    :param ldif: the entries to load (content records; ``memberOf``/``entryUUID`` are computed).
    :param base_dn: the database suffix; the LDIF's top entry.
    :param bind_dn: the service account, made the database's ``rootdn`` (so it must be under ``base_dn``).
    :param password: its password.
    :param host: a loopback address to listen on.
    :param port: the ``ldap://`` port; 0 picks a free one.
    :param ldaps: also listen on ``ldaps://`` (another free port) and offer StartTLS.
    :param start_timeout: how long to wait, in seconds, for slapd to accept a bind.
    :param slapd: the binary (default: found on ``PATH`` or in the usual places).
    """

    def __init__(
        self,
        ldif: Path,
        base_dn: str,
        bind_dn: str,
        password: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ldaps: bool = False,
        start_timeout: float = 10.0,
        slapd: Path | None = None,
    ) -> None:
        self.ldif = ldif
        self._base_dn = base_dn
        self._bind_dn = bind_dn
        self._password = password
        self.host = check_loopback(host)
        self._requested_port = port
        self.ldaps = ldaps
        self.start_timeout = start_timeout
        self._slapd = slapd
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port = 0
        self._ldaps_port = 0

    # ---------------------------------------------------------------------------------- properties

    @property
    def url(self) -> str:
        """``ldap://127.0.0.1:PORT`` (StartTLS is offered there too when ``ldaps=True``)."""
        self._require_running()
        return f"ldap://{self.host}:{self._port}"

    @property
    def ldaps_url(self) -> str:
        """``ldaps://127.0.0.1:PORT``; only with ``ldaps=True``."""
        self._require_running()
        if not self.ldaps:
            raise SlapdError("this slapd was started without ldaps=True")
        return f"ldaps://{self.host}:{self._ldaps_port}"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate (PEM) that verifies the TLS listener; only with ``ldaps=True``."""
        self._require_running()
        if not self.ldaps or self._workdir is None:
            raise SlapdError("this slapd was started without ldaps=True")
        return self._workdir / "tls" / "cert.pem"

    @property
    def port(self) -> int:
        """The ``ldap://`` port."""
        self._require_running()
        return self._port

    @property
    def bind_dn(self) -> str:
        """The service account's DN (the ``rootdn``)."""
        return self._bind_dn

    @property
    def password(self) -> str:
        """The service account's password."""
        return self._password

    @property
    def base_dn(self) -> str:
        """The database suffix."""
        return self._base_dn

    @property
    def pid(self) -> int | None:
        """slapd's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether slapd was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Configure, start and load slapd; on any failure, clean up and raise :class:`SlapdError`."""
        if self._process is not None:
            raise SlapdError("slapd is already running")
        binary = self._slapd or find_slapd()
        if binary is None:
            raise SlapdError("slapd is not installed: apt-get install slapd ldap-utils (or run `make test`)")
        bind, base = normalise_dn(self._bind_dn), normalise_dn(self._base_dn)
        if bind != base and not bind.endswith("," + base):
            raise SlapdError(
                f"bind_dn {self._bind_dn!r} must be under base_dn {self._base_dn!r} (it is the rootdn)"
            )
        entries = read_ldif(self.ldif)
        self._workdir = Path(tempfile.mkdtemp(prefix="xesync-slapd-"))
        try:
            self._start(binary, entries)
        except BaseException:
            self.stop()
            raise
        log.info(events.LAB_STARTED, service="slapd", url=self.url, pid=self.pid, entries=len(entries))
        return self

    def _start(self, binary: Path, entries: list[LdifEntry]) -> None:
        workdir = self._require_workdir()
        (workdir / "db").mkdir(mode=0o700)
        if self.ldaps:
            make_certificate(workdir / "tls", self.host)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._port = self._requested_port or _free_port(self.host)
            self._ldaps_port = _free_port(self.host) if self.ldaps else 0
            conf = workdir / "slapd.conf"
            text = render_config(
                workdir,
                base_dn=self._base_dn,
                bind_dn=self._bind_dn,
                password=self._password,
                ldaps=self.ldaps,
            )
            conf.write_text(text, encoding="utf-8")
            conf.chmod(0o600)
            try:
                self._spawn(binary, conf, workdir / "slapd.log")
                break
            except SlapdError:
                # Another process may have taken the free port between the probe and slapd's bind.
                if self._requested_port or attempt == _PORT_ATTEMPTS or not self._port_lost(workdir):
                    raise
        self._load(entries)

    def _spawn(self, binary: Path, conf: Path, log_path: Path) -> None:
        urls = f"ldap://{self.host}:{self._port}/"
        if self.ldaps:
            urls += f" ldaps://{self.host}:{self._ldaps_port}/"
        with log_path.open("wb") as log_file:
            try:
                self._process = subprocess.Popen(
                    [str(binary), "-f", str(conf), "-h", urls, "-d", "none"],  # see the module docstring
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=conf.parent,
                    preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl(2) runs in the child
                )
            except OSError as exc:
                raise SlapdError(f"cannot run {binary}: {exc}") from None
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            status = self._process.poll()
            if status is not None:
                self._process = None
                raise SlapdError(f"slapd exited at start (status {status}):\n{_tail(log_path)}")
            try:
                # A short timeout: whatever answers on the port may not be this slapd.
                self.connection(timeout=1).unbind()
                return
            except LDAPException as exc:
                last = exc
                time.sleep(0.05)
        output = _tail(log_path)
        self._kill()
        raise SlapdError(f"slapd did not accept a bind within {self.start_timeout:.0f}s ({last}):\n{output}")

    def _port_lost(self, workdir: Path) -> bool:
        text = _tail(workdir / "slapd.log")
        return "Address already in use" in text or "bind(" in text

    def stop(self) -> None:
        """Stop slapd by its PID (SIGTERM, then SIGKILL) and remove its directory; idempotent."""
        was_running = self._process is not None
        self._kill()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if was_running:
            log.info(events.LAB_STOPPED, service="slapd")

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_WAIT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------- use

    def connection(self, timeout: int = 10) -> ldap3.Connection:
        """A new connection bound as the service account (the caller unbinds it).

        :param timeout: seconds to wait for the TCP connect and for each answer.
        """
        server = ldap3.Server(self.host, port=self._port, get_info=ldap3.NONE, connect_timeout=timeout)
        conn = ldap3.Connection(
            server,
            user=self._bind_dn,
            password=self._password,
            receive_timeout=timeout,
            raise_exceptions=True,
        )
        try:
            conn.open()
            conn.bind()
        except LDAPException:
            # ldap3 leaves the socket of a failed open or bind to the garbage collector.
            with contextlib.suppress(LDAPException, OSError):
                conn.unbind()
            if conn.socket is not None:
                conn.socket.close()
            raise
        return conn

    def _load(self, entries: list[LdifEntry]) -> None:
        """Add the entries over the wire (see :mod:`xesync.lab.slapd_seed`)."""
        conn = self.connection()
        try:
            seed(conn, entries, self.ldif)
        finally:
            conn.unbind()

    def _require_running(self) -> None:
        if self._process is None:
            raise SlapdError("slapd is not running; call start() or use it as a context manager")

    def _require_workdir(self) -> Path:
        if self._workdir is None:
            raise SlapdError("slapd has no working directory")
        return self._workdir


# -------------------------------------------------------------------------------------- helpers


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that has Linux SIGTERM slapd when this process dies, even by SIGKILL.

    Without it, a lab killed with SIGKILL (a test's teardown, the OOM killer) leaves slapd running
    forever. The kernel sends the signal when the *thread* that started slapd ends, so start it from
    a thread that lives as long as the lab (``Lab`` starts it from the caller's thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path, limit: int = 4000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8", errors="replace")[-limit:].strip() or "(no output)"
    return "(no output)"
