"""How the Exchange adapter connects: exchangelib configuration, retry policy, protocol and TLS.

Decisions, each with its reason:

- **Explicit endpoint, build and auth type; never autodiscover** (ews.md §1.2, §4 trap 12). With
  ``exchange.version`` unset, exchangelib probes the build once per protocol (one ``ConvertId``).
- **One protocol per adapter.** exchangelib caches protocols by (endpoint, credentials) and the first
  configuration wins (§4 trap 32): a second adapter would silently run on the first one's retry
  policy and pool size. :func:`own_protocol` evicts a cached protocol for the same key, makes this
  adapter's own, and the adapter pins it on every Account; :func:`release_protocol` closes it and
  takes it out of the cache again.
- **Retry policy.** ``FaultTolerance(max_wait)`` honours the server's back-off, but gives up only when
  one back-off exceeds ``max_wait``: a 503 with ``Retry-After: 1`` is retried for ever.
  :class:`BoundedFaultTolerance` also caps the *sum* of the waits within one adapter call.
- **TLS.** exchangelib's only hook is the class attribute ``BaseProtocol.HTTP_ADAPTER_CLS``, which
  would change every protocol in the process. :func:`apply_tls` wraps this protocol's
  ``create_session`` instead and sets ``session.verify`` (a CA file, or ``False``) on each session.
  ``REQUESTS_CA_BUNDLE`` still wins over a CA file, as everywhere in requests.
- **Reading answers.** exchangelib parses an answer from ``response.iter_content()``, whose default
  chunk is one byte: lxml then pulls a 100 KB answer through a Python generator byte by byte, a tenth
  of the import's CPU in the benchmark (bench/). An answer that is already read (every one but a
  streaming subscription's, which must be read as it arrives) hands out :data:`READ_BLOCK` bytes at a time.
- **Timeout.** ``exchange.timeout`` is set on the protocol instance (``TIMEOUT``), not the class.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from functools import partial
from typing import Any

from exchangelib import (
    BASIC,
    NTLM,
    OAUTH2,
    Build,
    Configuration,
    Credentials,
    FaultTolerance,
    OAuth2Credentials,
    Version,
)
from exchangelib.errors import RateLimitError
from exchangelib.protocol import Protocol

from xesync.config.model import AuthType, ExchangeConfig, TlsConfig

READ_BLOCK = 64 * 1024  # bytes handed to the XML parser at a time from an answer already read


class BoundedFaultTolerance(FaultTolerance):  # type: ignore[misc] # exchangelib is untyped
    """``FaultTolerance`` whose back-offs within one adapter call add up to at most ``max_wait``.

    exchangelib shares one policy object between every thread that uses the protocol; the sum is
    kept per thread and reset by :meth:`start_call` at the start of each adapter call.
    """

    def __init__(self, max_wait: float) -> None:
        super().__init__(max_wait=max_wait)
        self._spent = threading.local()

    def start_call(self) -> None:
        """Start a new budget for the calling thread."""
        self._spent.seconds = 0.0

    def back_off(self, seconds: float | None) -> None:
        """Wait ``seconds`` before the next request, unless the call's waits would pass ``max_wait``."""
        wait = self.DEFAULT_BACKOFF if seconds is None else seconds
        spent = getattr(self._spent, "seconds", 0.0) + wait
        if spent > self.max_wait:
            raise RateLimitError("Max timeout reached", wait=wait)
        self._spent.seconds = spent
        super().back_off(wait)


def _credentials(exchange: ExchangeConfig) -> Any:
    if exchange.auth_type is AuthType.OAUTH:
        secret = exchange.oauth_client_secret
        return OAuth2Credentials(
            client_id=exchange.oauth_client_id,
            client_secret=secret.reveal() if secret is not None else None,
            tenant_id=exchange.oauth_tenant_id,
        )
    password = exchange.password.reveal() if exchange.password is not None else ""
    return Credentials(exchange.username, password)


_AUTH_TYPES = {AuthType.BASIC: BASIC, AuthType.NTLM: NTLM, AuthType.OAUTH: OAUTH2}


def build_configuration(exchange: ExchangeConfig, policy: FaultTolerance) -> Any:
    """The exchangelib ``Configuration`` for ``exchange`` (no I/O)."""
    version = None
    if exchange.version is not None:
        version = Version(build=Build(*(int(part) for part in exchange.version.split("."))))
    return Configuration(
        service_endpoint=exchange.url,
        credentials=_credentials(exchange),
        auth_type=_AUTH_TYPES[exchange.auth_type],
        version=version,
        retry_policy=policy,
        max_connections=exchange.max_connections,
    )


def apply_tls(protocol: Any, tls: TlsConfig) -> None:
    """Make every session ``protocol`` creates verify TLS as ``tls`` says and read answers in blocks.

    See the module docstring for TLS and for the blocks (*Reading answers*).
    """
    verify: bool | str = str(tls.ca_file) if tls.ca_file is not None else tls.verify
    create = protocol.create_session

    def create_session() -> Any:
        session = create()
        if verify is not True:  # True: requests' default, the system store or REQUESTS_CA_BUNDLE
            session.verify = verify
        send = session.request

        def request(method: str, url: str, **kwargs: Any) -> Any:
            if verify is not True:
                # exchangelib posts without verify=, and requests then lets REQUESTS_CA_BUNDLE or
                # CURL_CA_BUNDLE override session.verify (psf/requests#3829): pass it on every request.
                kwargs.setdefault("verify", verify)
            response = send(method, url, **kwargs)
            if not kwargs.get("stream"):
                response.iter_content = partial(response.iter_content, READ_BLOCK)
            return response

        session.request = request
        return session

    protocol.create_session = create_session


def own_protocol(config: Any, exchange: ExchangeConfig) -> Any:
    """A protocol for ``config`` that is this adapter's alone (see the module docstring)."""
    # Evict a protocol someone else cached for the same endpoint and credentials, so that this
    # adapter's retry policy, pool size and TLS settings are the ones used.
    with suppress(KeyError):
        del Protocol[config]
    protocol = Protocol(config=config)
    protocol.TIMEOUT = exchange.timeout.total_seconds()  # an instance attribute: the class keeps 120 s
    apply_tls(protocol, exchange.tls)
    return protocol


def release_protocol(config: Any, protocol: Any) -> None:
    """Close ``protocol``'s sessions and drop it from exchangelib's cache if it is still there."""
    protocol.close()
    with suppress(KeyError):
        cached, _ = Protocol[config]
        if cached is protocol:
            del Protocol[config]
