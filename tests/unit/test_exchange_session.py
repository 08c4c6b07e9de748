"""The Exchange adapter's sessions: answers already read reach the XML parser in blocks, streams byte by
byte, and a throttled pool shrinks without waiting.

A loopback HTTP server stands in for EWS: the point is what ``requests`` hands exchangelib, not EWS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from exchangelib.errors import SessionPoolMinSizeReached

from xesync.adapters.exchange_session import (
    READ_BLOCK,
    BoundedFaultTolerance,
    apply_tls,
    build_configuration,
    own_protocol,
    release_protocol,
)
from xesync.config.model import AuthType, ExchangeConfig, Secret, TlsConfig

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


def _protocol(max_connections: int) -> object:
    """This adapter's own exchangelib protocol on an endpoint nobody listens on (no request is made)."""
    exchange = ExchangeConfig(
        url="https://127.0.0.1:9/EWS/Exchange.asmx", username="svc-xesync@lab.example",
        password=Secret("unit-test-password"), auth_type=AuthType.BASIC, version="15.1.2507.6",
        max_connections=max_connections,
    )  # fmt: skip
    return own_protocol(build_configuration(exchange, BoundedFaultTolerance(max_wait=5)), exchange)


def test_shrinking_the_pool_while_every_session_is_in_use_does_not_hang() -> None:
    """ErrorServerBusy with every session checked out: the pool is left as it is and the call returns
    (exchangelib's own decrease_poolsize waited for its own lock for ever); with a free session it shrinks."""
    protocol: Any = _protocol(max_connections=3)
    try:
        held = [protocol.get_session(), protocol.get_session()]  # the pool grows to 2, both in use
        assert protocol.session_pool_size == 2
        worker = threading.Thread(target=protocol.decrease_poolsize, daemon=True)
        worker.start()
        worker.join(timeout=30)  # a generous bound that only a hang exceeds
        assert not worker.is_alive()
        assert protocol.session_pool_size == 2
        protocol.release_session(held.pop())
        protocol.decrease_poolsize()
        assert protocol.session_pool_size == 1
        with pytest.raises(SessionPoolMinSizeReached):
            protocol.decrease_poolsize()
        protocol.release_session(held.pop())
    finally:
        release_protocol(protocol.config, protocol)


def _wait_for(what: str, condition: Any) -> None:
    deadline = time.monotonic() + 30  # a generous bound that only a hang exceeds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_after_a_back_off_one_call_probes_and_the_others_wait_for_its_end() -> None:
    """Once a back-off ends, the first thread in an adapter call sends alone; the others go when its
    call ends. A thread outside a call (a stream) is never held."""
    policy = BoundedFaultTolerance(max_wait=5)
    policy.start_call()
    policy.back_off(0.2)  # this thread was throttled
    policy.end_call()
    went: list[str] = []
    probe_done = threading.Event()

    def room(name: str) -> None:
        policy.start_call()
        assert policy.back_off_until is None
        went.append(name)
        if len(went) == 1:
            assert probe_done.wait(30)  # the probe's call lasts until the test ends it
        policy.end_call()

    threads = [threading.Thread(target=room, args=(n,), daemon=True) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    _wait_for("the probe", lambda: len(went) == 1)
    time.sleep(0.3)  # the others would have gone by now if nothing held them
    assert len(went) == 1
    stream = policy.back_off_until  # this thread is outside any call: answered at once
    assert stream is None
    probe_done.set()
    _wait_for("the other rooms", lambda: len(went) == 3)
    for thread in threads:
        thread.join(timeout=30)


def test_a_probe_throttled_again_sends_everyone_back_to_waiting() -> None:
    """The probe is throttled again: the waiting threads wait out the new back-off, then one probes."""
    policy = BoundedFaultTolerance(max_wait=5)
    policy.start_call()
    policy.back_off(0.1)
    policy.end_call()
    went: list[tuple[str, float]] = []

    def room(name: str) -> None:
        policy.start_call()
        assert policy.back_off_until is None
        went.append((name, time.monotonic()))
        if len(went) == 1:
            policy.back_off(0.3)  # the probe's request met ErrorServerBusy again
            assert policy.back_off_until is None  # it waits that out like everyone
            went.append((name + "-retry", time.monotonic()))
        policy.end_call()

    threads = [threading.Thread(target=room, args=(n,), daemon=True) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    _wait_for("both rooms", lambda: len(went) == 3)
    first_at = went[0][1]
    assert all(at >= first_at + 0.3 for _, at in went[1:])
    for thread in threads:
        thread.join(timeout=30)
