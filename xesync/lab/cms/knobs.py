"""The CMS simulator's knobs: the fixture's ``[cms]`` table, parsed and checked.

Each knob switches a behaviour that ``cms-api.md`` marks [unconfirmed] (§5 "Version knobs", §6 "Open
items"), or a lab convenience. Defaults are the behaviour the spec calls most likely. The control API can
change them at run time (``PUT /lab/cms/knobs``), so one lab can test both behaviours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from xesync.lab.fixture import FixtureError
from xesync.lab.knobs import knobs_as_dict, with_changes

VERSIONS = ("2.0", "2.2", "2.6", "3.0")

DEFAULT_LDAP_SEED: dict[str, str] = {
    "jid_mapping": "$sAMAccountName$@lab.example",
    "name_mapping": "$cn$",
    "authentication_id_mapping": "$sAMAccountName$",
    "cdr_tag_mapping": "",
    "space_name_mapping": "$cn$'s Meeting Space",
    "space_uri_mapping": "$sAMAccountName$.space",
    "space_secondary_uri_mapping": "",
    "space_call_id_mapping": "",
    # AD's in-chain rule, so that nested PMP groups count; see `ldap_in_chain`.
    "pmp_filter": "(&(objectClass=inetOrgPerson)(memberOf:1.2.840.113556.1.4.1941:={pmp_group_dn}))",
    "other_filter": "(&(objectClass=inetOrgPerson)(!(memberOf:1.2.840.113556.1.4.1941:={pmp_group_dn})))",
}


@dataclass(slots=True, kw_only=True)
class CmsKnobs:
    """Every knob of the CMS simulator, with its default."""

    username: str = "api"
    password: str = "lab-cms-secret"
    # spec: cms-api.md §5 `cms_version`: which fields and endpoints exist.
    cms_version: str = "2.6"
    # spec: cms-api.md §1.3 and §6.7: per-collection caps are undocumented; default 10 everywhere.
    page_cap: int = 10
    page_caps: dict[str, int] = field(default_factory=dict)
    # spec: cms-api.md §1.4: the docs spell it unrecognizedObject, production code checks the British form.
    unrecognised_object: str = "unrecognisedObject"
    # spec: cms-api.md §3.1 and §6.3: whether CMS re-evaluates the licence mid-call is [unconfirmed].
    reevaluate_on_owner_change: bool = False
    member_join_upgrades: bool = False
    # spec: cms-api.md §2.9 and §6.1: the attribute naming the user in activePersonalLicenses: id | jid.
    active_licenses_user_attr: str = "id"
    # spec: cms-api.md §2.1 and §6.8: whether GET /coSpaces items carry ownerJid is [unconfirmed].
    list_includes_owner: bool = False
    # spec: cms-api.md §1.4 and §6.2: status and element for an ownerJid naming no user; "accept"
    # stores the JID unresolved instead.
    unknown_owner: str = "reject"
    unknown_owner_status: int = 400
    unknown_owner_element: str = "userDoesNotExist"
    # spec: cms-api.md §3.2 and §6.8: whether GET /users/<id> shows an inherited profile.
    user_shows_inherited_profile: bool = False
    # spec: cms-api.md §2.1 and §6.8: whether GET /coSpaces/<id> returns passcode.
    show_passcode: bool = True
    # The spec is silent on unknown form parameters: ignore them (lenient) or answer parameterError.
    unknown_parameters: str = "ignore"
    # OpenLDAP has no in-chain matching rule (AD's 1.2.840.113556.1.4.1941), and its memberof overlay
    # records direct membership only. "emulate" expands the nested group before searching, as AD
    # would; "passthrough" sends the filter as written (slapd then matches nobody on that term).
    ldap_in_chain: str = "emulate"
    host_id: str = "6e5d4c3b-2a19-4f08-9e7d-6c5b4a392817"
    personal_license_limit: int = 100
    shared_license_limit: int = 100
    # How many GETs of a new cospaceBulkSync still say "pending" before "complete" (clients must poll).
    bulk_sync_pending_polls: int = 1
    max_bulk_range: int = 1000
    sync_on_start: bool = True
    # spec: cms-api.md §1.4: a PUT on a missing accessMethod gave 400 + accessMethodDoesNotExist
    # [third-party]; GET/DELETE of one are [unconfirmed] (404 is the documented rule for unknown ids).
    missing_access_method_status: int = 400
    # The SIP domain of a space's URI in meetingEntryDetail; "" = "video." + the fixture's domain.
    # spec: cms-api.md §2.1: the shape of meetingEntryDetail beyond uri and callId is [unconfirmed].
    uri_domain: str = ""
    ldap: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LDAP_SEED))

    def at_least(self, version: str) -> bool:
        """Whether the simulated CMS is ``version`` or later."""
        return _vkey(self.cms_version) >= _vkey(version)

    def cap(self, collection: str) -> int:
        """The server's page cap for a collection (canonical camelCase name)."""
        for name, cap in self.page_caps.items():
            if name.lower() == collection.lower():
                return cap
        return self.page_cap

    def as_dict(self) -> dict[str, Any]:
        """The knobs as the control API shows them (the API password is masked)."""
        return knobs_as_dict(self)

    def updated(self, changes: Mapping[str, Any]) -> CmsKnobs:
        """A copy with ``changes`` applied and checked.

        :raises ValueError: naming the bad knob.
        """
        merged = with_changes(self, changes, "CMS")
        merged.check()
        return merged

    def check(self) -> None:
        """Raise :class:`ValueError` naming the first bad knob."""
        for f in fields(self):
            value = getattr(self, f.name)
            default = getattr(CmsKnobs(), f.name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name}: must be true or false")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{f.name}: must be a non-negative integer")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ValueError(f"{f.name}: must be a string")
        _choice("cms_version", self.cms_version, VERSIONS)
        _choice("unrecognised_object", self.unrecognised_object, ("unrecognisedObject", "unrecognizedObject"))
        _choice("active_licenses_user_attr", self.active_licenses_user_attr, ("id", "jid"))
        _choice("unknown_owner", self.unknown_owner, ("reject", "accept"))
        _choice("unknown_parameters", self.unknown_parameters, ("ignore", "reject"))
        _choice("ldap_in_chain", self.ldap_in_chain, ("emulate", "passthrough"))
        if self.page_cap < 1:
            raise ValueError("page_cap: must be at least 1")
        if not isinstance(self.page_caps, dict) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.page_caps.values()
        ):
            raise ValueError("page_caps: must map collection names to integers >= 1")
        if not 400 <= self.unknown_owner_status <= 599:  # noqa: PLR2004
            raise ValueError("unknown_owner_status: must be an HTTP error status")
        if not isinstance(self.ldap, dict) or set(self.ldap) - set(DEFAULT_LDAP_SEED):
            raise ValueError(f"ldap: keys must be among {sorted(DEFAULT_LDAP_SEED)}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: must be one of {list(allowed)}")


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def parse_knobs(table: Mapping[str, Any], where: str = "cms") -> CmsKnobs:
    """Build :class:`CmsKnobs` from the fixture's ``[cms]`` table (``port`` belongs to the runtime).

    :raises FixtureError: naming the bad key.
    """
    values = {k: v for k, v in table.items() if k != "port"}
    if "page_caps" in values:
        values["page_caps"] = dict(values["page_caps"])
    if "ldap" in values:
        values["ldap"] = {**DEFAULT_LDAP_SEED, **dict(values["ldap"])}
    try:
        return CmsKnobs().updated(values)
    except (TypeError, ValueError) as exc:
        raise FixtureError(f"{where}: {exc}") from None
