"""Configuration: one TOML file turned into frozen objects, with every problem reported at once.

Lookup order: ``--config`` → ``$XESYNC_CONFIG`` → ``/etc/xesync/xesync.toml``.

Secrets never need to be inline. Every secret key ``<name>`` (e.g. ``password``) may instead be given
as ``<name>_file`` (a path), ``<name>_env`` (an environment variable's name) or ``<name>_credential``
(a systemd credential's name, read from ``$CREDENTIALS_DIRECTORY``). Secrets are wrapped in
:class:`Secret`, whose ``repr`` is masked, and registered with the log redaction processor.

Durations are strings such as ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` (or a number of seconds) and
are converted to :class:`~datetime.timedelta` here, so the rest of the code never parses them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from xesync.errors import ConfigError

DEFAULT_PATH = Path("/etc/xesync/xesync.toml")
ENV_VAR = "XESYNC_CONFIG"

T = TypeVar("T")

_registered_secrets: set[str] = set()
MIN_REDACTED_LENGTH = 4


def registered_secrets() -> frozenset[str]:
    """Every secret value loaded so far; the log redaction processor masks each of them."""
    return frozenset(_registered_secrets)


class Secret:
    """A secret value whose ``repr`` and ``str`` never show it; call :meth:`reveal` at the wire."""

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self._source = source
        # Values this short would mask ordinary words in every log line; keys still mask them.
        if len(value) >= MIN_REDACTED_LENGTH:
            _registered_secrets.add(value)

    def reveal(self) -> str:
        """Return the secret itself, for the one place that sends it."""
        return self._value

    @property
    def source(self) -> str:
        """Where the secret came from (``inline``, ``file:/path``, ``env:NAME``, ``credential:NAME``)."""
        return self._source

    def __repr__(self) -> str:
        return f"Secret(<masked>, source={self._source!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class AuthType(StrEnum):
    """How xesync authenticates to EWS."""

    BASIC = "basic"
    NTLM = "ntlm"
    OAUTH = "oauth"


class BookingMode(StrEnum):
    """TMS ``SaveConferenceWithMode`` mode: refuse conflicts, or save a Defective conference."""

    STRICT = "strict"
    BEST_EFFORT_FORCED = "best_effort_forced"


class GroupMembership(StrEnum):
    """How PMP+ group membership (nested groups included) is resolved in the directory."""

    AUTO = "auto"  # AD's in-chain rule when the server is AD, else memberOf, else a group walk
    IN_CHAIN = "in_chain"  # AD LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941)
    MEMBER_OF = "member_of"  # the memberOf attribute (OpenLDAP memberof overlay, AD)
    WALK = "walk"  # recursive walk of the groups' member attributes


class UnknownOrganiser(StrEnum):
    """What to do when the organiser is not in the directory / not a TMS user (product.md L9)."""

    DECLINE = "decline"
    BOOK_AS_SERVICE = "book_as_service"


class LogFormat(StrEnum):
    """Log rendering: JSON off a terminal, a console renderer on one, unless forced."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """TLS verification for an HTTPS or LDAPS peer."""

    verify: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeConfig:
    """``[exchange]``: the EWS endpoint and the service account that impersonates the rooms."""

    url: str
    username: str
    password: Secret | None = None
    auth_type: AuthType = AuthType.NTLM
    version: str | None = None
    impersonation: bool = True
    max_connections: int = 4
    max_wait: timedelta = timedelta(seconds=60)
    timeout: timedelta = timedelta(seconds=30)
    oauth_client_id: str | None = None
    oauth_tenant_id: str | None = None
    oauth_client_secret: Secret | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class TmsConfig:
    """``[tms]``: the TMS Booking API and the service user with *Book on behalf of*."""

    url: str
    remote_setup_url: str
    username: str
    password: Secret
    client_version: int = 22
    external_source_id: str = "xesync"
    booking_window_days: int = 365
    booking_mode: BookingMode = BookingMode.STRICT
    timeout: timedelta = timedelta(seconds=30)
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class CmsConfig:
    """``[cms]``: the Cisco Meeting Server API user that reads spaces, calls and licensing."""

    url: str
    username: str
    password: Secret
    timeout: timedelta = timedelta(seconds=15)
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class LdapConfig:
    """``[ldap]``: where organisers and their PMP+ entitlement are looked up."""

    url: str
    bind_dn: str
    password: Secret
    base_dn: str
    pmp_groups: tuple[str, ...]
    start_tls: bool = False
    tls: TlsConfig = field(default_factory=TlsConfig)
    timeout: timedelta = timedelta(seconds=10)
    user_filter: str = "(|(objectClass=user)(objectClass=inetOrgPerson))"
    mail_attributes: tuple[str, ...] = ("mail", "proxyAddresses", "userPrincipalName")
    username_attribute: str = "sAMAccountName"
    tms_username_format: str = "{domain}\\{username}"
    tms_domain: str = ""
    jid_template: str = "{username}@example.com"
    guid_attribute: str = "objectGUID"
    group_membership: GroupMembership = GroupMembership.AUTO
    cache_ttl: timedelta = timedelta(minutes=15)
    page_size: int = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    """``[sync]``: how often and how far ahead rooms are reconciled, and the safety valves."""

    interval: timedelta = timedelta(seconds=60)
    full_reconcile_at: str = "03:00"
    lookahead: timedelta = timedelta(days=180)
    state_dir: Path = Path("/var/lib/xesync")
    dry_run: bool = False
    mass_cancel_guard: bool = True
    unknown_organiser: UnknownOrganiser = UnknownOrganiser.DECLINE
    notify_organiser: bool = True

    @property
    def database(self) -> Path:
        """The SQLite state store inside ``state_dir``."""
        return self.state_dir / "xesync.db"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomConfig:
    """One ``[[rooms]]`` entry: a room mailbox and the TMS system it books."""

    email: str
    tms_system_id: int
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """``[logging]``: level, renderer, third-party levels and extra keys to redact."""

    level: str = "info"
    format: LogFormat = LogFormat.AUTO
    library_level: str = "warning"
    redact_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """``[metrics]``: an optional loopback HTTP endpoint with counters."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration."""

    exchange: ExchangeConfig
    tms: TmsConfig
    cms: CmsConfig | None
    ldap: LdapConfig | None
    sync: SyncConfig
    rooms: tuple[RoomConfig, ...]
    logging: LoggingConfig
    metrics: MetricsConfig
    source: Path | None = None

    def room(self, key: str) -> RoomConfig:
        """Find a room by e-mail or name; a miss lists the configured rooms."""
        for room in self.rooms:
            if key.casefold() in (room.email.casefold(), room.name.casefold()):
                return room
        names = ", ".join(r.email for r in self.rooms) or "none"
        raise ConfigError([f"room {key!r} not found; configured rooms: {names}"])


