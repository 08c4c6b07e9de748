"""``xesync lab serve``: run the lab in the foreground, print its JSON line, write a matching config."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from xesync import events, logs
from xesync.config import LoggingConfig
from xesync.errors import UserError
from xesync.lab.fixture import FixtureError, LabFixture, load_fixture
from xesync.lab.http import NotLoopbackError
from xesync.lab.runtime import Lab

log = structlog.get_logger(__name__)


class LabUsageError(UserError):
    """The lab was asked for something it refuses (a non-loopback host, a bad fixture)."""


def serve(
    *,
    fixture_path: Path | None,
    host: str,
    only: Sequence[str],
    write_config: Path | None,
    verbose: bool = False,
    auth_type: str | None = None,
) -> None:
    """Start the lab, print one JSON line on stdout, serve until SIGTERM or SIGINT."""
    # stdout carries exactly one line (the contract); every log line goes to stderr.
    logs.configure(LoggingConfig(), stream=sys.stderr, verbose=verbose)
    if write_config is not None and not {"ews", "tms"} <= set(only):
        # [exchange] and [tms] are required sections: a config without them would not validate.
        raise LabUsageError("--write-config needs the ews and tms simulators (drop --only or add them)")
    try:
        fixture = load_fixture(fixture_path)
        lab = Lab(fixture, host=host, only=only)
    except (NotLoopbackError, FixtureError, ValueError) as exc:
        raise LabUsageError(str(exc)) from None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with lab:
        description = lab.describe()
        if write_config is not None:
            write_lab_config(
                description,
                write_config,
                fixture=fixture,
                state_dir=write_config.parent / "state",
                auth_type=auth_type,
            )
            description["config"] = str(write_config)
            reason = config_omits_ldap(description.get("ldap"))
            if reason is not None:
                description["config_omitted"] = {"ldap": reason}
                log.warning(events.LAB_CONFIG_SECTION_OMITTED, section="ldap", reason=reason)
        sys.stdout.write(json.dumps(description) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass


def config_omits_ldap(ldap: dict[str, Any] | None) -> str | None:
    """Why the written config has no ``[ldap]`` although the lab serves a directory, or ``None``.

    Without slapd the directory lives in this process on ldap3's mock: nothing listens on an LDAP
    port, and the production configuration accepts only ``ldap://`` and ``ldaps://``. In-process
    users get the same directory from :meth:`xesync.lab.Lab.directory_port`.
    """
    if ldap is None or ldap.get("kind") != "mock":
        return None
    return (
        "the lab directory runs in-process on ldap3's mock (slapd is not installed, or the fixture "
        "says serve = 'mock'), so xesync cannot reach it over LDAP; install slapd for an [ldap] section"
    )


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def config_auth_type(section: dict[str, Any], wanted: str | None) -> str:
    """``auth_type`` for the written ``[exchange]``/``[tms]``: ``wanted``, else what the simulator takes.

    Without a choice, ``basic`` while the simulator accepts it (what every earlier config used), else
    ``ntlm``. :raises LabUsageError: when the simulator does not offer the wanted scheme.
    """
    offered = set(section.get("auth", ["basic"]))
    choice = wanted or ("basic" if "basic" in offered else "ntlm")
    if choice not in offered:
        raise LabUsageError(
            f"auth_type {choice!r}: this lab's {section['url']} offers only {sorted(offered)}"
        )
    return choice


def write_lab_config(
    description: dict[str, Any],
    path: Path,
    *,
    fixture: LabFixture,
    state_dir: Path,
    auth_type: str | None = None,
) -> None:
    """Write a complete xesync configuration for the running lab, secrets in files beside it.

    The TMS domain and the JID domain come from the fixture (``netbios``, ``domain``), the same values
    the TMS users and the CMS LDAP jidMapping are built from. ``auth_type`` (``basic`` | ``ntlm``)
    sets how xesync authenticates to EWS and TMS; see :func:`config_auth_type`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    secrets_dir = path.parent / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    lines: list[str] = ["# Written by `xesync lab serve --write-config`: points xesync at the lab.", ""]

    def secret(name: str, value: str) -> str:
        target = secrets_dir / name
        _write_secret(target, value)
        return f"password_file = {_toml_str(str(target))}"

    ews = description.get("ews")
    if ews:
        account = ews["service_account"]
        lines += [
            "[exchange]",
            f"url = {_toml_str(ews['url'])}",
            f"username = {_toml_str(account['username'])}",
            secret("ews-password", account["password"]),
            f"auth_type = {_toml_str(config_auth_type(ews, auth_type))}",
            f"version = {_toml_str(ews['build'])}",
            "",
        ]
    tms = description.get("tms")
    if tms:
        lines += [
            "[tms]",
            f"url = {_toml_str(tms['url'])}",
            f"remote_setup_url = {_toml_str(tms['remote_setup_url'])}",
            f"username = {_toml_str(tms['username'])}",
            secret("tms-password", tms["password"]),
            f"auth_type = {_toml_str(config_auth_type(tms, auth_type))}",
            "",
        ]
    cms = description.get("cms")
    if cms:
        lines += [
            "[cms]",
            f"url = {_toml_str(cms['url'])}",
            f"username = {_toml_str(cms['username'])}",
            secret("cms-password", cms["password"]),
            "",
        ]
    ldap = description.get("ldap")
    if ldap and config_omits_ldap(ldap) is None:
        lines += [
            "[ldap]",
            f"url = {_toml_str(ldap['url'])}",
            f"bind_dn = {_toml_str(ldap['bind_dn'])}",
            secret("ldap-password", ldap["password"]),
            f"base_dn = {_toml_str(ldap['base_dn'])}",
            f"pmp_groups = [{_toml_str(ldap['pmp_group_dn'])}]",
            'username_attribute = "uid"',
            f"tms_domain = {_toml_str(fixture.netbios)}",
            f"jid_template = {_toml_str('{username}@' + fixture.domain)}",
            'guid_attribute = "entryUUID"',
            'group_membership = "member_of"',
            "",
        ]
    lines += ["[sync]", f"state_dir = {_toml_str(str(state_dir))}", "", "[logging]", 'level = "info"', ""]
    for room in (ews or {}).get("rooms", []):
        lines += [
            "[[rooms]]",
            f"email = {_toml_str(room['email'])}",
            f"name = {_toml_str(room['name'])}",
            f"tms_system_id = {int(room['tms_system_id'])}",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
