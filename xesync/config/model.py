"""The configuration's types: frozen sections, enums, and :class:`Secret`, whose repr is masked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from xesync.errors import ConfigError

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


class TmsAuthType(StrEnum):
    """How xesync authenticates to the TMS Booking API (IIS Windows authentication or Basic)."""

    BASIC = "basic"
    NTLM = "ntlm"


class PrivateMeetings(StrEnum):
    """What title a private meeting gets in TMS."""

    NEUTRAL = "neutral"  # sync.private_title instead of the subject
    KEEP = "keep"  # the subject as it is


class SeriesBeyondLimits(StrEnum):
    """A series with no end or more than 100 occurrences (product.md L3, L4)."""

    ROLLING = "rolling"  # book the occurrences inside the window (at most 100), extend as time passes
    DECLINE = "decline"  # decline the series with the reason


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


class StreamCatchUp(StrEnum):
    """``exchange.stream_catch_up``: when a stream group's (re)connect wakes its rooms for a catch-up pass."""

    NEW_SUBSCRIPTIONS = "new_subscriptions"  # only after subscribing anew (first connect, or after a failure)
    EVERY_CONNECT = "every_connect"  # for servers that drop a live subscription's events between connections


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
    # spec: ews.md §1.8 whether a server keeps a live subscription's events between two streaming
    # connections is [unconfirmed]; Microsoft's GetStreamingEvents reference says it does.
    stream_catch_up: StreamCatchUp = StreamCatchUp.NEW_SUBSCRIPTIONS
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
    auth_type: TmsAuthType = TmsAuthType.BASIC
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
    # Every Call Bridge's API URL when there are several (cms-api.md §1.5); empty = ``url`` alone.
    urls: tuple[str, ...] = ()
    # Opt-in owner fix-up (cms-api.md §4.3): PUT ownerJid=<organiser> on the meeting's space, cleared after.
    enforce_owner: bool = False
    # How long before a meeting's start its space is first looked for (the verdict follows at start + 1m).
    check_lead: timedelta = timedelta(minutes=5)


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
    # No default: a guessed domain would make every licence check compare the wrong JID.
    jid_template: str | None = None
    guid_attribute: str = "objectGUID"
    group_membership: GroupMembership = GroupMembership.AUTO
    cache_ttl: timedelta = timedelta(minutes=15)
    page_size: int = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    """``[sync]``: how often and how far ahead rooms are reconciled, and the safety valves."""

    interval: timedelta = timedelta(seconds=60)
    # A room whose group's stream has been live since before its last good pass began: the safety net.
    stream_safety_interval: timedelta = timedelta(hours=1)
    full_reconcile_at: str = "03:00"
    lookahead: timedelta = timedelta(days=180)
    state_dir: Path = Path("/var/lib/xesync")
    dry_run: bool = False
    mass_cancel_guard: bool = True
    mass_cancel_max_share: float = 0.5
    unknown_organiser: UnknownOrganiser = UnknownOrganiser.DECLINE
    notify_organiser: bool = True
    max_duration: timedelta = timedelta(hours=24)
    private_meetings: PrivateMeetings = PrivateMeetings.NEUTRAL
    private_title: str = "Private meeting"
    series_beyond_limits: SeriesBeyondLimits = SeriesBeyondLimits.ROLLING
    templates_dir: Path | None = None

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
    """``[metrics]``: an optional loopback HTTP endpoint with counters (``/metrics``) and ``/healthz``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464
    # A non-loopback host is refused unless this is set (xesync/health.py).
    allow_remote: bool = False
    # /healthz turns 503 when a room's last good pass is older; None: derived from sync.interval.
    stale_after: timedelta | None = None


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
