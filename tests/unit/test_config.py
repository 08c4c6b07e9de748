"""Configuration: lookup order, validation that reports every problem, secret sources, masking."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from xesync import config
from xesync.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "xesync.example.toml"

MINIMAL = """
[exchange]
url = "https://mail.example.com/EWS/Exchange.asmx"
username = "svc@example.com"
password = "ews-inline-secret"

[tms]
url = "https://tms.example.com/tms/external/booking/bookingservice.asmx"
username = "EX\\\\svc"
password_env = "TMS_PW"

[[rooms]]
email = "room-a@example.com"
tms_system_id = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xesync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid():
    """The shipped example validates and documents every section."""
    cfg = config.load(EXAMPLE, env={})
    assert cfg.rooms[0].tms_system_id == 11
    assert cfg.ldap is not None
    assert cfg.ldap.pmp_groups
    assert cfg.cms is not None
    assert cfg.exchange.max_wait == timedelta(minutes=1)


def test_example_documents_every_key():
    """Every field of every config dataclass appears in the example file."""
    text = EXAMPLE.read_text()
    sections = {
        "exchange": config.ExchangeConfig,
        "tms": config.TmsConfig,
        "cms": config.CmsConfig,
        "ldap": config.LdapConfig,
        "sync": config.SyncConfig,
        "logging": config.LoggingConfig,
        "metrics": config.MetricsConfig,
    }
    for cls in sections.values():
        for name in cls.__dataclass_fields__:
            key = {"tls": "verify_tls"}.get(name, name)
            assert f"{key} =" in text or f"{key}_" in text, f"{cls.__name__}.{name} undocumented"
    assert "ca_file" in text


def test_three_mistakes_are_all_reported(tmp_path):
    """A config with three mistakes names all three with key paths."""
    text = MINIMAL.replace("tms_system_id = 1", 'tms_system_id = "one"') + (
        '\n[sync]\ninterval = "soon"\ncolour = "blue"\n'
    )
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text), env={"TMS_PW": "x"})
    assert err.value.problems == [
        "sync.interval: must be a duration such as '90s', '15m' or '2h'",
        "sync.colour: unknown key",
        "rooms[0].tms_system_id: must be an integer",
    ]


def test_missing_sections_and_keys(tmp_path):
    """Missing required sections and keys are reported, not raised one at a time."""
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, "[exchange]\nurl = 'ftp://x'\n"), env={})
    assert "exchange.url: must start with https:// or http://" in err.value.problems
    assert "exchange.username: is required" in err.value.problems
    assert any(p.startswith("exchange.password: is required") for p in err.value.problems)
    assert "tms: section is required" in err.value.problems


def test_lookup_order(tmp_path):
    """--config wins over $XESYNC_CONFIG, which wins over /etc/xesync/xesync.toml."""
    env = {"XESYNC_CONFIG": str(tmp_path / "env.toml")}
    assert config.resolve_path(tmp_path / "cli.toml", env) == tmp_path / "cli.toml"
    assert config.resolve_path(None, env) == tmp_path / "env.toml"
    assert config.resolve_path(None, {}) == Path("/etc/xesync/xesync.toml")


def test_unreadable_file_is_a_config_error(tmp_path):
    """A missing file is a ConfigError naming the path and how to point elsewhere."""
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path / "nope.toml", env={})
    assert "--config" in str(err.value)


