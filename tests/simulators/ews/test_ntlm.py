"""EWS simulator: IIS Windows authentication, spoken by unmodified exchangelib with ``auth_type=NTLM``.

Also the configuration ``xesync lab serve --write-config --auth-type ntlm`` writes, read back through the
production config reader and used to drive exchangelib and requests-ntlm against the lab.
"""

from __future__ import annotations

import dataclasses

import pytest
import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSTimeZone,
    FailFast,
    Version,
)
from exchangelib.errors import UnauthorizedError
from exchangelib.protocol import close_connections
from requests_ntlm import HttpNtlmAuth

from xesync import config as config_mod
from xesync.config.model import AuthType, TmsAuthType
from xesync.lab.fixture import load_fixture
from xesync.lab.http import AUTH_OPERATION
from xesync.lab.runtime import Lab
from xesync.lab.serve import LabUsageError, write_lab_config

BUILD = Build(15, 1, 2507, 6)
ROOM = "room-oslo@lab.example"
UTC_TZ = EWSTimeZone("UTC")


def lab_fixture(**ews):
    """The shipped fixture with ``[ews]`` keys overridden."""
    base = load_fixture()
    return dataclasses.replace(base, ews={**base.ews, **ews})


def account(url, username, password, email=ROOM, *, auth_type=NTLM, access=IMPERSONATION, connections=None):
    """An exchangelib Account with an explicit auth type, version and FailFast, no autodiscover."""
    config = Configuration(
        service_endpoint=url,
        credentials=Credentials(username, password),
        auth_type=auth_type,
        version=Version(build=BUILD),
        retry_policy=FailFast(),
        max_connections=connections,
    )
    return Account(email, config=config, autodiscover=False, access_type=access, default_timezone=UTC_TZ)


@pytest.fixture(scope="module")
def windows_only():
    """An EWS lab with Basic switched off, as Exchange's EWS virtual directory is by default."""
    with Lab(lab_fixture(auth=["negotiate", "ntlm"]), only=("ews",), directory=False) as running:
        yield running
    close_connections()


def test_exchangelib_ntlm_service_account_reads_the_room(ews, url):
    """exchangelib with auth_type=NTLM impersonates a room through the handshake and reads its calendar."""
    room = account(url, "svc-xesync@lab.example", "lab-ews-secret", connections=1)
    assert room.calendar.total_count >= 0
    room.calendar.refresh()
    list(room.calendar.all().only("subject"))
    operations = ews.requests.snapshot("ews")["ews"]["operations"]
    # One connection: the 401 probe and the NEGOTIATE leg once, then the connection stays authenticated.
    assert operations[AUTH_OPERATION] == 2
    assert operations["FindItem"] == 1


def test_exchangelib_ntlm_with_a_wrong_password_is_unauthorized(ews, url):
    """A wrong NTLM password ends in exchangelib's UnauthorizedError."""
    room = account(url, "svc-xesync@lab.example", "not-the-password")
    with pytest.raises(UnauthorizedError):
        room.calendar.refresh()


def test_exchangelib_ntlm_accepts_the_netbios_login(ews, url):
    """A user logs in as LAB\\alice over NTLM and reads her own calendar with delegate access."""
    alice = account(url, "LAB\\alice", "alice-lab-pw", "alice@lab.example", access=DELEGATE)
    assert list(alice.calendar.all()) == []


def test_requests_ntlm_raw_soap_is_served(ews, url):
    """Raw SOAP over requests-ntlm gets a 200 EWS answer; a wrong password gets 401."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"'
        ' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        '<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header><s:Body>'
        '<m:ConvertId DestinationFormat="EwsId"><m:SourceIds>'
        '<t:AlternateId Format="EwsId" Id="AAA=" Mailbox="room-oslo@lab.example"/>'
        "</m:SourceIds></m:ConvertId></s:Body></s:Envelope>"
    )
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    user = "svc-xesync@lab.example"
    ok = requests.post(url, data=body, headers=headers, auth=HttpNtlmAuth(user, "lab-ews-secret"), timeout=5)
    bad = requests.post(url, data=body, headers=headers, auth=HttpNtlmAuth(user, "wrong"), timeout=5)
    assert ok.status_code == 200
    assert b"ConvertIdResponse" in ok.content
    assert [r.status_code for r in ok.history] == [401, 401]
    assert bad.status_code == 401


def test_basic_switched_off_refuses_basic_and_serves_ntlm(windows_only):
    """With auth = negotiate, ntlm, exchangelib's Basic is unauthorized while NTLM works."""
    url = windows_only.describe()["ews"]["url"]
    probe = requests.post(url, data=b"", timeout=5)
    assert probe.status_code == 401
    assert "basic" not in probe.headers["WWW-Authenticate"].lower()
    with pytest.raises(UnauthorizedError):
        account(url, "svc-xesync@lab.example", "lab-ews-secret", auth_type=BASIC).calendar.refresh()
    close_connections()
    account(url, "svc-xesync@lab.example", "lab-ews-secret").calendar.refresh()


def test_write_config_ntlm_drives_exchangelib_and_tms(tmp_path):
    """--auth-type ntlm writes auth_type = "ntlm" for EWS and TMS, and those credentials work over NTLM."""
    with Lab(lab_fixture(), only=("ews", "tms"), directory=False) as lab:
        path = tmp_path / "xesync.toml"
        write_lab_config(
            lab.describe(), path, fixture=lab.fixture, state_dir=tmp_path / "state", auth_type="ntlm"
        )
        cfg = config_mod.load(path)
        assert cfg.exchange.auth_type is AuthType.NTLM
        assert cfg.tms.auth_type is TmsAuthType.NTLM
        ews = cfg.exchange
        room = account(ews.url, ews.username, ews.password.reveal(), cfg.rooms[0].email)
        room.calendar.refresh()
        wsdl = requests.get(
            cfg.tms.url + "?wsdl", auth=HttpNtlmAuth(cfg.tms.username, cfg.tms.password.reveal()), timeout=5
        )
        assert wsdl.status_code == 200
    close_connections()


def test_write_config_follows_the_schemes_the_lab_offers(tmp_path, windows_only):
    """Unasked, the config says basic while Basic is on and ntlm when it is off; basic is refused then."""
    with Lab(lab_fixture(), only=("ews", "tms"), directory=False) as lab:
        description = lab.describe()
    write_lab_config(description, tmp_path / "a.toml", fixture=lab.fixture, state_dir=tmp_path / "s")
    assert config_mod.load(tmp_path / "a.toml").exchange.auth_type is AuthType.BASIC
    description["ews"] = windows_only.describe()["ews"]
    write_lab_config(description, tmp_path / "b.toml", fixture=lab.fixture, state_dir=tmp_path / "s")
    written = config_mod.load(tmp_path / "b.toml")
    assert (written.exchange.auth_type, written.tms.auth_type) == (AuthType.NTLM, TmsAuthType.BASIC)
    with pytest.raises(LabUsageError, match="offers only"):
        write_lab_config(
            description, tmp_path / "c.toml", fixture=lab.fixture, state_dir=tmp_path / "s", auth_type="basic"
        )
