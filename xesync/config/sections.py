"""The sections of ``xesync.toml``, each validated into its frozen type; ``parse`` and ``load``."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from xesync.config.ldap_section import read_ldap
from xesync.config.model import (
    AuthType,
    BookingMode,
    CmsConfig,
    Config,
    ExchangeConfig,
    LogFormat,
    LoggingConfig,
    MetricsConfig,
    PrivateMeetings,
    RoomConfig,
    Secret,
    SeriesBeyondLimits,
    StreamCatchUp,
    SyncConfig,
    TmsAuthType,
    TmsConfig,
    UnknownOrganiser,
)
from xesync.config.reader import EMAIL, HHMM, LEVELS, Reader, as_duration, check_nonempty, read_tls
from xesync.errors import ConfigError

DEFAULT_PATH = Path("/etc/xesync/xesync.toml")
ENV_VAR = "XESYNC_CONFIG"

T = TypeVar("T")


def _url(r: Reader, name: str, schemes: tuple[str, ...], *, required: bool = True) -> str | None:
    value = r.get(name, check_nonempty, None, required=required)
    if value and not value.startswith(tuple(f"{s}://" for s in schemes)):
        r.problem(name, f"must start with {' or '.join(s + '://' for s in schemes)}")
    return value


def _exchange(r: Reader) -> ExchangeConfig:
    auth = r.enum("auth_type", AuthType, AuthType.NTLM)
    cfg = ExchangeConfig(
        url=_url(r, "url", ("https", "http")) or "",
        username=r.req_str("username"),
        password=r.secret("password", required=auth is not AuthType.OAUTH),
        auth_type=auth,
        version=r.text("version"),
        impersonation=r.flag("impersonation", default=True),
        max_connections=r.integer("max_connections", 4, minimum=2),
        stream_catch_up=r.enum("stream_catch_up", StreamCatchUp, StreamCatchUp.NEW_SUBSCRIPTIONS),
        # 0s is meaningful: fail fast instead of waiting out throttling.
        max_wait=r.duration("max_wait", timedelta(seconds=60), positive=False),
        timeout=r.duration("timeout", timedelta(seconds=30)),
        oauth_client_id=r.text("oauth_client_id", required=auth is AuthType.OAUTH),
        oauth_tenant_id=r.text("oauth_tenant_id", required=auth is AuthType.OAUTH),
        oauth_client_secret=r.secret("oauth_client_secret", required=auth is AuthType.OAUTH),
        tls=read_tls(r),
    )
    if cfg.version is not None and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", cfg.version):
        r.problem("version", "must be an Exchange build such as '15.1.2507.6'")
    return cfg


def _tms(r: Reader) -> TmsConfig:
    url = _url(r, "url", ("https", "http")) or ""
    remote_setup_url = _url(r, "remote_setup_url", ("https", "http"), required=False)
    if remote_setup_url is None:
        remote_setup_url = re.sub(r"(?i)bookingservice\.asmx$", "remotesetup/remotesetupservice.asmx", url)
    return TmsConfig(
        url=url,
        remote_setup_url=remote_setup_url,
        username=r.req_str("username"),
        password=r.secret("password", required=True) or Secret(""),
        client_version=r.integer("client_version", 22, minimum=1),
        external_source_id=r.string("external_source_id", "xesync"),
        booking_window_days=r.integer("booking_window_days", 365, minimum=1),
        booking_mode=r.enum("booking_mode", BookingMode, BookingMode.STRICT),
        auth_type=r.enum("auth_type", TmsAuthType, TmsAuthType.BASIC),
        timeout=r.duration("timeout", timedelta(seconds=30)),
        tls=read_tls(r),
    )


def _cms(r: Reader) -> CmsConfig:
    urls = r.str_list("urls")
    for i, url in enumerate(urls):
        if not url.startswith(("https://", "http://")):
            r.problem(f"urls[{i}]", "must start with https:// or http://")
    return CmsConfig(
        url=_url(r, "url", ("https", "http")) or "",
        username=r.req_str("username"),
        password=r.secret("password", required=True) or Secret(""),
        timeout=r.duration("timeout", timedelta(seconds=15)),
        tls=read_tls(r),
        urls=urls,
        enforce_owner=r.flag("enforce_owner", default=False),
        # 0s is meaningful: no look before the start, only the verdict a minute after it.
        check_lead=r.duration("check_lead", timedelta(minutes=5), positive=False),
    )


def _sync(r: Reader) -> SyncConfig:
    at = r.string("full_reconcile_at", "03:00")
    if not HHMM.match(at):
        r.problem("full_reconcile_at", "must be a time of day such as '03:00'")
    return SyncConfig(
        interval=r.duration("interval", timedelta(seconds=60)),
        stream_safety_interval=r.duration("stream_safety_interval", timedelta(hours=1)),
        full_reconcile_at=at,
        lookahead=r.duration("lookahead", timedelta(days=180)),
        state_dir=r.path_("state_dir", Path("/var/lib/xesync")) or Path("/var/lib/xesync"),
        dry_run=r.flag("dry_run", default=False),
        mass_cancel_guard=r.flag("mass_cancel_guard", default=True),
        mass_cancel_max_share=_share(r, "mass_cancel_max_share", 0.5),
        unknown_organiser=r.enum("unknown_organiser", UnknownOrganiser, UnknownOrganiser.DECLINE),
        notify_organiser=r.flag("notify_organiser", default=True),
        max_duration=r.duration("max_duration", timedelta(hours=24)),
        private_meetings=r.enum("private_meetings", PrivateMeetings, PrivateMeetings.NEUTRAL),
        private_title=r.string("private_title", "Private meeting"),
        series_beyond_limits=r.enum("series_beyond_limits", SeriesBeyondLimits, SeriesBeyondLimits.ROLLING),
        templates_dir=r.path_("templates_dir"),
    )


def _share(r: Reader, name: str, default: float) -> float:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise ValueError("must be a number above 0 and at most 1")
        return float(v)

    value = r.get(name, check, default, required=False)
    return default if value is None else value


def _room(r: Reader) -> RoomConfig:
    email = r.req_str("email")
    if email and not EMAIL.match(email):
        r.problem("email", "must be an e-mail address")
    system = r.get("tms_system_id", _check_system_id, None, required=True)
    return RoomConfig(email=email, tms_system_id=system or 0, name=r.text("name") or email)


def _check_system_id(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer")
    if v <= 0:
        raise ValueError("must be a positive TMS system id")
    return v


def _logging(r: Reader) -> LoggingConfig:
    def level(name: str, default: str) -> str:
        value = r.string(name, default).lower()
        if value not in LEVELS:
            r.problem(name, f"must be one of {', '.join(LEVELS)}")
            return default
        return value

    return LoggingConfig(
        level=level("level", "info"),
        format=r.enum("format", LogFormat, LogFormat.AUTO),
        library_level=level("library_level", "warning"),
        redact_keys=r.str_list("redact_keys"),
    )


def _metrics(r: Reader) -> MetricsConfig:
    return MetricsConfig(
        enabled=r.flag("enabled", default=False),
        host=r.string("host", "127.0.0.1"),
        port=r.integer("port", 9464, minimum=1),
        allow_remote=r.flag("allow_remote", default=False),
        stale_after=r.get("stale_after", as_duration, None, required=False),
    )


def parse(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: Path | None = None
) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    base = source.parent if source else None
    top = Reader(data, "", problems, env, base)

    def section(name: str, build: Callable[[Reader], T], *, required: bool) -> T | None:
        table = top.table_(name)
        if table is None:
            if required and name not in top.table:
                top.problem(name, "section is required")
            return None
        reader = Reader(table, name, problems, env, base)
        value = build(reader)
        reader.finish()
        return value

    exchange = section("exchange", _exchange, required=True)
    tms = section("tms", _tms, required=True)
    cms = section("cms", _cms, required=False)
    ldap = section("ldap", read_ldap, required=False)
    if cms is not None and ldap is not None and ldap.jid_template is None:
        # The licence check compares the call's owner JID with the organiser's; there is no safe guess.
        problems.append(
            "ldap.jid_template: is required when [cms] is configured, e.g. '{username}@example.com'"
        )
    sync = section("sync", _sync, required=False) or SyncConfig()
    logging = section("logging", _logging, required=False) or LoggingConfig()
    metrics = section("metrics", _metrics, required=False) or MetricsConfig()

    rooms: list[RoomConfig] = []
    top.seen.add("rooms")
    raw_rooms = top.table.get("rooms", [])
    if not isinstance(raw_rooms, list):
        top.problem("rooms", "must be an array of tables ([[rooms]])")
        raw_rooms = []
    for i, raw in enumerate(raw_rooms):
        if not isinstance(raw, dict):
            problems.append(f"rooms[{i}]: must be a table")
            continue
        reader = Reader(raw, f"rooms[{i}]", problems, env, base)
        rooms.append(_room(reader))
        reader.finish()
    _check_unique(rooms, problems)
    top.finish()

    if problems or exchange is None or tms is None:
        raise ConfigError(problems, str(source) if source else None)
    return Config(
        exchange=exchange,
        tms=tms,
        cms=cms,
        ldap=ldap,
        sync=sync,
        rooms=tuple(rooms),
        logging=logging,
        metrics=metrics,
        source=source,
    )


def _check_unique(rooms: list[RoomConfig], problems: list[str]) -> None:
    seen_mail: dict[str, int] = {}
    seen_system: dict[int, int] = {}
    for i, room in enumerate(rooms):
        mail = room.email.casefold()
        if mail and mail in seen_mail:
            problems.append(f"rooms[{i}].email: duplicates rooms[{seen_mail[mail]}].email")
        seen_mail.setdefault(mail, i)
        if room.tms_system_id and room.tms_system_id in seen_system:
            problems.append(f"rooms[{i}].tms_system_id: duplicates rooms[{seen_system[room.tms_system_id]}]")
        seen_system.setdefault(room.tms_system_id, i)


def resolve_path(explicit: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """``--config`` → ``$XESYNC_CONFIG`` → ``/etc/xesync/xesync.toml``."""
    env = os.environ if env is None else env
    if explicit is not None:
        return explicit
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR])
    return DEFAULT_PATH


def load(explicit: Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Find, read and validate the configuration file."""
    path = resolve_path(explicit, env)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"cannot read {path}: {exc.strerror} (use --config or ${ENV_VAR})"], str(path)
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return parse(data, env=env, source=path)