def test_bad_toml_is_a_config_error(tmp_path):
    """Invalid TOML is reported as a problem, not a traceback."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[exchange\n"), env={})


@pytest.mark.parametrize(
    ("line", "env", "files"),
    [
        ('password_file = "pw.txt"', {}, {"pw.txt": "s3cret-from-file\n"}),
        ('password_env = "MY_PW"', {"MY_PW": "s3cret-from-env"}, {}),
        ('password_credential = "tms"', {"CREDENTIALS_DIRECTORY": "creds"}, {"creds/tms": "s3cret-cred"}),
    ],
)
def test_secret_sources(tmp_path, line, env, files):
    """Secrets come from a file (relative to the config), an env var or a systemd credential."""
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    env = {k: (str(tmp_path / v) if k == "CREDENTIALS_DIRECTORY" else v) for k, v in env.items()}
    cfg = config.load(write(tmp_path, MINIMAL.replace('password_env = "TMS_PW"', line)), env=env)
    assert cfg.tms.password.reveal().startswith("s3cret")
    assert "s3cret" not in repr(cfg.tms.password)
    assert "s3cret" not in json.dumps(config.effective(cfg))


def test_two_secret_sources_is_a_problem(tmp_path):
    """Giving both password and password_file is ambiguous and reported."""
    text = MINIMAL.replace('password_env = "TMS_PW"', 'password = "a"\npassword_env = "TMS_PW"')
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text), env={"TMS_PW": "b"})
    assert err.value.problems == ["tms.password: give only one of password, password_env"]


def test_missing_env_secret(tmp_path):
    """A password_env naming an unset variable says so."""
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, MINIMAL), env={})
    assert err.value.problems == ["tms.password_env: environment variable TMS_PW is not set"]


def test_duplicate_rooms_reported(tmp_path):
    """Two rooms on one mailbox or one TMS system are reported."""
    text = MINIMAL + '\n[[rooms]]\nemail = "ROOM-A@example.com"\ntms_system_id = 1\n'
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text), env={"TMS_PW": "x"})
    assert err.value.problems == [
        "rooms[1].email: duplicates rooms[0].email",
        "rooms[1].tms_system_id: duplicates rooms[0]",
    ]


def test_enum_and_duration_conversion(tmp_path):
    """Durations become timedelta and enums are checked against their choices."""
    text = MINIMAL + '\n[sync]\ninterval = "90s"\nlookahead = "30d"\nunknown_organiser = "maybe"\n'
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text), env={"TMS_PW": "x"})
    assert err.value.problems == ["sync.unknown_organiser: must be one of 'decline', 'book_as_service'"]
    ok = config.load(write(tmp_path, text.replace("maybe", "decline")), env={"TMS_PW": "x"})
    assert ok.sync.interval == timedelta(seconds=90)
    assert ok.sync.lookahead == timedelta(days=30)


def test_room_lookup_lists_choices(tmp_path):
    """An unknown room name lists the configured rooms."""
    cfg = config.load(write(tmp_path, MINIMAL), env={"TMS_PW": "x"})
    assert cfg.room("ROOM-A@example.com").tms_system_id == 1
    with pytest.raises(ConfigError, match=r"configured rooms: room-a@example\.com"):
        cfg.room("nowhere")


def test_remote_setup_url_is_derived(tmp_path):
    """The remote setup URL defaults to the booking URL's sibling."""
    cfg = config.load(write(tmp_path, MINIMAL), env={"TMS_PW": "x"})
    assert cfg.tms.remote_setup_url.endswith("/booking/remotesetup/remotesetupservice.asmx")


def test_as_duration_rejects_garbage():
    """as_duration accepts units and numbers and rejects everything else."""
    assert config.as_duration("250ms") == timedelta(milliseconds=250)
    assert config.as_duration(5) == timedelta(seconds=5)
    for bad in ("5 weeks", True, -1, None):
        with pytest.raises(ValueError):
            config.as_duration(bad)


def test_example_with_copied_secrets(tmp_path):
    """The example validates when copied elsewhere with its secrets folder."""
    shutil.copy(EXAMPLE, tmp_path / "x.toml")
    shutil.copytree(EXAMPLE.parent / "secrets", tmp_path / "secrets")
    assert config.load(tmp_path / "x.toml", env={}).tms.password.source.startswith("file:")


# -- a present value is used or refused, never replaced by the default ---------------------------

LDAP = """
[ldap]
url = "ldaps://dc.example.com"
bind_dn = "cn=svc,dc=example,dc=com"
password = "ldap-inline-secret"
base_dn = "dc=example,dc=com"
pmp_groups = ["cn=pmp,dc=example,dc=com"]
"""


