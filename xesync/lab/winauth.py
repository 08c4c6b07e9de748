"""Windows authentication in front of the simulators IIS serves (EWS, TMS): NTLM and Negotiate, and Basic.

On-premises Exchange and Cisco TMS run in IIS with Windows authentication on by default. IIS answers a
request without credentials ``401`` with one ``WWW-Authenticate`` header per enabled provider
(``Negotiate``, ``NTLM``, then ``Basic realm="…"`` where Basic is on). NTLM then takes two more
requests on the **same keep-alive connection**: the client's NEGOTIATE message (type 1) is answered
``401`` with ``WWW-Authenticate: NTLM <CHALLENGE>`` (type 2), and the AUTHENTICATE message (type 3)
rides on the real request, which is served when it verifies. ``Negotiate`` carries the same NTLM
messages raw (as requests-ntlm sends them) or wrapped in SPNEGO. IIS keeps the connection
authenticated afterwards (``authPersistSingleRequest`` false, its default), so later requests on it
need no header (it says ``Persistent-Auth: true``); the ``auth_persist`` knob switches that off.

The NTLM cryptography is pyspnego's acceptor, never our own. Its only documented source of passwords
is the file named by the environment variable ``NTLM_USER_FILE`` (``DOMAIN:USER:PASSWORD`` lines), read
while a handshake step runs. The lab keeps one such file per process and, under one lock, writes the
running simulator's accounts into it before each step, so that two labs in one process (tests) with
different passwords never verify against each other's. The passwords are the fixture's, fake by design.

Terminology:
    *scheme*: ``negotiate``, ``ntlm`` or ``basic``, as a fixture's ``auth`` list names them.
    *login*: how an account's name is written: ``DOMAIN\\user``, a UPN ``user@domain``, or a bare user.
    *identity*: the ``(domain, user)`` pair an NTLM AUTHENTICATE message names; the domain is empty
    for a UPN. Every login form of an account maps to its identities (NetBIOS and DNS domain alike).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import spnego
from spnego.exceptions import SpnegoError

from xesync.lab.http import LabRequest, LabResponse

P = TypeVar("P")

SCHEMES = ("negotiate", "ntlm", "basic")
DEFAULT_SCHEMES = SCHEMES
_HEADER_NAME = {"negotiate": "Negotiate", "ntlm": "NTLM"}
_DENIED = b"401 - Unauthorized: Access is denied due to invalid credentials."
_NTLM_SIGNATURE = b"NTLMSSP\x00"
_SPNEGO_INIT = 0x60  # an SPNEGO NegTokenInit starts with [APPLICATION 0]

_STORE_LOCK = threading.Lock()
_store: dict[str, Any] = {"path": None, "text": None}


class AuthSchemeError(ValueError):
    """A fixture's ``auth`` list names an unknown scheme or none at all."""

    def __init__(self, where: str, value: object) -> None:
        self.where = where
        super().__init__(f"{where}.auth: must be a non-empty list of {list(SCHEMES)}, not {value!r}")


def parse_schemes(value: object, where: str) -> tuple[str, ...]:
    """A checked ``auth`` list (lower case, in the order IIS would offer them).

    :raises AuthSchemeError: for an unknown scheme or an empty list.
    """
    if not isinstance(value, list | tuple) or not value:
        raise AuthSchemeError(where, value)
    names = {str(v).lower() for v in value}
    if names - set(SCHEMES):
        raise AuthSchemeError(where, value)
    return tuple(s for s in SCHEMES if s in names)


@dataclass(frozen=True, slots=True)
class Account(Generic[P]):
    """One account IIS can authenticate: a login form, its password and who it is to the simulator."""

    login: str
    password: str
    principal: P


def identities(login: str, *, netbios: str, dns_domain: str) -> set[tuple[str, str]]:
    """The ``(domain, user)`` pairs (case-folded) under which AD would accept ``login``."""
    aliases = {netbios.casefold(), dns_domain.casefold()}
    domain, sep, user = login.partition("\\")
    if sep:
        found = {(domain.casefold(), user.casefold())}
        if domain.casefold() in aliases:
            found |= {(alias, user.casefold()) for alias in aliases}
            found.add(("", f"{user}@{dns_domain}".casefold()))
        return found
    local, at, upn_domain = login.partition("@")
    if at:
        found = {("", login.casefold())}
        if upn_domain.casefold() in aliases:
            found |= {(alias, local.casefold()) for alias in aliases}
        return found
    return {("", login.casefold())} | {(alias, login.casefold()) for alias in aliases}


