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

from xesync.config.model import (
    AuthType,
    BookingMode,
    CmsConfig,
    Config,
    ExchangeConfig,
    GroupMembership,
    LdapConfig,
    LogFormat,
    LoggingConfig,
    MetricsConfig,
    RoomConfig,
    Secret,
    StreamCatchUp,
    SyncConfig,
    TlsConfig,
    TmsConfig,
    UnknownOrganiser,
    registered_secrets,
)
from xesync.config.reader import as_duration
from xesync.config.sections import DEFAULT_PATH, ENV_VAR, load, parse, resolve_path
from xesync.config.show import NOT_YET_IN_EFFECT, effective, not_yet_in_effect

__all__ = [
    "DEFAULT_PATH",
    "ENV_VAR",
    "NOT_YET_IN_EFFECT",
    "AuthType",
    "BookingMode",
    "CmsConfig",
    "Config",
    "ExchangeConfig",
    "GroupMembership",
    "LdapConfig",
    "LogFormat",
    "LoggingConfig",
    "MetricsConfig",
    "RoomConfig",
    "Secret",
    "StreamCatchUp",
    "SyncConfig",
    "TlsConfig",
    "TmsConfig",
    "UnknownOrganiser",
    "as_duration",
    "effective",
    "load",
    "not_yet_in_effect",
    "parse",
    "registered_secrets",
    "resolve_path",
]