def load_text(tmp_path: Path, text: str) -> config.Config:
    return config.load(write(tmp_path, text), env={"TMS_PW": "x"})


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    return err.value.problems


def test_zero_values_that_mean_something_are_kept(tmp_path):
    """cache_ttl = "0s" turns the cache off and max_wait = "0s" fails fast: neither becomes the default."""
    text = MINIMAL.replace("[tms]", 'max_wait = "0s"\n\n[tms]') + LDAP + 'cache_ttl = "0s"\n'
    cfg = load_text(tmp_path, text)
    assert cfg.ldap is not None
    assert cfg.ldap.cache_ttl == timedelta(0)
    assert cfg.exchange.max_wait == timedelta(0)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("[sync]\ninterval = 0", "sync.interval: must be longer than 0s"),
        ('[sync]\nlookahead = "0s"', "sync.lookahead: must be longer than 0s"),
        ('[sync]\nstream_safety_interval = "0s"', "sync.stream_safety_interval: must be longer than 0s"),
        ('[sync]\nstate_dir = ""', "sync.state_dir: must not be empty"),
        ('[sync]\nprivate_title = ""', "sync.private_title: must not be empty"),
        ('[logging]\nlevel = ""', "logging.level: must not be empty"),
        ('[metrics]\nhost = ""', "metrics.host: must not be empty"),
        ("[metrics]\nport = 0", "metrics.port: must be at least 1"),
    ],
)
def test_present_empty_or_zero_values_are_refused_not_defaulted(tmp_path, extra, problem):
    """0, "0s" and "" where they make no sense are refused with the key, not silently replaced."""
    assert problem in problems_of(tmp_path, MINIMAL + "\n" + extra + "\n")


def test_empty_strings_in_required_and_defaulted_keys_are_refused(tmp_path):
    """An empty external_source_id, remote_setup_url or username is a problem, not the default."""
    text = MINIMAL.replace('username = "EX\\\\svc"', 'username = ""').replace(
        "[[rooms]]", 'external_source_id = ""\nremote_setup_url = ""\n\n[[rooms]]'
    )
    problems = problems_of(tmp_path, text)
    assert "tms.username: must not be empty" in problems
    assert "tms.external_source_id: must not be empty" in problems
    assert "tms.remote_setup_url: must not be empty" in problems


def test_empty_lists_are_values(tmp_path):
    """mail_attributes = [] is refused by the LDAP rules instead of becoming the default list."""
    problems = problems_of(tmp_path, MINIMAL + LDAP + "mail_attributes = []\n")
    assert problems == ["ldap.mail_attributes: must name at least one attribute"]


