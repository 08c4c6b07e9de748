"""`xesync lab serve` as admins and the demo use it: one JSON line, a control API, a clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from xesync import config, events
from xesync.adapters.ldap import LdapDirectory
from xesync.directory import NotInDirectory
from xesync.lab import Lab
from xesync.lab.fixture import DEFAULT_FIXTURE, load_fixture
from xesync.lab.ldif_directory import LdifDirectory
from xesync.lab.slapd import find_slapd


@contextlib.contextmanager
def lab_process(args, log_path: Path):
    """Run `xesync lab serve ARGS`, stderr to a file, and always reap it and close its pipes."""
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            [sys.executable, "-m", "xesync", "lab", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc,
    ):
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `xesync lab serve` process with --write-config."""
    out = tmp_path_factory.mktemp("lab")
    with lab_process(["--write-config", str(out / "xesync.toml")], out / "stderr.log") as proc:
        line = proc.stdout.readline()
        assert line, (out / "stderr.log").read_text()
        yield proc, json.loads(line), out


def test_prints_exactly_one_json_line_with_the_contract_fields(served):
    """The line names every simulator's endpoint and the seeded fixture's credentials."""
    _, info, _ = served
    assert set(info) >= {"ews", "tms", "cms", "ldap", "control"}
    assert info["ews"]["url"].startswith("http://127.0.0.1:")
    assert info["ews"]["url"].endswith("/EWS/Exchange.asmx")
    assert info["ews"]["service_account"]["username"] == "svc-xesync@lab.example"
    assert len(info["ews"]["rooms"]) >= 3
    assert all("tms_system_id" in room for room in info["ews"]["rooms"])
    users = info["ews"]["users"]
    assert sum(u["pmp"] for u in users) >= 2
    assert any(not u["in_directory"] for u in users)
    assert info["tms"]["url"].lower().endswith("/tms/external/booking/bookingservice.asmx")
    assert info["cms"]["url"].endswith("/api/v1")
    assert info["ldap"]["pmp_group_dn"].startswith("cn=cms-pmp")


def test_written_config_validates_against_the_lab(served):
    """--write-config writes a configuration xesync accepts as is, secrets in files beside it."""
    _, info, out = served
    cfg = config.load(out / "xesync.toml", env={})
    assert cfg.exchange.url == info["ews"]["url"]
    assert cfg.tms.password.reveal() == info["tms"]["password"]
    assert cfg.tms.password.source.startswith("file:")
    assert [r.tms_system_id for r in cfg.rooms] == [r["tms_system_id"] for r in info["ews"]["rooms"]]
    text = (out / "xesync.toml").read_text()
    assert info["tms"]["password"] not in text
    assert tomllib.loads(text)["ldap"]["pmp_groups"] == [info["ldap"]["pmp_group_dn"]]


def test_control_api_clock_faults_requests_reset(served):
    """The control API moves the clock, injects and clears faults, counts requests and resets."""
    _, info, _ = served
    control = info["control"]["url"]
    now = requests.post(f"{control}/clock", json={"now": "2026-12-01T09:00:00Z"}, timeout=5).json()
    assert now["now"].startswith("2026-12-01T09:00")
    assert requests.post(
        f"{control}/faults",
        json={"service": "cms", "kind": "http_status", "status": 503, "count": 1},
        timeout=5,
    ).ok
    cms = info["cms"]
    auth = (cms["username"], cms["password"])
    assert requests.get(f"{cms['url']}/coSpaces", auth=auth, timeout=5).status_code == 503
    assert requests.get(f"{cms['url']}/coSpaces", auth=auth, timeout=5).status_code == 200
    counts = requests.get(f"{control}/requests", params={"service": "cms"}, timeout=5).json()
    assert counts["cms"]["total"] >= 2
    bad = requests.post(f"{control}/faults", json={"service": "cms", "kind": "nope"}, timeout=5)
    assert bad.status_code == 400
    assert requests.post(f"{control}/reset", timeout=5).ok
    assert (
        requests.get(f"{control}/requests", params={"service": "cms"}, timeout=5).json()["cms"]["total"] == 0
    )
    state = requests.get(f"{control}/state", timeout=5).json()
    assert {"clock", "ews", "tms", "cms"} <= set(state)


def test_sigterm_stops_cleanly(tmp_path):
    """SIGTERM ends the lab with exit code 0 and nothing more on stdout."""
    with lab_process(["--only", "cms"], tmp_path / "stderr.log") as proc:
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"cms", "ldap", "control"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == ""


