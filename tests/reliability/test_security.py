"""Security checks: secrets stay out of every output, hostile directory and XML input is inert, TLS is
verified, the lab stays on loopback, the state is private.

Hostile XML answers come from a tiny HTTP server of this module on 127.0.0.1 that answers every request
with the same body; the TLS checks use a throwaway self-signed certificate made with ``cryptography``.
exchangelib parses EWS answers with defusedxml (``exchangelib.util`` imports ``DefusedExpatParser``),
which refuses entity declarations; our own parsers (TMS, CMS) go through :mod:`xesync.xmlsafe`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rkit import write_config

from xesync import xmlsafe
from xesync.adapters.cms import CmsCallMonitor
from xesync.adapters.exchange import ExchangeCalendarSource
from xesync.adapters.tms import TmsBookingSink
from xesync.config.model import TlsConfig
from xesync.directory import NotInDirectory, Person
from xesync.errors import ConfigError, XesyncError
from xesync.lab import Lab
from xesync.lab.http import NotLoopbackError, check_loopback
from xesync.store import Store

pytestmark = pytest.mark.slow

SECRET_FILE = "/etc/hostname"
XXE = f"""<?xml version="1.0"?>
<!DOCTYPE s [<!ENTITY xxe SYSTEM "file://{SECRET_FILE}">]>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&xxe;</soap:Body></soap:Envelope>
""".encode()
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b']><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&lol9;</soap:Body>'
    + b"</soap:Envelope>"
)
PAYLOADS = {"xxe": XXE, "billion-laughs": LAUGHS}


class Hostile:
    """An HTTP(S) server on 127.0.0.1 that answers every request with one body."""

    def __init__(self, body: bytes, content_type: str, status: int = 200, tls: ssl.SSLContext | None = None):
        self.body, self.content_type, self.status = body, content_type, status
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(outer.status)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def cfg(lab_module, tmp_path_factory):
    """The lab's configuration (its secrets in files beside it)."""
    return write_config(lab_module, tmp_path_factory.mktemp("security"))


# ------------------------------------------------------------------------------------------- secrets


def secrets_of(cfg) -> list[str]:
    """Every secret the configuration holds."""
    values = [
        cfg.exchange.password,
        cfg.tms.password,
        cfg.cms.password,
        cfg.ldap.password if cfg.ldap else None,
    ]
    return [s.reveal() for s in values if s is not None]


