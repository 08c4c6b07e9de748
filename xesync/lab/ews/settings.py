"""The EWS simulator's knobs (the fixture's ``[ews]`` table) and each room's calendar processing.

Where ``ews.md`` marks real Exchange behaviour [unconfirmed], the knob names the section and both
plausible behaviours are available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from xesync.lab.fixture import FixtureError, LabFixture, LabRoom
from xesync.lab.winauth import DEFAULT_SCHEMES, AuthSchemeError, parse_schemes

PROCESSING = frozenset({"AutoAccept", "AutoUpdate", "None"})

# ews.md §2.10: Exchange 2016 answers V2017_07_11; Exchange 2019's string is [unconfirmed], probably
# the same; Exchange Online answers V2018_01_08.
DEFAULT_VERSION_STRINGS = {(15, 1): "V2017_07_11", (15, 2): "V2017_07_11", (15, 20): "V2018_01_08"}


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomPolicy:
    """``Set-CalendarProcessing`` for one room (``ews.md`` §3.1)."""

    automate_processing: str = "AutoAccept"
    allow_conflicts: bool = False
    booking_window_days: int = 180
    enforce_scheduling_horizon: bool = True
    maximum_duration_minutes: int = 1440
    allow_recurring_meetings: bool = True
    # A series with conflicting instances is accepted, those instances declined, while the conflicts
    # stay within both limits (percent of the instances in the booking window, and a count).
    conflict_percentage_allowed: int = 0
    maximum_conflict_instances: int = 0
    delete_subject: bool = False
    add_organizer_to_subject: bool = False
    delete_comments: bool = False
    remove_private_property: bool = False
    remove_canceled_meetings: bool = False
    # spec: ews.md §3.6/§6 the "Canceled: " prefix on room copies is [unconfirmed]; "" turns it off.
    canceled_subject_prefix: str = "Canceled: "


# ews.md §3.1: Exchange's own defaults munge the room copy; a TMSXE-style room keeps the meeting as sent.
PRESETS: dict[str, dict[str, Any]] = {
    "exchange_defaults": {
        "delete_subject": True,
        "add_organizer_to_subject": True,
        "delete_comments": True,
        "remove_private_property": True,
    },
    "tmsxe": {
        "delete_subject": False,
        "add_organizer_to_subject": False,
        "delete_comments": False,
        "remove_private_property": False,
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthApp:
    """A client-credentials app the local token endpoint knows (``ews.md`` §1.1)."""

    client_id: str
    client_secret: str
    tenant_id: str
    impersonates: str = "all"  # all | rooms | users
    expires_in: int = 3599


@dataclass(frozen=True, slots=True, kw_only=True)
class EwsSettings:
    """Everything the ``[ews]`` table can switch."""

    build: tuple[int, int, int, int] = (15, 1, 2507, 6)
    version_string: str = "V2017_07_11"
    service_username: str = "svc-xesync@lab.example"
    service_password: str = "lab-ews-secret"
    impersonates: str = "rooms"  # rooms | users | all | none
    realm: str = "lab.example"
    # spec: ews.md §2.8.8 the keep-alive interval is [unconfirmed]; real seconds between heartbeats.
    streaming_keepalive_s: float = 30.0
    # How many real seconds one minute of ConnectionTimeout lasts; the stream also closes when the
    # lab clock passes the timeout, so a test can end it by advancing the clock.
    streaming_minute_s: float = 60.0
    # spec: ews.md §1.8 whether a live streaming subscription keeps its events between two
    # connections is [unconfirmed]. Microsoft's GetStreamingEvents reference says the response
    # "returns an array of items and events that have occurred in a mailbox since the last
    # notification", so by default the lab keeps them; false = a new connection delivers only what
    # happens after it opened (the lab's behaviour before this knob).
    streaming_keeps_events: bool = True
    # spec: ews.md §2.8.9 a stale changekey on Accept/Decline answers ErrorIrresolvableConflict or
    # ErrorInvalidChangeKey: which one is [unconfirmed].
    stale_changekey_error: str = "ErrorIrresolvableConflict"
    # spec: ews.md §2.8.7 the code for an unknown subscription is [unconfirmed].
    unknown_subscription_error: str = "ErrorSubscriptionNotFound"
    # spec: ews.md §3.2 the RBA's timing is [unconfirmed]: 0 = decides within the organiser's send;
    # n > 0 = the room copy stays tentative until the lab clock is n seconds later.
    rba_delay_s: int = 0
    oauth: OAuthApp | None = None
    room_defaults: Mapping[str, Any] = field(default_factory=dict)
    # IIS providers on the EWS virtual directory (winauth.py). Exchange's own default is Windows
    # authentication (Negotiate, NTLM) with Basic off; the lab keeps Basic on so Basic clients work.
    auth: tuple[str, ...] = DEFAULT_SCHEMES
    # IIS keeps an NTLM-authenticated connection authenticated (authPersistSingleRequest = false).
    auth_persist: bool = True


def _build(value: Any) -> tuple[int, int, int, int]:
    parts = str(value).split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):  # noqa: PLR2004
        raise FixtureError(f"ews.build must look like 15.1.2507.6, not {value!r}")
    major, minor, build, rev = (int(p) for p in parts)
    return major, minor, build, rev


def parse_settings(fixture: LabFixture) -> EwsSettings:
    """Read the ``[ews]`` table."""
    table = fixture.ews
    build = _build(table.get("build", "15.1.2507.6"))
    version = str(table.get("version_string", DEFAULT_VERSION_STRINGS.get(build[:2], "V2017_07_11")))
    if not version.startswith("V"):
        # ews.md §4 trap 13: a Version not starting with V is adopted as the client's API version.
        raise FixtureError("ews.version_string must start with 'V' (ews.md §4, trap 13)")
    account = table.get("service_account", {})
    oauth = None
    if "oauth" in table:
        o = table["oauth"]
        oauth = OAuthApp(
            client_id=str(o.get("client_id", "lab-client")),
            client_secret=str(o.get("client_secret", "lab-client-secret")),
            tenant_id=str(o.get("tenant_id", "lab-tenant")),
            impersonates=str(o.get("impersonates", "all")),
            expires_in=int(o.get("expires_in", 3599)),
        )
    stale = str(table.get("stale_changekey_error", "ErrorIrresolvableConflict"))
    if stale not in {"ErrorIrresolvableConflict", "ErrorInvalidChangeKey"}:
        raise FixtureError("ews.stale_changekey_error: ErrorIrresolvableConflict or ErrorInvalidChangeKey")
    try:
        auth = parse_schemes(table.get("auth", list(DEFAULT_SCHEMES)), "ews")
    except AuthSchemeError as exc:
        raise FixtureError(str(exc)) from None
    return EwsSettings(
        auth=auth,
        auth_persist=bool(table.get("auth_persist", True)),
        build=build,
        version_string=version,
        service_username=str(account.get("username", "svc-xesync@lab.example")),
        service_password=str(account.get("password", "lab-ews-secret")),
        impersonates=str(account.get("impersonates", "rooms")),
        realm=fixture.domain,
        streaming_keepalive_s=float(table.get("streaming_keepalive_s", 30.0)),
        streaming_minute_s=float(table.get("streaming_minute_s", 60.0)),
        streaming_keeps_events=bool(table.get("streaming_keeps_events", True)),
        stale_changekey_error=stale,
        unknown_subscription_error=str(table.get("unknown_subscription_error", "ErrorSubscriptionNotFound")),
        rba_delay_s=int(table.get("rba_delay_s", 0)),
        oauth=oauth,
        room_defaults=dict(table.get("room_defaults", {})),
    )


def room_policy(room: LabRoom, defaults: Mapping[str, Any]) -> RoomPolicy:
    """A room's policy: the preset, then ``[ews.room_defaults]``, then the room's own keys."""
    merged: dict[str, Any] = {**defaults, **room.settings}
    preset = str(merged.pop("processing", "tmsxe"))
    if preset not in PRESETS:
        raise FixtureError(f"room {room.email}: processing must be one of {sorted(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[preset])
    values.update(merged)
    known = set(RoomPolicy.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise FixtureError(f"room {room.email}: unknown calendar-processing keys {sorted(unknown)}")
    policy = replace(RoomPolicy(), **values)
    if policy.automate_processing not in PROCESSING:
        raise FixtureError(f"room {room.email}: automate_processing must be one of {sorted(PROCESSING)}")
    return policy