def test_python_api_offers_the_same(tmp_path):
    """xesync.lab.Lab starts in-process and offers clock, faults and reset."""
    with Lab(only=["cms"], directory=False) as lab:
        lab.inject(service="cms", kind="http_status", status=500, count=1)
        url = lab.describe()["cms"]["url"]
        auth = (lab.describe()["cms"]["username"], lab.describe()["cms"]["password"])
        assert requests.get(f"{url}/system/status", auth=auth, timeout=5).status_code == 500
        assert requests.get(f"{url}/system/status", auth=auth, timeout=5).status_code == 200
        assert lab.requests.snapshot("cms")["cms"]["total"] == 2
        lab.reset()
        assert lab.requests.snapshot("cms")["cms"]["total"] == 0


def test_fixture_path_resolves():
    """The default fixture is the shipped config/lab.toml."""
    shipped = Path(__file__).resolve().parents[2] / "config" / "lab.toml"
    assert shipped.resolve() == DEFAULT_FIXTURE.resolve()


def test_written_config_resolves_organisers_in_the_lab_directory(served):
    """The directory section of the written config finds PMP+ organisers, nested groups included."""
    _, _, out = served
    cfg = config.load(out / "xesync.toml", env={})
    with LdapDirectory(cfg.ldap) as directory:
        bob = directory.resolve("robert@lab.example")
        carol = directory.resolve("carol@lab.example")
        erin = directory.resolve("erin@partner.example")
    assert not isinstance(bob, NotInDirectory)
    assert (bob.tms_username, bob.jid, bob.pmp) == ("LAB\\bob", "bob@lab.example", True)
    assert not isinstance(carol, NotInDirectory)
    assert carol.pmp is False
    assert isinstance(erin, NotInDirectory)


def mock_directory_fixture(tmp_path: Path) -> Path:
    """A copy of the shipped fixture whose directory runs on ldap3's mock even where slapd exists."""
    shipped = DEFAULT_FIXTURE.read_text()
    ldif = load_fixture().directory.ldif
    text = shipped.replace('serve = "auto"', 'serve = "mock"').replace(
        'ldif = "lab.ldif"', f'ldif = "{ldif}"'
    )
    assert 'serve = "mock"' in text
    assert str(ldif) in text
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def test_write_config_without_slapd_omits_ldap_and_says_so(tmp_path):
    """On the mock directory, --write-config leaves out [ldap] and the JSON line and log say why."""
    out = tmp_path / "out"
    args = ["--fixture", str(mock_directory_fixture(tmp_path)), "--only", "ews,tms"]
    with lab_process([*args, "--write-config", str(out / "xesync.toml")], tmp_path / "stderr.log") as proc:
        info = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert info["ldap"]["kind"] == "mock"
    assert "slapd" in info["config_omitted"]["ldap"]
    written = tomllib.loads((out / "xesync.toml").read_text())
    assert "ldap" not in written
    assert "ldif" not in (out / "xesync.toml").read_text()
    cfg = config.load(out / "xesync.toml", env={})
    assert cfg.ldap is None
    logged = [
        json.loads(line)
        for line in (tmp_path / "stderr.log").read_text().splitlines()
        if line.startswith("{")
    ]
    omitted = [e for e in logged if e.get("event") == events.LAB_CONFIG_SECTION_OMITTED]
    assert [e["section"] for e in omitted] == ["ldap"]


@pytest.mark.parametrize("kind", [pytest.param("slapd", marks=pytest.mark.slapd), "mock"])
def test_directory_port_resolves_lab_organisers(tmp_path, kind):
    """lab.directory_port() is xesync's Directory over the lab: LdapDirectory on slapd, else LdifDirectory."""
    if kind == "slapd":
        if find_slapd() is None:
            pytest.skip("slapd is not installed")
        fixture = load_fixture()
    else:
        fixture = load_fixture(mock_directory_fixture(tmp_path))
    with Lab(fixture, only=()) as lab:
        assert lab.directory_kind == kind
        directory = lab.directory_port()
        try:
            assert isinstance(directory, LdapDirectory if kind == "slapd" else LdifDirectory)
            bob = directory.resolve("robert@lab.example")
            erin = directory.resolve("erin@partner.example")
        finally:
            directory.close()
    assert not isinstance(bob, NotInDirectory)
    assert (bob.tms_username, bob.jid, bob.pmp) == ("LAB\\bob", "bob@lab.example", True)
    assert isinstance(erin, NotInDirectory)


def test_directory_port_needs_a_directory():
    """A lab started without a directory refuses directory_port() with a clear error."""
    with Lab(only=(), directory=False) as lab, pytest.raises(RuntimeError, match="no directory"):
        lab.directory_port()
