"""deploy/xesync.service: a notify service, every secret as a credential, hardened to exposure <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from xesync import config
from xesync.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "xesync.service"
README = ROOT / "deploy" / "README.md"
EXAMPLE = ROOT / "config" / "xesync.example.toml"
MAX_EXPOSURE = 2.0


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as sections of (key, value) pairs in order; repeated keys stay repeated."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            logical += line[:-1].rstrip() + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a unit-file assignment: {raw!r}"
        assert current is not None, f"an assignment before any section: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def single(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}= set {len(found)} times"
    return found[0]


@pytest.fixture(scope="module")
def service():
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def test_parse_unit_keeps_repeats_and_joins_continuations():
    """The test's own unit parser keeps repeated keys and joins backslash continuations."""
    parsed = parse_unit("# c\n[Service]\nA=1\nA=2\nB=x \\\n  y\n; c\n")
    assert parsed == {"Service": [("A", "1"), ("A", "2"), ("B", "x y")]}


def test_it_is_a_notify_service_with_a_watchdog_and_reload(service):
    """Type=notify with a watchdog; reload is SIGHUP; exit 2 (a configuration error) is not restarted."""
    assert single(service, "Type") == "notify"
    assert single(service, "NotifyAccess") == "main"
    assert re.fullmatch(r"\d+(s|min)", single(service, "WatchdogSec"))
    assert single(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert single(service, "Restart") == "on-failure"
    assert ConfigError([]).exit_code == 2
    assert single(service, "RestartPreventExitStatus") == "2"


def test_exec_start_runs_the_daemon_from_the_documented_venv(service):
    """ExecStart runs `xesync run` with the config path the README documents, from the README's venv."""
    command = single(service, "ExecStart").split()
    assert command[1:] == ["run", "--config", "/etc/xesync/xesync.toml"]
    assert command[0].endswith("/bin/xesync")
    venv = command[0].removesuffix("/bin/xesync")
    readme = README.read_text(encoding="utf-8")
    assert f"python3 -m venv {venv}" in readme
    assert str(config.DEFAULT_PATH) == "/etc/xesync/xesync.toml"


def test_state_directory_is_the_configured_default(service):
    """StateDirectory= is the directory [sync] state_dir defaults to, private to the service."""
    name = single(service, "StateDirectory")
    assert Path("/var/lib") / name == config.SyncConfig().state_dir
    assert single(service, "StateDirectoryMode") == "0700"
    assert single(service, "UMask") == "0077"


def test_every_secret_is_loaded_as_a_credential(service):
    """Each credential the example configuration names, and one per service, has a LoadCredential= line."""
    loaded = {v.split(":", 1)[0] for v in values(service, "LoadCredential")}
    named = set(re.findall(r'_credential = "([\w-]+)"', EXAMPLE.read_text(encoding="utf-8")))
    assert {"ews", "tms", "cms", "ldap"} <= named
    assert named <= loaded
    # Bare IDs, looked up in the credential store; a missing optional one (cms, ldap) is skipped.
    assert all(":" not in v for v in values(service, "LoadCredential"))


def test_it_runs_unprivileged(service):
    """The service runs as its own unprivileged user with no capabilities and no privilege gain."""
    assert single(service, "User") == "xesync"
    assert single(service, "Group") == "xesync"
    # A static user, so admins' CLI commands reach the same store (see the unit's comment).
    assert values(service, "DynamicUser") == []
    assert single(service, "CapabilityBoundingSet") == ""
    assert single(service, "NoNewPrivileges") == "yes"


HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "SystemCallArchitectures": "native",
}


def test_hardening_keys_are_set(service):
    """The hardening the issue names is present with its strict value, and the syscall filter is narrow."""
    got = {key: single(service, key) for key in HARDENING}
    assert got == HARDENING
    assert values(service, "SystemCallFilter")[0] == "@system-service"
    assert "@privileged" in values(service, "SystemCallFilter")[1]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_rates_the_unit_at_most_2():
    """`systemd-analyze security --offline=true` rates the unit's overall exposure at 2.0 or lower."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for xesync\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