# --------------------------------------------------------------------------------------------------
# Reading


_LEVELS = ("debug", "info", "warning", "error", "critical")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def as_duration(value: object) -> timedelta:
    """Convert ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"250ms"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '90s', '15m' or '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("must be a duration such as '90s', '15m' or '2h'")
    if seconds < 0:
        raise ValueError("must not be negative")
    return timedelta(seconds=seconds)


class _Reader:
    """Walks one table, collecting problems with key paths and flagging unknown keys."""

    def __init__(
        self,
        table: Mapping[str, Any],
        path: str,
        problems: list[str],
        env: Mapping[str, str],
        base: Path | None = None,
    ) -> None:
        self.base = base
        self.table = dict(table)
        self.path = path
        self.problems = problems
        self.env = env
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, text: str) -> None:
        self.problems.append(f"{self.key(name)}: {text}")

    def get(self, name: str, check: Callable[[Any], T], default: T | None, required: bool) -> T | None:
        self.seen.add(name)
        if name not in self.table:
            if required:
                self.problem(name, "is required")
            return default
        try:
            return check(self.table[name])
        except ValueError as exc:
            self.problem(name, str(exc))
            return default

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        return self.get(name, _check_str, default, required)

    def req_str(self, name: str) -> str:
        return self.text(name, required=True) or ""

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        def check(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError("must be an integer")
            if minimum is not None and v < minimum:
                raise ValueError(f"must be at least {minimum}")
            return v

        return self.get(name, check, default, required=False) or default

    def flag(self, name: str, default: bool) -> bool:
        def check(v: Any) -> bool:
            if not isinstance(v, bool):
                raise ValueError("must be true or false")
            return v

        value = self.get(name, check, default, required=False)
        return default if value is None else value

    def duration(self, name: str, default: timedelta) -> timedelta:
        return self.get(name, as_duration, default, required=False) or default

    def enum(self, name: str, kind: type[T], default: T) -> T:
        def check(v: Any) -> T:
            try:
                return kind(v)  # type: ignore[call-arg]
            except ValueError:
                choices = ", ".join(repr(m.value) for m in kind)  # type: ignore[attr-defined]
                raise ValueError(f"must be one of {choices}") from None

        return self.get(name, check, default, required=False) or default

    def str_list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        def check(v: Any) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise ValueError("must be a list of non-empty strings")
            return tuple(v)

        return self.get(name, check, default, required=False) or default

    def path_(self, name: str, default: Path | None = None) -> Path | None:
        value = self.text(name)
        return Path(value) if value else default

    def table_(self, name: str) -> Mapping[str, Any] | None:
        self.seen.add(name)
        value = self.table.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(name, "must be a table")
            return None
        return value

    def secret(self, name: str, *, required: bool) -> Secret | None:
        """Read ``name`` / ``name_file`` / ``name_env`` / ``name_credential``: exactly one of them."""
        variants = {
            name: "inline",
            f"{name}_file": "file",
            f"{name}_env": "env",
            f"{name}_credential": "credential",
        }
        self.seen.update(variants)
        given = [k for k in variants if k in self.table]
        if len(given) > 1:
            self.problem(name, f"give only one of {', '.join(given)}")
            return None
        if not given:
            if required:
                self.problem(name, f"is required (or {name}_file, {name}_env, {name}_credential)")
            return None
        key = given[0]
        raw = self.table[key]
        if not isinstance(raw, str) or not raw:
            self.problem(key, "must be a non-empty string")
            return None
        try:
            return _load_secret(variants[key], raw, self.env, self.base)
        except ValueError as exc:
            self.problem(key, str(exc))
            return None

    def finish(self) -> None:
        for name in sorted(set(self.table) - self.seen):
            self.problem(name, "unknown key")


def _check_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def _load_secret(kind: str, raw: str, env: Mapping[str, str], base: Path | None) -> Secret:
    """One secret from its source kind (inline, file, env, credential).

    A relative ``*_file`` path is relative to the configuration file's directory.
    """
    if kind == "inline":
        return Secret(raw)
    if kind == "file":
        path = Path(raw)
        if not path.is_absolute() and base is not None:
            path = base / path
        return Secret(_read_secret_file(path), f"file:{path}")
    if kind == "env":
        if raw not in env:
            raise ValueError(f"environment variable {raw} is not set")
        return Secret(env[raw], f"env:{raw}")
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError("$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)")
    return Secret(_read_secret_file(Path(directory) / raw), f"credential:{raw}")


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def _tls(r: _Reader) -> TlsConfig:
    return TlsConfig(verify=r.flag("verify_tls", default=True), ca_file=r.path_("ca_file"))


def _url(r: _Reader, name: str, schemes: tuple[str, ...], *, required: bool = True) -> str:
    value = r.text(name, required=required) or ""
    if value and not value.startswith(tuple(f"{s}://" for s in schemes)):
        r.problem(name, f"must start with {' or '.join(s + '://' for s in schemes)}")
    return value


def _exchange(r: _Reader) -> ExchangeConfig:
    auth = r.enum("auth_type", AuthType, AuthType.NTLM)
    cfg = ExchangeConfig(
        url=_url(r, "url", ("https", "http")),
        username=r.req_str("username"),
        password=r.secret("password", required=auth is not AuthType.OAUTH),
        auth_type=auth,
        version=r.text("version"),
        impersonation=r.flag("impersonation", default=True),
        max_connections=r.integer("max_connections", 4, minimum=2),
        max_wait=r.duration("max_wait", timedelta(seconds=60)),
        timeout=r.duration("timeout", timedelta(seconds=30)),
        oauth_client_id=r.text("oauth_client_id", required=auth is AuthType.OAUTH),
        oauth_tenant_id=r.text("oauth_tenant_id", required=auth is AuthType.OAUTH),
        oauth_client_secret=r.secret("oauth_client_secret", required=auth is AuthType.OAUTH),
        tls=_tls(r),
    )
    if cfg.version is not None and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", cfg.version):
        r.problem("version", "must be an Exchange build such as '15.1.2507.6'")
    return cfg


def _tms(r: _Reader) -> TmsConfig:
    url = _url(r, "url", ("https", "http"))
    default_rs = re.sub(r"(?i)bookingservice\.asmx$", "remotesetup/remotesetupservice.asmx", url)
    return TmsConfig(
        url=url,
        remote_setup_url=_url(r, "remote_setup_url", ("https", "http"), required=False) or default_rs,
        username=r.req_str("username"),
        password=r.secret("password", required=True) or Secret(""),
        client_version=r.integer("client_version", 22, minimum=1),
        external_source_id=r.text("external_source_id", "xesync") or "xesync",
        booking_window_days=r.integer("booking_window_days", 365, minimum=1),
        booking_mode=r.enum("booking_mode", BookingMode, BookingMode.STRICT),
        timeout=r.duration("timeout", timedelta(seconds=30)),
        tls=_tls(r),
    )


def _cms(r: _Reader) -> CmsConfig:
    return CmsConfig(
        url=_url(r, "url", ("https", "http")),
        username=r.req_str("username"),
        password=r.secret("password", required=True) or Secret(""),
        timeout=r.duration("timeout", timedelta(seconds=15)),
        tls=_tls(r),
    )


_LDAP_DEFAULTS = LdapConfig(url="", bind_dn="", password=Secret(""), base_dn="", pmp_groups=())


def _ldap(r: _Reader) -> LdapConfig:
    cfg = LdapConfig(
        url=_url(r, "url", ("ldap", "ldaps", "ldif")),
        bind_dn=r.req_str("bind_dn"),
        password=r.secret("password", required=True) or Secret(""),
        base_dn=r.req_str("base_dn"),
        pmp_groups=r.str_list("pmp_groups"),
        start_tls=r.flag("start_tls", default=False),
        tls=_tls(r),
        timeout=r.duration("timeout", timedelta(seconds=10)),
        user_filter=r.text("user_filter", _LDAP_DEFAULTS.user_filter) or _LDAP_DEFAULTS.user_filter,
        mail_attributes=r.str_list("mail_attributes", _LDAP_DEFAULTS.mail_attributes),
        username_attribute=r.text("username_attribute", "sAMAccountName") or "sAMAccountName",
        tms_username_format=r.text("tms_username_format", _LDAP_DEFAULTS.tms_username_format)
        or _LDAP_DEFAULTS.tms_username_format,
        tms_domain=r.text("tms_domain", "") or "",
        jid_template=r.text("jid_template", _LDAP_DEFAULTS.jid_template) or _LDAP_DEFAULTS.jid_template,
        guid_attribute=r.text("guid_attribute", "objectGUID") or "objectGUID",
        group_membership=r.enum("group_membership", GroupMembership, GroupMembership.AUTO),
        cache_ttl=r.duration("cache_ttl", timedelta(minutes=15)),
        page_size=r.integer("page_size", 500, minimum=1),
    )
    if not cfg.pmp_groups:
        r.problem("pmp_groups", "must name at least one PMP+ group DN")
    # ldif:///path/to/file.ldif runs the same resolver on ldap3's mock strategy (demo without slapd).
    if cfg.start_tls and cfg.url.startswith("ldaps://"):
        r.problem("start_tls", "cannot be used with an ldaps:// url")
    for name, template in (
        ("jid_template", cfg.jid_template),
        ("tms_username_format", cfg.tms_username_format),
    ):
        try:
            template.format(username="u", domain="d", mail="m@x")
        except (KeyError, IndexError, ValueError):
            r.problem(name, "may only use {username}, {domain} and {mail}")
    return cfg


def _sync(r: _Reader) -> SyncConfig:
    at = r.text("full_reconcile_at", "03:00") or "03:00"
    if not _HHMM.match(at):
        r.problem("full_reconcile_at", "must be a time of day such as '03:00'")
    return SyncConfig(
        interval=r.duration("interval", timedelta(seconds=60)),
        full_reconcile_at=at,
        lookahead=r.duration("lookahead", timedelta(days=180)),
        state_dir=r.path_("state_dir", Path("/var/lib/xesync")) or Path("/var/lib/xesync"),
        dry_run=r.flag("dry_run", default=False),
        mass_cancel_guard=r.flag("mass_cancel_guard", default=True),
        unknown_organiser=r.enum("unknown_organiser", UnknownOrganiser, UnknownOrganiser.DECLINE),
        notify_organiser=r.flag("notify_organiser", default=True),
    )


def _room(r: _Reader) -> RoomConfig:
    email = r.req_str("email")
    if email and not _EMAIL.match(email):
        r.problem("email", "must be an e-mail address")
    system = r.get("tms_system_id", _check_system_id, None, required=True)
    return RoomConfig(email=email, tms_system_id=system or 0, name=r.text("name") or email)


def _check_system_id(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer")
    if v <= 0:
        raise ValueError("must be a positive TMS system id")
    return v


def _logging(r: _Reader) -> LoggingConfig:
    def level(name: str, default: str) -> str:
        value = (r.text(name, default) or default).lower()
        if value not in _LEVELS:
            r.problem(name, f"must be one of {', '.join(_LEVELS)}")
            return default
        return value

    return LoggingConfig(
        level=level("level", "info"),
        format=r.enum("format", LogFormat, LogFormat.AUTO),
        library_level=level("library_level", "warning"),
        redact_keys=r.str_list("redact_keys"),
    )


def _metrics(r: _Reader) -> MetricsConfig:
    return MetricsConfig(
        enabled=r.flag("enabled", default=False),
        host=r.text("host", "127.0.0.1") or "127.0.0.1",
        port=r.integer("port", 9464, minimum=1),
    )


def parse(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: Path | None = None
) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    base = source.parent if source else None
    top = _Reader(data, "", problems, env, base)

    def section(name: str, build: Callable[[_Reader], T], *, required: bool) -> T | None:
        table = top.table_(name)
        if table is None:
            if required and name not in top.table:
                top.problem(name, "section is required")
            return None
        reader = _Reader(table, name, problems, env, base)
        value = build(reader)
        reader.finish()
        return value

    exchange = section("exchange", _exchange, required=True)
    tms = section("tms", _tms, required=True)
    cms = section("cms", _cms, required=False)
    ldap = section("ldap", _ldap, required=False)
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
        reader = _Reader(raw, f"rooms[{i}]", problems, env, base)
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


# --------------------------------------------------------------------------------------------------
# Showing


def effective(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked, for ``xesync check-config``."""
    return {f.name: _plain(getattr(config, f.name)) for f in fields(config)}


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return f"<masked: {value.source.split(':', 1)[0]}>"
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, SyncConfig):
            out["database"] = str(value.database)
        return out
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return _format_duration(value)
    if isinstance(value, Path | StrEnum):
        return str(value)
    return value


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
