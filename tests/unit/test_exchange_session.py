"""The Exchange adapter's sessions: answers already read reach the XML parser in blocks, streams byte by byte.

A loopback HTTP server stands in for EWS: the point is what ``requests`` hands exchangelib, not EWS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from xesync.adapters.exchange_session import READ_BLOCK, apply_tls
from xesync.config.model import TlsConfig

BODY = b"<a>" + b"x" * (3 * READ_BLOCK) + b"</a>"


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        """Quiet."""


@pytest.fixture
def url() -> Iterator[str]:
    """A loopback server answering every POST with :data:`BODY`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/EWS/Exchange.asmx"
    finally:
        server.shutdown()
        server.server_close()


class _Protocol:
    """The one thing apply_tls uses of an exchangelib protocol: ``create_session``."""

    def create_session(self) -> requests.Session:
        return requests.Session()


@pytest.mark.parametrize("tls", [TlsConfig(), TlsConfig(verify=False)])
def test_an_answer_already_read_is_parsed_in_blocks(url: str, tls: TlsConfig) -> None:
    """exchangelib's argument-less iter_content() yields READ_BLOCK-sized chunks of the whole answer."""
    protocol = _Protocol()
    apply_tls(protocol, tls)
    session = protocol.create_session()
    try:
        chunks = list(session.post(url, data=b"<q/>").iter_content())
    finally:
        session.close()
    assert b"".join(chunks) == BODY
    assert [len(c) for c in chunks[:3]] == [READ_BLOCK] * 3


def test_a_streamed_answer_is_still_read_byte_by_byte(url: str) -> None:
    """A streaming request (GetStreamingEvents) keeps requests' one-byte chunks, so no read waits for more."""
    protocol = _Protocol()
    apply_tls(protocol, TlsConfig())
    session = protocol.create_session()
    try:
        response = session.post(url, data=b"<q/>", stream=True)
        first = [next(response.iter_content()) for _ in range(3)]
        response.close()
    finally:
        session.close()
    assert first == [b"<", b"a", b">"]
