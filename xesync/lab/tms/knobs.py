"""The TMS simulator's knobs: the fixture's ``[tms]`` table, parsed and checked.

Each knob switches a behaviour ``tms-booking-api.md`` or ``cms-api.md`` marks [unconfirmed], or is a
lab convenience. The control API changes them at run time (``POST /lab/tms/knobs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from xesync.lab.fixture import FixtureError
from xesync.lab.knobs import knobs_as_dict, with_changes
from xesync.lab.tms.timezones import SERVER_ZONES
from xesync.lab.winauth import SCHEMES, AuthSchemeError, parse_schemes

OWNER_TO_CMS = ("none", "ownerJid", "ownerAdGuid")
OWNER_FIELDS = ("username", "email", "id")
DEFAULT_SESSION_OPERATIONS = ("Save", "Delete", "End", "GetTransactionsSince", "GetRecordingAliases")

# spec: tms-booking-api.md §10.2: the codes for these are [unconfirmed] (one page of the table is
# missing from every copy); the defaults sit in that gap and are only the simulator's guesses.
DEFAULT_CODES: dict[str, int] = {
    "too_many_occurrences": -2147218263,
    "yearly_recurrence": -2147218261,
    "stale_version": -2147218260,
    "unknown_transaction": -2147218258,
    "invalid_request": -2147218257,
    # spec: tms-booking-api.md §8.5 says a TimeZoneRule violation causes a fault but gives no code.
    "time_zone_rule": -2147218259,
}


@dataclass(slots=True, kw_only=True)
class TmsKnobs:
    """Every knob of the TMS simulator, with its default."""

    username: str = "LAB\\svc-tms"
    password: str = "lab-tms-secret"
    # IIS providers in front of the Booking API (winauth.py). TMS installs with Windows authentication;
    # whether Basic is on is a site choice, so the lab keeps it on (["negotiate", "ntlm"] = off).
    auth: list[str] = field(default_factory=lambda: list(SCHEMES))
    # IIS keeps an NTLM-authenticated connection authenticated (authPersistSingleRequest = false).
    auth_persist: bool = True
    # spec: cms-api.md §4.2: whether and how TMS passes the owner to CMS is [unconfirmed].
    owner_to_cms: str = "ownerJid"
    # spec: cms-api.md §4.1 item 8: the traced end-of-meeting reset leaves ownerJid in place.
    reset_clears_owner: bool = False
    # spec: cms-api.md §4.2: how a TMS user maps to a CMS JID is [unconfirmed]; {username} is the
    # name without the NetBIOS domain, {email} the e-mail, {domain} the fixture's mail domain.
    owner_jid_template: str = "{username}@{domain}"
    # spec: cms-api.md §4.1: the traced PUT at start sets no meetingScheduler; true adds the owner's name.
    meeting_scheduler: bool = False
    # spec: cms-api.md §4.1: the traced bulk mapping leaves uri/callId empty and the start PUT does not
    # set them; true also PUTs the conference's numeric id as uri and callId at start.
    set_uri_at_start: bool = False
    cms_pool_first: int = 1
    cms_pool_size: int = 10
    # tms-booking-api.md §7.4: TMS creates an unknown owner in the default group when the service user
    # may book on behalf of others; either false gives ERR_USER_NOT_FOUND instead.
    auto_create_users: bool = True
    book_on_behalf: bool = True
    # spec: tms-booking-api.md §7.4: which owner field wins is [unconfirmed]; this is the lookup order.
    owner_lookup: list[str] = field(default_factory=lambda: list(OWNER_FIELDS))
    booking_window_days: int = 365
    # spec: tms-booking-api.md §3.4: 47 + 17 minutes (14.6+); the 14.4 guide says 45 (editions disagree).
    session_lifetime_s: int = 47 * 60
    session_grace_s: int = 17 * 60
    # CAP: TMS suggested the same id to faulting requests for a while; a new one after this long.
    session_reuse_s: int = 10 * 60
    # spec: tms-booking-api.md §3.4: which operations need a session at API 22 is [unconfirmed];
    # an operation needs one when its name starts with one of these.
    session_operations: list[str] = field(default_factory=lambda: list(DEFAULT_SESSION_OPERATIONS))
    api_version: int = 22
    default_duration_min: int = 60
    transactions_page_size: int = 50
    # spec: tms-booking-api.md §7.3: whether a save without Version is accepted is [unconfirmed].
    version_required: bool = False
    dial_domain: str = ""
    # The TMS server's Windows time zone (timezones.SERVER_ZONES). A conference saved without
    # ConferenceTimeZoneRules is expanded in it and GetConference* return its whole rule (observed on
    # TMS 15). spec: tms-booking-api.md §4 documents the server zone for API <= 10; that TMS uses it
    # for a rules-less save at API >= 11 too is [unconfirmed].
    server_time_zone: str = "W. Europe Standard Time"
    # The lowest ClientVersionIn that gets Conference/TransactionId, a TMS 15 element (§8.1 item 51);
    # API 14 is TMS 14.5. spec: the version that introduced it is [unconfirmed].
    transaction_id_api: int = 15
    # GetConferencesForSystems without SystemIds or without StartTime/EndTime: "fault" answers
    # invalid_request; "asmx_defaults" lets ASMX default them (no systems, DateTime.MinValue), i.e. an
    # empty list. spec: tms-booking-api.md §6.2: which one TMS does is [unconfirmed].
    for_systems_without_args: str = "fault"
    numeric_id_start: int = 990001
    conference_id_start: int = 1001
    codes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CODES))
    seed: int = 0

    def code(self, name: str) -> int:
        """A configurable error code."""
        return int(self.codes.get(name, DEFAULT_CODES[name]))

    def needs_session(self, operation: str) -> bool:
        """Whether ``operation`` needs a valid ``ClientSession``."""
        return any(operation.startswith(prefix) for prefix in self.session_operations)

    def as_dict(self) -> dict[str, Any]:
        """The knobs as the control API shows them (the password masked)."""
        return knobs_as_dict(self)

    def updated(self, changes: Mapping[str, Any]) -> TmsKnobs:
        """A checked copy with ``changes`` applied.

        :raises ValueError: naming the bad knob.
        """
        merged = with_changes(self, changes, "TMS")
        if "codes" in changes:
            merged.codes = {**DEFAULT_CODES, **dict(changes["codes"])}
        merged.check()
        return merged

    def check(self) -> None:
        """Raise :class:`ValueError` naming the first bad knob."""
        defaults = TmsKnobs()
        for f in fields(self):
            value, default = getattr(self, f.name), getattr(defaults, f.name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, str):
                ok = isinstance(value, str)
            elif isinstance(default, list):
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            else:
                ok = isinstance(value, dict) and all(
                    k in DEFAULT_CODES and isinstance(v, int) and not isinstance(v, bool)
                    for k, v in value.items()
                )
            if not ok:
                raise ValueError(f"{f.name}: must be like {default!r}")
        try:
            self.auth = list(parse_schemes(self.auth, "tms"))
        except AuthSchemeError as exc:
            raise ValueError(str(exc).removeprefix("tms.")) from None
        if self.server_time_zone not in SERVER_ZONES:
            raise ValueError(f"server_time_zone: must be one of {sorted(SERVER_ZONES)}")
        if self.for_systems_without_args not in ("fault", "asmx_defaults"):
            raise ValueError('for_systems_without_args: must be "fault" or "asmx_defaults"')
        if self.owner_to_cms not in OWNER_TO_CMS:
            raise ValueError(f"owner_to_cms: must be one of {list(OWNER_TO_CMS)}")
        if not self.owner_lookup or set(self.owner_lookup) - set(OWNER_FIELDS):
            raise ValueError(f"owner_lookup: must list some of {list(OWNER_FIELDS)}")
        for name in (
            "cms_pool_size",
            "transactions_page_size",
            "booking_window_days",
            "default_duration_min",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")


def parse_knobs(table: Mapping[str, Any], where: str = "tms") -> TmsKnobs:
    """The knobs of a fixture's ``[tms]`` table (``port`` belongs to the runtime).

    :raises FixtureError: naming the bad key.
    """
    known = {f.name for f in fields(TmsKnobs)}
    changes = {k: v for k, v in table.items() if k in known}
    unknown = sorted(set(table) - known - {"port"})
    if unknown:
        raise FixtureError(f"{where}: unknown key(s) {unknown}")
    try:
        return TmsKnobs().updated(changes)
    except ValueError as exc:
        raise FixtureError(f"{where}.{exc}") from None
