"""``[cms]`` keys of the licence proof: ``urls``, ``enforce_owner`` and ``check_lead``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from xesync import config
from xesync.errors import ConfigError

BASE = """
[exchange]
url = "https://mail.example.com/EWS/Exchange.asmx"
username = "svc@example.com"
password = "ews-inline-secret"

[tms]
url = "https://tms.example.com/tms/external/booking/bookingservice.asmx"
username = "EX\\\\svc"
password = "tms-inline-secret"

[[rooms]]
email = "room-a@example.com"
tms_system_id = 1

[cms]
url = "https://cms.example.com:445/api/v1"
username = "api"
password = "cms-inline-secret"
"""


def load(tmp_path: Path, extra: str = "") -> config.Config:
    """Load BASE with ``extra`` appended to ``[cms]``."""
    path = tmp_path / "xesync.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return config.load(path, env={})


def test_defaults_are_one_bridge_no_fix_up_and_a_five_minute_lead(tmp_path):
    """Without the new keys: url alone, enforce_owner off, check_lead 5m."""
    cms = load(tmp_path).cms
    assert cms is not None
    assert (cms.urls, cms.enforce_owner, cms.check_lead) == ((), False, timedelta(minutes=5))


def test_the_keys_are_read_and_shown(tmp_path):
    """Several bridges, the fix-up and a lead of 0 (no look before the start) are accepted and shown."""
    cfg = load(
        tmp_path,
        'urls = ["https://cb1.example:445/api/v1", "https://cb2.example:445"]\n'
        'enforce_owner = true\ncheck_lead = "0s"\n',
    )
    assert cfg.cms is not None
    assert cfg.cms.urls == ("https://cb1.example:445/api/v1", "https://cb2.example:445")
    assert (cfg.cms.enforce_owner, cfg.cms.check_lead) == (True, timedelta(0))
    shown = json.loads(json.dumps(config.effective(cfg)))["cms"]
    assert (shown["enforce_owner"], shown["check_lead"], len(shown["urls"])) == (True, "0s", 2)
    for key in ("cms.urls", "cms.enforce_owner", "cms.check_lead"):
        assert key not in config.not_yet_in_effect()


def test_bad_values_are_each_reported_with_their_key_path(tmp_path):
    """A bridge URL without a scheme, a non-boolean fix-up and a bad lead are three problems."""
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'urls = ["cb1.example"]\nenforce_owner = "yes"\ncheck_lead = "soon"\n')
    assert err.value.problems == [
        "cms.urls[0]: must start with https:// or http://",
        "cms.enforce_owner: must be true or false",
        "cms.check_lead: must be a duration such as '90s', '15m' or '2h'",
    ]
