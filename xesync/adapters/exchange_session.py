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
- **Shrinking the session pool on throttling** never waits: :func:`decrease_poolsize` replaces
  exchangelib's, which deadlocks when every session is in use.
- **Timeout.** ``exchange.timeout`` is set on the protocol instance (``TIMEOUT``), not the class.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from datetime import datetime
from functools import partial
from queue import Empty
from typing import Any, cast

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
from exchangelib.errors import RateLimitError, SessionPoolMinSizeReached
from exchangelib.protocol import Protocol

from xesync.config.model import AuthType, ExchangeConfig, TlsConfig

READ_BLOCK = 64 * 1024  # bytes handed to the XML parser at a time from an answer already read


class BoundedFaultTolerance(FaultTolerance):  # type: ignore[misc] # exchangelib is untyped
    """``FaultTolerance`` whose back-offs within one adapter call add up to at most ``max_wait``, and
    after which one request probes before the others resume.

    exchangelib shares one policy object between every thread that uses the protocol; the sum is
    kept per thread and reset by :meth:`start_call` at the start of each adapter call.

    **Resuming after a back-off.** exchangelib lets every thread that waited out a back-off send at
    its end, at once: with ten rooms in hand, ten requests reach a server that may still be busy,
    and all but the first arrive inside the next window it asks for (``tests/reliability/
    test_outages.py``). Here, once a back-off ends, the first thread inside an adapter call sends
    alone (the *probe*); the others wait in :attr:`back_off_until` until the probe's call ends
    (:meth:`end_call`) or it is throttled again, then go on, or wait out the new back-off. A probe
    that does not end within ``probe_wait`` seconds lets the others go, so a stuck call never stops
    the rest. Threads outside an adapter call (a stream) are not held.
    """

    def __init__(self, max_wait: float, *, probe_wait: float = 120.0) -> None:
        super().__init__(max_wait=max_wait)
        self._spent = threading.local()
        self._gate = threading.Condition()
        self._after_back_off = False  # a back-off was asked for and no probe has gone since
        self._prober: int | None = None  # the thread whose request probes, until its call ends
        self.probe_wait = probe_wait

    def start_call(self) -> None:
        """Start a new budget for the calling thread (one adapter call)."""
        self._spent.seconds = 0.0
        self._spent.in_call = True

    def end_call(self) -> None:
        """The calling thread's adapter call ended: if it was the probe, the others may go."""
        self._spent.in_call = False
        with self._gate:
            if self._prober == threading.get_ident():
                self._prober = None
                self._gate.notify_all()

    def back_off(self, seconds: float | None) -> None:
        """Wait ``seconds`` before the next request, unless the call's waits would pass ``max_wait``."""
        wait = self.DEFAULT_BACKOFF if seconds is None else seconds
        spent = getattr(self._spent, "seconds", 0.0) + wait
        if spent > self.max_wait:
            raise RateLimitError("Max timeout reached", wait=wait)
        self._spent.seconds = spent
        super().back_off(wait)
        with self._gate:
            self._after_back_off = True
            self._prober = None  # a throttled probe is done: after this back-off, one probes again
            self._gate.notify_all()

    @property
    def back_off_until(self) -> datetime | None:
        """exchangelib asks this before each request and sleeps until the answer; see the class docstring."""
        until = FaultTolerance.back_off_until.fget(self)
        in_call = getattr(self._spent, "in_call", False)
        if not in_call or (until is None and not self._after_back_off and self._prober is None):
            return cast("datetime | None", until)
        me, deadline = threading.get_ident(), time.monotonic() + self.probe_wait
        with self._gate:
            while True:
                until = FaultTolerance.back_off_until.fget(self)
                if until is not None:  # sleep it out here, so that its end meets the gate again
                    self._gate.wait(max(0.0, (until - datetime.now()).total_seconds()))  # noqa: DTZ005 - exchangelib's naive local time
                    continue
                if self._prober in (None, me):
                    if self._after_back_off or self._prober == me:
                        self._after_back_off, self._prober = False, me
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None  # the probe is stuck: do not hold everyone for it
                self._gate.wait(left)

    @back_off_until.setter
    def back_off_until(self, value: datetime | None) -> None:
        FaultTolerance.back_off_until.fset(self, value)


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
    protocol.decrease_poolsize = partial(decrease_poolsize, protocol)
    return protocol


def decrease_poolsize(protocol: Any) -> None:
    """Shrink ``protocol``'s session pool by one free session, or leave it when none is free.

    Replaces exchangelib's ``BaseProtocol.decrease_poolsize`` (called on ``ErrorServerBusy`` and
    ``ErrorExceededConnectionCount``), which takes a session while it holds the pool lock: with every
    session in use, ``get_session`` calls ``increase_poolsize``, which waits for that same lock, and
    the thread hangs for ever, its pass with it (found by ``tests/reliability/test_outages.py``: three
    rooms throttled at once). The server's back-off is honoured by the retry policy either way.

    :raises SessionPoolMinSizeReached: the pool is down to one session (exchangelib's contract).
    """
    if protocol.session_pool_size <= 1:
        raise SessionPoolMinSizeReached("Session pool size cannot be decreased further")
    with protocol._session_pool_lock:  # noqa: SLF001 - the lock exchangelib's own pool methods take
        if protocol.session_pool_size <= 1:
            return
        try:
            session = protocol._session_pool.get(block=False)  # noqa: SLF001
        except Empty:
            return  # every session is in use: shrinking would mean waiting under the lock
        protocol.close_session(session)
        protocol._session_pool_size -= 1  # noqa: SLF001


def release_protocol(config: Any, protocol: Any) -> None:
    """Close ``protocol``'s sessions and drop it from exchangelib's cache if it is still there."""
    protocol.close()
    with suppress(KeyError):
        cached, _ = Protocol[config]
        if cached is protocol:
            del Protocol[config]