def xesync(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``xesync`` CLI in a subprocess; stdout and stderr together."""
    return subprocess.run(
        [sys.executable, "-m", "xesync", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_planted_secrets_never_reach_logs_errors_or_command_output(lab, cfg, tmp_path):
    """The EWS, TMS, CMS and LDAP passwords, and a wrong TMS password planted in a file, appear in no
    output of sync (ok and failing), check-config, explain or report."""
    planted = "planted-S3cret-0f-tms"
    bad_dir = tmp_path / "bad"
    bad = write_config(lab, bad_dir)
    (bad_dir / "secrets" / "tms-password").write_text(planted)
    config, bad_config = str(cfg.source), str(bad.source)
    lab.inject(service="ews", kind="http_status", status=500, count=1)
    runs = [
        xesync("-v", "sync", "-c", config),
        xesync("-v", "sync", "-c", bad_config),  # TMS refuses the planted password: 401 → advice
        xesync("check-config", "-c", config),
        xesync("check-config", "-c", bad_config),
        xesync("explain", "-c", config, "no-such-meeting"),
        xesync("report", "-c", config),
    ]
    secrets = [*secrets_of(cfg), planted]
    for run in runs:
        text = run.stdout + run.stderr
        assert text.strip(), run.args
        leaked = [s for s in secrets if s in text]
        assert leaked == [], (run.args, leaked)
    assert "tms" in (runs[1].stdout + runs[1].stderr).lower()  # the failure was reported, without the secret


# ---------------------------------------------------------------------------------------------- LDAP

INJECTIONS = [
    "*",
    "*)(uid=*",
    "*)(|(uid=*))",
    "alice@lab.example)(mail=*",
    "*)(objectClass=*))(&(uid=alice",
    "\\2a",
    "alice@lab.example\x00",
    "(|(mail=*))",
]


@pytest.mark.parametrize("address", INJECTIONS)
def test_ldap_filter_injection_strings_resolve_to_nobody(lab, address):
    """An organiser address made of LDAP filter syntax matches nobody in the real directory."""
    directory = lab.directory_port()
    try:
        if type(directory).__name__ != "LdapDirectory":
            pytest.skip("slapd is not installed: the lab serves its LDIF on the mock")
        assert isinstance(directory.resolve(address), NotInDirectory)
        assert isinstance(directory.resolve("alice@lab.example"), Person)  # the directory does answer
    finally:
        directory.close()


# ----------------------------------------------------------------------------------------------- XML


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_our_parser_refuses_entities(payload):
    """xmlsafe expands no entity: no file content, no billion laughs."""
    try:
        root = xmlsafe.parse(payload)
    except Exception:  # noqa: BLE001 - refusing is the other acceptable outcome
        return
    text = "".join(root.itertext())
    assert len(text) < 100
    assert Path(SECRET_FILE).read_text().strip() not in text


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_hostile_tms_answers_are_refused(cfg, payload):
    """A TMS answering with an external entity or billion laughs gets an error of ours, nothing expanded."""
    with Hostile(payload, "application/soap+xml") as server:
        sink = TmsBookingSink(dataclasses.replace(cfg.tms, url=server.url + "/tms"))
        try:
            with pytest.raises(XesyncError) as caught:
                sink.find("xs1-hostile")
        finally:
            sink.close()
    assert Path(SECRET_FILE).read_text().strip() not in str(caught.value)
    assert server.requests >= 1


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_hostile_cms_answers_are_refused(cfg, payload):
    """A CMS answering with an external entity or billion laughs gets an error of ours, nothing expanded."""
    with Hostile(payload, "text/xml") as server:
        monitor = CmsCallMonitor(dataclasses.replace(cfg.cms, url=server.url + "/api/v1"))
        try:
            with pytest.raises(XesyncError) as caught:
                monitor.licensing()
        finally:
            monitor.close()
    assert Path(SECRET_FILE).read_text().strip() not in str(caught.value)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_hostile_ews_answers_are_refused_by_exchangelib(cfg, payload):
    """An EWS answering with an external entity or billion laughs: exchangelib (defusedxml) refuses it and
    our adapter reports an error of ours."""
    with Hostile(payload, "text/xml; charset=utf-8") as server:
        exchange = dataclasses.replace(cfg.exchange, url=server.url + "/EWS/Exchange.asmx")
        source = ExchangeCalendarSource(exchange, cfg.rooms, cfg.sync.lookahead)
        now = dt.datetime.now(dt.UTC)
        try:
            with pytest.raises(XesyncError) as caught:
                source.changes(cfg.rooms[0].email, None, window=(now, now + dt.timedelta(days=1)))
        finally:
            source.close()
    assert Path(SECRET_FILE).read_text().strip() not in str(caught.value)


# ----------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """A throwaway self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xesync-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def tls_server(certificate, body: bytes, content_type: str) -> Hostile:
    """A hostile-free HTTPS server with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return Hostile(body, content_type, tls=context)


def test_tms_tls_is_verified_by_default_and_a_ca_file_makes_it_pass(cfg, certificate, monkeypatch):
    """TMS over HTTPS with a self-signed certificate fails with advice naming tms.tls.ca_file; with that
    CA file configured the handshake succeeds, even with REQUESTS_CA_BUNDLE set."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    assert cfg.tms.tls.verify
    with tls_server(certificate, b"not soap", "text/plain") as server:
        sink = TmsBookingSink(dataclasses.replace(cfg.tms, url=server.url + "/tms"))
        try:
            with pytest.raises(ConfigError) as caught:
                sink.find("xs1-tls")
        finally:
            sink.close()
        assert "did not verify" in str(caught.value)
        assert "tms.tls.ca_file" in str(caught.value)
        trusted = dataclasses.replace(cfg.tms, url=server.url + "/tms", tls=TlsConfig(ca_file=certificate[0]))
        sink = TmsBookingSink(trusted)
        try:
            with pytest.raises(XesyncError) as after:
                sink.find("xs1-tls")  # the server answers no SOAP: a service error, not a TLS one
        finally:
            sink.close()
        assert not isinstance(after.value, ConfigError)
        assert server.requests == 1


def test_cms_tls_is_verified_by_default_and_a_ca_file_makes_it_pass(cfg, certificate, monkeypatch):
    """CMS over HTTPS with a self-signed certificate fails; with the CA file configured the request is made,
    even with REQUESTS_CA_BUNDLE set."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    assert cfg.cms.tls.verify
    with tls_server(certificate, b"<licensing/>", "text/xml") as server:
        monitor = CmsCallMonitor(dataclasses.replace(cfg.cms, url=server.url + "/api/v1"))
        try:
            with pytest.raises(XesyncError) as caught:
                monitor.licensing()
        finally:
            monitor.close()
        assert "SSL" in str(caught.value) or "certificate" in str(caught.value).lower()
        assert server.requests == 0
        trusted = dataclasses.replace(
            cfg.cms, url=server.url + "/api/v1", tls=TlsConfig(ca_file=certificate[0])
        )
        monitor = CmsCallMonitor(trusted)
        outcome = "answered"
        try:
            monitor.licensing()
        except XesyncError as exc:  # the body is no licensing document: an error, but not TLS's
            outcome = str(exc)
        finally:
            monitor.close()
        assert "SSL" not in outcome
        assert server.requests >= 1


# ------------------------------------------------------------------------------------ lab and state


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "192.168.1.10", "::", "example.org"])  # noqa: S104
def test_the_lab_refuses_non_loopback_binds(host):
    """The lab and its servers refuse to bind anything but a loopback address, before binding."""
    with pytest.raises(NotLoopbackError):
        check_loopback(host)
    with pytest.raises(NotLoopbackError):
        Lab(host=host)


def test_the_state_directory_and_database_are_private(tmp_path):
    """A new state directory is 0700 and its database 0600, even under a permissive umask."""
    old = os.umask(0o000)
    try:
        store = Store.open(tmp_path / "state" / "xesync.db")
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "xesync.db").stat().st_mode) == 0o600


def test_ews_ca_file_is_honoured_with_requests_ca_bundle_set(cfg, certificate, monkeypatch):
    """EWS over HTTPS with exchange.tls.ca_file set passes TLS even with REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    with tls_server(certificate, b"not soap", "text/plain") as server:
        exchange = dataclasses.replace(
            cfg.exchange, url=server.url + "/EWS/Exchange.asmx", tls=TlsConfig(ca_file=certificate[0])
        )
        source = ExchangeCalendarSource(exchange, cfg.rooms, cfg.sync.lookahead)
        now = dt.datetime.now(dt.UTC)
        outcome = "answered"
        try:
            source.changes(cfg.rooms[0].email, None, window=(now, now + dt.timedelta(days=1)))
        except XesyncError as exc:  # the body is no SOAP: an error, but not TLS's
            outcome = str(exc)
        finally:
            source.close()
    assert "SSL" not in outcome
    assert "certificate" not in outcome.lower()
    assert server.requests >= 1
