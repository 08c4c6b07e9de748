"""The lab's HTTP core: a loopback-only threaded HTTP/1.1 server in front of one simulator.

Each simulator is a :class:`LabService`: it names the operation of a request (for fault matching and
request counts) and answers it. The core reads the request safely (bounded size, chunked or
``Content-Length``), counts it, applies the generic faults (latency, a bare HTTP status, a dropped
connection) and hands the simulator the rest, so every simulator renders its own protocol's faults.
Responses whose body is an iterator are streamed with chunked transfer encoding (EWS
``GetStreamingEvents``).

A simulator behind IIS (EWS, TMS) may also be a :class:`GatedService`: its ``gate`` answers the legs
of a connection-oriented authentication handshake (NTLM's 401 challenges) before the request is counted
or meets a fault, so a handshake neither inflates the operation counts nor consumes a fault meant for
the operation. The legs are counted as :data:`AUTH_OPERATION`. Each request carries its connection's
:class:`ConnectionState`, because NTLM authenticates the connection, not the request. The request and
response values and the service protocols live in :mod:`xesync.lab.http_values` (re-exported here).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from xesync import events
from xesync.lab.faults import Fault, FaultBook, RequestCounter
from xesync.lab.http_values import (
    ConnectionState,
    DropConnectionError,
    GatedService,
    LabRequest,
    LabResponse,
    LabService,
    RequestInfo,
)

log = structlog.get_logger(__name__)

__all__ = [
    "AUTH_OPERATION",
    "ConnectionState",
    "DropConnectionError",
    "GatedService",
    "LabHTTPServer",
    "LabRequest",
    "LabResponse",
    "LabService",
    "NotLoopbackError",
    "RequestInfo",
    "check_loopback",
    "xml_response",
]

MAX_BODY = 32 * 1024 * 1024
# The operation name under which refused or challenged authentication legs are counted.
AUTH_OPERATION = "(authentication)"


class NotLoopbackError(ValueError):
    """The lab only binds loopback addresses."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to bind {host!r}: the lab serves loopback addresses only (127.0.0.0/8, ::1, localhost)"
        )


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address, else raise :class:`NotLoopbackError`."""
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise NotLoopbackError(host)


class LabHTTPServer:
    """Serve one :class:`LabService` on a loopback port, in a background thread.

    :param service: the simulator.
    :param faults: the lab's fault book (shared by every simulator).
    :param counter: the lab's request counter.
    :param host: a loopback address.
    :param port: ``0`` picks a free port.
    """

    def __init__(
        self,
        service: LabService,
        faults: FaultBook,
        counter: RequestCounter,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        check_loopback(host)
        self.service = service
        self.faults = faults
        self.counter = counter
        handler = _make_handler(self)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type(
            "_Server", (ThreadingHTTPServer,), {"address_family": family, "handle_error": _handle_error}
        )
        self._httpd: ThreadingHTTPServer = server_cls((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"lab-{self.service.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def dispatch(self, request: LabRequest) -> LabResponse:
        """Authenticate, count, apply generic faults, then let the simulator answer."""
        if isinstance(self.service, GatedService):
            challenge = self.service.gate(request)
            if challenge is not None:
                self.counter.record(self.service.name, AUTH_OPERATION)
                return challenge
        response = self._dispatch(request)
        present = {name.lower() for name, _ in response.headers}
        response.headers.extend(h for h in request.response_headers if h[0].lower() not in present)
        return response

    def _dispatch(self, request: LabRequest) -> LabResponse:
        try:
            info = self.service.classify(request)
        except Exception:  # a simulator bug must not take the server down
            log.exception(events.LAB_HANDLER_FAILED, service=self.service.name, stage="classify")
            info = RequestInfo("unknown")
        hits = self.faults.take(self.service.name, info.operation)
        met = tuple(f.as_dict() for f in hits)
        entry = self.counter.record(self.service.name, info.operation, info.mailbox, met)
        try:
            return self._answer(request, hits)
        finally:
            self.counter.answered(entry)

    def _answer(self, request: LabRequest, hits: list[Fault]) -> LabResponse:
        specific: list[Fault] = []
        lose_answer = False
        for fault in hits:
            if fault.kind == "latency":
                time.sleep(int(fault.params.get("ms", 0)) / 1000)
            elif fault.kind == "drop_connection":
                raise DropConnectionError
            elif fault.kind == "drop_answer":
                lose_answer = True
            elif fault.kind == "http_status":
                headers = []
                if "retry_after_s" in fault.params:
                    headers.append(("Retry-After", str(fault.params["retry_after_s"])))
                return LabResponse(status=int(fault.params["status"]), headers=headers)
            else:
                specific.append(fault)
        response = self.service.handle(request, specific)
        if lose_answer:
            raise DropConnectionError  # carried out; the client never learns it (a timeout after the fact)
        return response


def _handle_error(server: ThreadingHTTPServer, request: Any, client_address: Any) -> None:
    """A client that went away (a worker stopped, a stream cut) is logged at debug level, not as a
    traceback on stderr; anything else gets socketserver's report."""
    exc = sys.exc_info()[1]
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        log.debug(events.LAB_CLIENT_DISCONNECTED, client=str(client_address), error=type(exc).__name__)
        return
    ThreadingHTTPServer.handle_error(server, request, client_address)


