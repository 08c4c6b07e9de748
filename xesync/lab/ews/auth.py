"""Authentication: Windows (NTLM, Negotiate) and Basic for the service account and users, Bearer tokens.

Windows authentication runs in front of the simulator (:mod:`xesync.lab.winauth`, through the HTTP
core's gate); Basic and Bearer are checked here. The token endpoint answers exchangelib's
client-credentials request (``ews.md`` §1.1) at ``/<tenant>/oauth2/v2.0/token`` on the simulator's
own port.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from xesync.lab.ews.context import Principal
from xesync.lab.ews.settings import EwsSettings
from xesync.lab.fixture import LabFixture
from xesync.lab.http import LabRequest, LabResponse
from xesync.lab.winauth import Account, WindowsAuth


class Authenticator:
    """Checks ``Authorization`` headers against the fixture's accounts and issued tokens."""

    def __init__(self, fixture: LabFixture, settings: EwsSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._tokens: dict[str, datetime] = {}
        self._basic: dict[str, tuple[str, Principal]] = {}
        accounts: list[Account[Principal]] = []
        service = Principal(
            kind="service", name=settings.service_username, impersonates=settings.impersonates
        )
        self._add(settings.service_username, settings.service_password, service, accounts)
        for user in fixture.users:
            principal = Principal(kind="user", name=user.email, email=user.email)
            for name in (user.email, user.username, f"{fixture.netbios}\\{user.username}"):
                self._add(name, user.password, principal, accounts)
        self.windows = WindowsAuth(
            accounts, netbios=fixture.netbios, dns_domain=fixture.domain, realm=settings.realm
        )

    def _add(
        self, name: str, password: str, principal: Principal, accounts: list[Account[Principal]]
    ) -> None:
        self._basic[name.casefold()] = (password, principal)
        accounts.append(Account(name, password, principal))

    def gate(self, request: LabRequest) -> LabResponse | None:
        """The Windows-authentication leg of a request, answered before it is counted (``http.py``)."""
        return self.windows.gate(request, schemes=self.settings.auth, persist=self.settings.auth_persist)

    def check(self, request: LabRequest, now: datetime) -> Principal | None:
        """The principal behind the request's credentials, or ``None``."""
        if isinstance(request.principal, Principal):
            return request.principal
        header = request.header("Authorization")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and "basic" in self.settings.auth:
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            entry = self._basic.get(user.casefold())
            if entry is None or entry[0] != password:
                return None
            return entry[1]
        if scheme.lower() == "bearer" and self.settings.oauth is not None:
            with self._lock:
                expires = self._tokens.get(value.strip())
            if expires is None or expires <= now:
                return None
            return Principal(
                kind="app", name=self.settings.oauth.client_id, impersonates=self.settings.oauth.impersonates
            )
        return None

    def challenge(self) -> LabResponse:
        """401 with ``WWW-Authenticate`` (``ews.md`` §2.8.1): never a 200 to an unauthenticated probe."""
        extra = []
        if self.settings.oauth is not None:
            extra.append(("WWW-Authenticate", 'Bearer realm="lab", error="invalid_token"'))
        return self.windows.challenge(self.settings.auth, extra)

    def token(self, request: LabRequest, now: datetime) -> LabResponse:
        """The client-credentials grant."""
        app = self.settings.oauth
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if app is None:
            return _json(
                {"error": "unsupported", "error_description": "OAuth is not configured in [ews.oauth]"}, 404
            )
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        if form.get("client_id") != app.client_id or form.get("client_secret") != app.client_secret:
            return _json(
                {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}, 401
            )
        token = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        with self._lock:
            self._tokens[token] = now + timedelta(seconds=app.expires_in)
        return _json(
            {
                "token_type": "Bearer",
                "expires_in": app.expires_in,
                "ext_expires_in": app.expires_in,
                "access_token": token,
            }
        )

    def forget_tokens(self) -> None:
        """Invalidate every issued token (reset)."""
        with self._lock:
            self._tokens.clear()


def _json(data: object, status: int = 200) -> LabResponse:
    return LabResponse(status=status, body=json.dumps(data).encode(), content_type="application/json")
