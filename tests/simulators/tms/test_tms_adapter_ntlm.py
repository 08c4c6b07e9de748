"""xesync's TMS adapter over NTLM against a lab TMS with Basic switched off, as a default TMS install is.

The configuration is the one ``xesync lab serve --write-config --auth-type ntlm`` writes, read back
through the production config reader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from xesync import config as config_mod
from xesync.adapters.tms import TmsBookingSink
from xesync.config.model import Config, Secret, TmsAuthType
from xesync.errors import ConfigError
from xesync.lab.fixture import load_fixture
from xesync.lab.http import AUTH_OPERATION
from xesync.lab.runtime import Lab
from xesync.lab.serve import write_lab_config
from xesync.meetings import ConferenceRequest


@pytest.fixture(scope="module")
def windows_lab() -> Iterator[Lab]:
    """EWS and TMS with Windows authentication only (Basic off on both)."""
    base = load_fixture()
    fixture = dataclasses.replace(
        base,
        ews={**base.ews, "auth": ["negotiate", "ntlm"]},
        tms={**base.tms, "auth": ["negotiate", "ntlm"]},
    )
    with Lab(fixture, only=("ews", "tms"), directory=False) as lab:
        yield lab


@pytest.fixture
def ntlm_config(windows_lab: Lab, tmp_path: Path) -> Config:
    """The written configuration: with Basic off, auth_type is ntlm without being asked for."""
    windows_lab.reset()
    path = tmp_path / "xesync.toml"
    write_lab_config(windows_lab.describe(), path, fixture=windows_lab.fixture, state_dir=tmp_path / "state")
    return config_mod.load(path)


def _request(lab: Lab, key: str) -> ConferenceRequest:
    start = lab.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    return ConferenceRequest(
        external_key=key,
        title="Over NTLM",
        start=start,
        end=start + timedelta(hours=1),
        time_zone="Europe/Oslo",
        system_ids=(11,),
    )


def test_adapter_books_finds_and_deletes_over_ntlm(windows_lab: Lab, ntlm_config: Config):
    """TmsBookingSink with auth_type ntlm saves, reads back and deletes a booking; the handshake ran."""
    assert ntlm_config.tms.auth_type is TmsAuthType.NTLM
    sink = TmsBookingSink(ntlm_config.tms)
    try:
        saved = sink.save(_request(windows_lab, "ntlm-1"))
        found = sink.find("ntlm-1")
        assert found is not None
        assert found.conference_id == saved.conference_id
        assert sink.delete("ntlm-1") is True
    finally:
        sink.close()
    assert windows_lab.requests.count("tms", AUTH_OPERATION) >= 2


def test_adapter_with_a_wrong_ntlm_password_is_a_config_error(windows_lab: Lab, ntlm_config: Config):
    """A wrong password over NTLM ends in ConfigError naming tms.username/tms.password."""
    tms = dataclasses.replace(ntlm_config.tms, password=Secret("not-the-password"))
    sink = TmsBookingSink(tms)
    try:
        with pytest.raises(ConfigError, match=r"tms\.username/tms\.password"):
            sink.find("ntlm-missing")
    finally:
        sink.close()


def test_adapter_with_basic_is_refused_when_basic_is_off(windows_lab: Lab, ntlm_config: Config):
    """The same credentials over Basic are refused by a TMS that offers only Windows authentication."""
    tms = dataclasses.replace(ntlm_config.tms, auth_type=TmsAuthType.BASIC)
    sink = TmsBookingSink(tms)
    try:
        with pytest.raises(ConfigError):
            sink.find("ntlm-missing")
    finally:
        sink.close()