class WindowsAuth(Generic[P]):
    """The IIS authentication front of one simulator.

    :param accounts: who may authenticate, each login form with its password and principal.
    :param netbios: the fixture's NetBIOS domain (``LAB``).
    :param dns_domain: the fixture's DNS domain (``lab.example``).
    :param realm: the ``Basic`` realm.
    """

    def __init__(self, accounts: Iterable[Account[P]], *, netbios: str, dns_domain: str, realm: str) -> None:
        self.realm = realm
        self._principals: dict[tuple[str, str], P] = {}
        lines: list[str] = []
        for account in accounts:
            if any(c in account.password for c in ":\r\n"):
                # NTLM_USER_FILE lines are colon-separated; such a password cannot be stored there.
                raise ValueError(f"{account.login}: a lab password for NTLM may not contain ':' or newlines")
            for domain, user in sorted(identities(account.login, netbios=netbios, dns_domain=dns_domain)):
                if (domain, user) not in self._principals:
                    self._principals[(domain, user)] = account.principal
                    lines.append(f"{domain}:{user}:{account.password}")
        self._store_text = "\n".join(lines) + "\n"

    # ---------------------------------------------------------------------------------- HTTP

    def challenge(self, schemes: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> LabResponse:
        """401 offering every enabled scheme, as IIS lists its providers."""
        headers = [("WWW-Authenticate", _HEADER_NAME[s]) for s in schemes if s in _HEADER_NAME]
        if "basic" in schemes:
            headers.append(("WWW-Authenticate", f'Basic realm="{self.realm}"'))
        headers.extend(extra)
        return LabResponse(status=401, body=_DENIED, content_type="text/html", headers=headers)

    def gate(self, request: LabRequest, *, schemes: Sequence[str], persist: bool) -> LabResponse | None:
        """Answer an authentication leg with a 401, or let the request through (``None``).

        A request let through either carries ``request.principal`` (Windows authentication vouched for
        it) or other credentials (Basic, Bearer) that the simulator checks itself.
        """
        connection = request.connection
        scheme, _, value = request.header("Authorization").strip().partition(" ")
        scheme = scheme.lower()
        if scheme in _HEADER_NAME:
            connection.principal = None  # a new handshake re-authenticates the connection
            if scheme not in schemes:
                connection.handshake = None
                return self.challenge(schemes)
            try:
                token = base64.b64decode(value.strip(), validate=True)
            except binascii.Error:
                connection.handshake = None
                return self.challenge(schemes)
            return self._step(request, scheme, token, schemes=schemes, persist=persist)
        if not scheme:
            if connection.principal is not None:
                request.principal = connection.principal
                return None
            return self.challenge(schemes)
        if scheme == "basic" and "basic" not in schemes:
            return self.challenge(schemes)
        return None

    def _step(
        self, request: LabRequest, scheme: str, token: bytes, *, schemes: Sequence[str], persist: bool
    ) -> LabResponse | None:
        connection = request.connection
        if _is_first(token):
            context = _accept(scheme, self._store_text)
            connection.handshake = (scheme, context)
        elif connection.handshake is None or connection.handshake[0] != scheme:
            return self.challenge(schemes)
        else:
            context = connection.handshake[1]
        try:
            out = _step(context, token, self._store_text)
        except SpnegoError:
            connection.handshake = None
            return self.challenge(schemes)
        header = f"{_HEADER_NAME[scheme]} {base64.b64encode(out).decode()}" if out else None
        if not context.complete:
            return LabResponse(
                status=401,
                body=_DENIED,
                content_type="text/html",
                headers=[("WWW-Authenticate", header or "")],
            )
        connection.handshake = None
        principal = self._principals.get(_identity(context.client_principal))
        if principal is None:
            return self.challenge(schemes)
        request.principal = principal
        if persist:
            connection.principal = principal
        if header:
            request.response_headers.append(("WWW-Authenticate", header))
        # tms-booking-api.md §2.4: real IIS replies carry Persistent-Auth [observed]; "false" for a
        # single-request setting is [unconfirmed].
        request.response_headers.append(("Persistent-Auth", "true" if persist else "false"))
        return None


def _is_first(token: bytes) -> bool:
    """A raw NTLM NEGOTIATE message (type 1) or an SPNEGO NegTokenInit: a handshake starts."""
    if token.startswith(_NTLM_SIGNATURE):
        return token[8:12] == b"\x01\x00\x00\x00"
    return bool(token) and token[0] == _SPNEGO_INIT


def _identity(client_principal: str | None) -> tuple[str, str]:
    domain, sep, user = (client_principal or "").partition("\\")
    if not sep:
        return "", domain.casefold()
    return domain.casefold(), user.casefold()


def _accept(scheme: str, store_text: str) -> Any:
    options = spnego.NegotiateOptions.use_ntlm if scheme == "ntlm" else spnego.NegotiateOptions.use_negotiate
    with _STORE_LOCK:
        _use_store(store_text)
        return spnego.server(service="http", protocol=scheme, options=options)


def _step(context: Any, token: bytes, store_text: str) -> bytes | None:
    with _STORE_LOCK:
        _use_store(store_text)
        out = context.step(token)
    return None if out is None else bytes(out)


def _use_store(text: str) -> None:
    """Point pyspnego's acceptor at a file holding ``text`` (caller holds ``_STORE_LOCK``)."""
    path = _store["path"]
    if path is None:
        folder = tempfile.mkdtemp(prefix="xesync-lab-ntlm-")  # mode 0700
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = str(Path(folder) / "ntlm-users")
        _store["path"] = path
    if _store["text"] != text or not Path(path).exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _store["text"] = text
    if os.environ.get("NTLM_USER_FILE") != path:
        os.environ["NTLM_USER_FILE"] = path