# -- [ldap]: one validator, the one the adapter uses ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('user_filter = "objectClass=user"', "ldap.user_filter: not an LDAP filter"),
        ('user_filter = "(&(objectClass=user)"', "ldap.user_filter: not an LDAP filter"),
        ('pmp_groups = ["not a dn"]', "ldap.pmp_groups[0]: not a DN: 'not a dn'"),
        ('mail_attributes = ["mail)(uid=*"]', "ldap.mail_attributes[0]: not an attribute name"),
        ('username_attribute = "s A M"', "ldap.username_attribute: not an attribute name"),
        ('tms_username_format = "{user}"', "ldap.tms_username_format: unknown field {user}"),
        ('jid_template = "{username"', "ldap.jid_template: expected '}'"),
        ('ca_file = "missing-ca.pem"', "ldap.ca_file: no such file"),
        ("start_tls = true", "ldap.start_tls: cannot be used with an ldaps:// url"),
    ],
)
def test_ldap_rules_are_checked_by_the_config(tmp_path, line, problem):
    """Every rule the directory adapter enforces is refused by load() (and so by check-config)."""
    key = line.split("=", 1)[0].strip()
    ldap = "\n".join(x for x in LDAP.splitlines() if not x.startswith(f"{key} ="))
    problems = problems_of(tmp_path, MINIMAL + ldap + "\n" + line + "\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)


@pytest.mark.parametrize("url", ["ldif:///srv/lab.ldif", "ldap://", "ldap://dc.example.com:x"])
def test_ldap_url_is_a_server(tmp_path, url):
    """ldap.url accepts only ldap://host[:port] and ldaps://host[:port]; ldif:// belongs to the lab."""
    problems = problems_of(tmp_path, MINIMAL + LDAP.replace('"ldaps://dc.example.com"', f'"{url}"'))
    assert [p.split(":", 1)[0] for p in problems] == ["ldap.url"]


def test_ca_file_is_relative_to_the_config_file(tmp_path):
    """A relative ca_file names a file beside the configuration, and must exist."""
    (tmp_path / "corp-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = load_text(tmp_path, MINIMAL + LDAP + 'ca_file = "corp-ca.pem"\n')
    assert cfg.ldap is not None
    assert cfg.ldap.tls.ca_file == tmp_path / "corp-ca.pem"


CMS = """
[cms]
url = "https://cms.example.com:445/api/v1"
username = "api"
password = "cms-inline-secret"
"""


def test_jid_template_has_no_default_and_is_required_with_cms(tmp_path):
    """With [cms] and [ldap], a missing jid_template is a problem; without [cms] it stays unset."""
    assert problems_of(tmp_path, MINIMAL + CMS + LDAP) == [
        "ldap.jid_template: is required when [cms] is configured, e.g. '{username}@example.com'"
    ]
    cfg = load_text(tmp_path, MINIMAL + LDAP)
    assert cfg.ldap is not None
    assert cfg.ldap.jid_template is None
    cfg = load_text(tmp_path, MINIMAL + CMS + LDAP + 'jid_template = "{username}@example.com"\n')
    assert cfg.ldap is not None
    assert cfg.ldap.jid_template == "{username}@example.com"


# -- keys accepted but not yet in effect ----------------------------------------------------------


def _config_keys() -> set[str]:
    sections = {
        "exchange": config.ExchangeConfig,
        "tms": config.TmsConfig,
        "cms": config.CmsConfig,
        "ldap": config.LdapConfig,
        "sync": config.SyncConfig,
        "logging": config.LoggingConfig,
        "metrics": config.MetricsConfig,
    }
    return {f"{name}.{field}" for name, cls in sections.items() for field in cls.__dataclass_fields__}


def test_not_yet_in_effect_names_real_keys_once():
    """Every registry entry is a key of the configuration, listed once, and metrics.port is among them."""
    assert set(config.NOT_YET_IN_EFFECT) <= _config_keys()
    assert len(set(config.NOT_YET_IN_EFFECT)) == len(config.NOT_YET_IN_EFFECT)
    assert config.not_yet_in_effect() == sorted(config.NOT_YET_IN_EFFECT)


def test_streaming_keys_are_used_when_present_and_refused_when_invalid(tmp_path):
    """The two streaming keys have defaults, take a present value and refuse a bad one."""
    default = load_text(tmp_path, MINIMAL)
    assert default.exchange.stream_catch_up is config.StreamCatchUp.NEW_SUBSCRIPTIONS
    assert default.sync.stream_safety_interval == timedelta(hours=1)
    text = MINIMAL.replace("[tms]", 'stream_catch_up = "every_connect"\n\n[tms]')
    text += '\n[sync]\nstream_safety_interval = "20m"\n'
    cfg = load_text(tmp_path, text)
    assert cfg.exchange.stream_catch_up is config.StreamCatchUp.EVERY_CONNECT
    assert cfg.sync.stream_safety_interval == timedelta(minutes=20)
    shown = config.effective(cfg)
    assert shown["exchange"]["stream_catch_up"] == "every_connect"
    assert shown["sync"]["stream_safety_interval"] == "20m"
    bad = MINIMAL.replace("[tms]", 'stream_catch_up = "sometimes"\n\n[tms]')
    assert problems_of(tmp_path, bad) == [
        "exchange.stream_catch_up: must be one of 'new_subscriptions', 'every_connect'"
    ]
