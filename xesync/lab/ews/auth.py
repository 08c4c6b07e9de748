"""Authentication: Basic for the service account and users, Bearer tokens from a local token endpoint.

The token endpoint answers exchangelib's client-credentials request (``ews.md`` §1.1) at
``/<tenant>/oauth2/v2.0/token`` on the simulator's own port.
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


class Authenticator:
    """Checks ``Authorization`` headers against the fixture's accounts and issued tokens."""

    def __init__(self, fixture: LabFixture, settings: EwsSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._tokens: dict[str, datetime] = {}
        self._basic: dict[str, tuple[str, Principal]] = {}
        service = Principal(
            kind="service", name=settings.service_username, impersonates=settings.impersonates
        )
        self._add(settings.service_username, settings.service_password, service)
        for user in fixture.users:
            principal = Principal(kind="user", name=user.email, email=user.email)
            for name in (user.email, user.username, f"{fixture.netbios}\\{user.username}"):
                self._add(name, user.password, principal)

    def _add(self, name: str, password: str, principal: Principal) -> None:
        self._basic[name.casefold()] = (password, principal)

    def check(self, request: LabRequest, now: datetime) -> Principal | None:
        """The principal behind the request's credentials, or ``None``."""
        header = request.header("Authorization")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
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
        headers = [("WWW-Authenticate", f'Basic realm="{self.settings.realm}"')]
        if self.settings.oauth is not None:
            headers.append(("WWW-Authenticate", 'Bearer realm="lab", error="invalid_token"'))
        return LabResponse(status=401, body=b"", headers=headers, content_type="text/plain")

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
