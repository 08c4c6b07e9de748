"""The lab's HTTP values: what a simulator sees of a request and answers with, and the
:class:`LabService` / :class:`GatedService` protocols the HTTP core (:mod:`xesync.lab.http`) serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol, runtime_checkable

from xesync.lab.faults import Fault


@dataclass(slots=True)
class ConnectionState:
    """What one keep-alive connection remembers between its requests (an NTLM handshake, its user)."""

    handshake: Any = None
    principal: Any = None


@dataclass(slots=True)
class LabRequest:
    """One HTTP request as a simulator sees it.

    ``principal`` is set by a :class:`GatedService`'s gate when the connection's Windows authentication
    vouches for the caller; ``response_headers`` are added to whatever the simulator answers (the last
    ``WWW-Authenticate: Negotiate`` token of a completed handshake).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    client: str = "127.0.0.1"
    # The query string as sent: ``query`` drops a bare flag such as ASMX's ``?wsdl``.
    raw_query: str = ""
    connection: ConnectionState = field(default_factory=ConnectionState)
    principal: Any = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str, default: str = "") -> str:
        """A header's value (case-insensitive), or ``default``."""
        value = self.headers.get(name)
        return default if value is None else str(value)

    def query_value(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class LabResponse:
    """What a simulator answers; an iterable ``body`` is streamed in chunks."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = None
    close: bool = False
    # Send only this many bytes of a bytes body while declaring the whole length, then close
    # (a truncated response, for fault injection).
    truncate_at: int | None = None


@dataclass(slots=True, frozen=True)
class RequestInfo:
    """How a request is counted and matched against faults."""

    operation: str
    mailbox: str | None = None


class LabService(Protocol):
    """A simulator behind :class:`LabHTTPServer`."""

    name: str

    def classify(self, request: LabRequest) -> RequestInfo:
        """Name the request's operation (never raises, even on malformed input)."""
        ...

    def handle(self, request: LabRequest, faults: list[Fault]) -> LabResponse:
        """Answer the request; ``faults`` are the simulator-specific faults hitting it."""
        ...


@runtime_checkable
class GatedService(LabService, Protocol):
    """A simulator with connection-oriented authentication in front of it."""

    def gate(self, request: LabRequest) -> LabResponse | None:
        """Answer an authentication leg (a 401), or ``None`` to let the request through."""
        ...


class DropConnectionError(Exception):
    """Raised by a simulator to close the connection without any response."""