def _make_handler(server: LabHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "xesync-lab"
        sys_version = ""

        def setup(self) -> None:
            super().setup()
            self.lab_connection = ConnectionState()
            # Headers and body leave in separate writes; without TCP_NODELAY, Nagle plus the client's
            # delayed ACK holds every keep-alive response with a body for ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug(events.LAB_REQUEST_HANDLED, service=server.service.name, line=format % args)

        def _serve(self) -> None:
            try:
                body = self._read_body()
            except ValueError as exc:
                self._send(LabResponse(status=400, body=str(exc).encode(), close=True))
                return
            if body is None:
                self._send(LabResponse(status=413, body=b"request too large", close=True))
                return
            split = urlsplit(self.path)
            request = LabRequest(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query),
                headers=self.headers,
                body=body,
                client=str(self.client_address[0]),
                raw_query=split.query,
                connection=self.lab_connection,
            )
            try:
                response = server.dispatch(request)
            except DropConnectionError:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            except Exception:
                log.exception(events.LAB_HANDLER_FAILED, service=server.service.name, path=split.path)
                response = LabResponse(status=500, body=b"lab simulator error", close=True)
            self._send(response)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815

        def _read_body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self._read_chunked()
            raw = self.headers.get("Content-Length")
            if raw is None:
                return b""
            try:
                length = int(raw)
            except ValueError:
                raise ValueError("bad Content-Length") from None
            if length < 0:
                raise ValueError("bad Content-Length")
            if length > MAX_BODY:
                return None
            return self.rfile.read(length)

        def _read_chunked(self) -> bytes | None:
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ValueError("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)

        def _send(self, response: LabResponse) -> None:
            self.send_response(response.status)
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            for name, value in response.headers:
                self.send_header(name, value)
            if isinstance(response.body, bytes | bytearray):
                self._send_bytes(bytes(response.body), response)
            else:
                self._send_stream(response.body)

        def _send_bytes(self, body: bytes, response: LabResponse) -> None:
            self.send_header("Content-Length", str(len(body)))
            if response.close or response.truncate_at is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            if response.truncate_at is not None:
                self.wfile.write(body[: response.truncate_at])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def _send_stream(self, chunks: Iterable[bytes]) -> None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()

    return Handler


def xml_response(
    body: bytes,
    status: int = 200,
    *,
    soap12: bool = False,
    headers: Mapping[str, str] | None = None,
) -> LabResponse:
    """A ``text/xml`` (SOAP 1.1) or ``application/soap+xml`` (SOAP 1.2) response."""
    ctype = "application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8"
    return LabResponse(status=status, body=body, content_type=ctype, headers=list((headers or {}).items()))
