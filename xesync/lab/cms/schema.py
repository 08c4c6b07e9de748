"""Field tables of the CMS objects (cms-api.md §2), and how a form parameter becomes a stored value.

Values are stored as the text CMS would return (``true``/``false``, decimal numbers), so that rendering
is a lookup. A field carries the version it appeared in, so a 2.0 CMS does not know ``ownerAdGuid``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from xesync.lab.cms.knobs import CmsKnobs
from xesync.lab.cms.wire import CALL_ID, CmsFailure, as_bool, as_int, parameter_error

LAYOUTS = (
    "allEqual",
    "speakerOnly",
    "telepresence",
    "stacked",
    "allEqualQuarters",
    "allEqualNinths",
    "allEqualSixteenths",
    "allEqualTwentyFifths",
    "onePlusFive",
    "onePlusSeven",
    "onePlusNine",
    "automatic",
    "onePlusN",
)
MODES = ("disabled", "manual", "automatic")


@dataclass(frozen=True, slots=True)
class Field:
    """One parameter/element of an object.

    ``kind``: ``str``, ``bool``, ``int``, ``callId`` (digits), ``enum`` (``choices``) or ``ref`` (the id
    of an object in ``ref``). ``until`` is the first version without the field.
    """

    name: str
    kind: str = "str"
    ref: str | None = None
    choices: tuple[str, ...] = ()
    since: str = "1.0"
    until: str | None = None
    required: bool = False
    default: str | None = None
    in_list: bool = False
    readable: bool = True
    writable: bool = True

    def exists_in(self, knobs: CmsKnobs) -> bool:
        """Whether the simulated CMS version has this field."""
        return knobs.at_least(self.since) and (self.until is None or not knobs.at_least(self.until))


@dataclass(frozen=True, slots=True)
class Kind:
    """A collection of configuration objects with plain create/read/update/delete."""

    plural: str
    singular: str
    fields: tuple[Field, ...]
    missing: str
    filter_fields: tuple[str, ...] = ()
    usage_filter: bool = False
    tenant_filter: bool = False
    all_in_list: bool = True
    # Families of parameters the documentation names only as a pattern (cms-api.md §2.4
    # "panePlacement*"): one the simulator does not model is refused, never silently dropped.
    documented_prefixes: tuple[str, ...] = ()

    def field(self, name: str) -> Field | None:
        """A field by its (case-sensitive) wire name."""
        return next((f for f in self.fields if f.name == name), None)


def _b(
    name: str,
    default: str | None = None,
    *,
    since: str = "1.0",
    until: str | None = None,
    in_list: bool = False,
    readable: bool = True,
) -> Field:
    return Field(name, "bool", default=default, since=since, until=until, in_list=in_list, readable=readable)


CALL_PROFILE = Kind(
    "callProfiles",
    "callProfile",
    (
        Field("participantLimit", "int"),
        _b("messageBoardEnabled", until="3.0"),
        _b("locked"),
        Field("recordingMode", "enum", choices=MODES),
        Field("streamingMode", "enum", choices=MODES),
        Field("lockMode", since="2.9"),
        Field("sipRecorderUri"),
        Field("passcodeMode", "enum", choices=("required", "timeout")),
        Field("passcodeTimeout", "int"),
        _b("gatewayAudioCallOptimization"),
        Field("lyncConferenceMode", "enum", choices=("gateway", "dualHome")),
    ),
    "callProfileDoesNotExist",
    usage_filter=True,
)

CALL_LEG_PROFILE = Kind(
    "callLegProfiles",
    "callLegProfile",
    (
        _b("needsActivation"),
        Field("defaultLayout", "enum", choices=LAYOUTS),
        _b("changeLayoutAllowed"),
        Field("presentationDisplayMode"),
        _b("presentationContributionAllowed"),
        _b("presentationViewingAllowed"),
        _b("participantLabels"),
        _b("muteOthersAllowed"),
        _b("videoMuteOthersAllowed"),
        _b("muteSelfAllowed"),
        _b("videoMuteSelfAllowed"),
        _b("endCallAllowed"),
        _b("changeJoinAudioMuteOverrideAllowed"),
        Field("qualityMain"),
        Field("qualityPresentation"),
        Field("joinToneParticipantThreshold", "int"),
        Field("rxAudioMute", "bool"),
        Field("txAudioMute", "bool"),
        Field("rxVideoMute", "bool"),
        Field("txVideoMute", "bool"),
        Field("sipMediaEncryption", "enum", choices=("optional", "required", "prohibited")),
        Field("audioPacketSizeMs", "int"),
        Field("maxCallDurationTime", "int"),
    ),
    "callLegProfileDoesNotExist",
    usage_filter=True,
)

USER_PROFILE = Kind(
    "userProfiles",
    "userProfile",
    (
        _b("canCreateCoSpaces", until="3.0"),
        _b("canCreateCalls", until="3.0"),
        _b("canUseExternalDevices", until="3.0"),
        _b("canMakePhoneCalls", until="3.0"),
        _b("userToUserMessagingAllowed", until="3.0"),
        _b("canReceiveCalls", until="3.0"),
        _b("canSendEmailInvite", until="3.0"),
        _b("hasLicense", since="2.0"),
        _b("audioParticipationAllowed", since="2.0"),
        _b("videoParticipationAllowed", since="2.0"),
        _b("presentationParticipationAllowed", since="2.0"),
    ),
    "userProfileDoesNotExist",
    usage_filter=True,
)

TENANT = Kind(
    "tenants",
    "tenant",
    (
        Field("name", in_list=True),
        Field("callBrandingProfile"),
        Field("ivrBrandingProfile"),
        Field("participantLimit", "int"),
        Field("userProfile", "ref", ref="userProfiles"),
        Field("callProfile", "ref", ref="callProfiles"),
        Field("callLegProfile", "ref", ref="callLegProfiles"),
    ),
    "tenantDoesNotExist",
    filter_fields=("name",),
    all_in_list=False,
)

LDAP_SERVER = Kind(
    "ldapServers",
    "ldapServer",
    (
        Field("address", required=True, in_list=True),
        Field("name", since="2.9", in_list=True),
        Field("portNumber", "int", required=True, in_list=True),
        Field("username"),
        Field("password", readable=False),
        _b("secure", in_list=True),
        _b("usePagedResults", since="2.1"),
    ),
    "ldapServerDoesNotExist",
    filter_fields=("address", "name"),
    all_in_list=False,
)

LDAP_MAPPING = Kind(
    "ldapMappings",
    "ldapMapping",
    (
        Field("jidMapping", required=True, in_list=True),
        Field("nameMapping", in_list=True),
        Field("cdrTagMapping"),
        Field("authenticationIdMapping"),
        Field("coSpaceUriMapping"),
        Field("coSpaceSecondaryUriMapping"),
        Field("coSpaceNameMapping"),
        Field("coSpaceCallIdMapping"),
    ),
    "ldapMappingDoesNotExist",
    filter_fields=("jidMapping", "nameMapping"),
    all_in_list=False,
)

LDAP_SOURCE = Kind(
    "ldapSources",
    "ldapSource",
    (
        Field("server", "ref", ref="ldapServers", required=True, in_list=True),
        Field("mapping", "ref", ref="ldapMappings", required=True, in_list=True),
        Field("baseDn", required=True, in_list=True),
        Field("filter", in_list=True),
        Field("tenant", "ref", ref="tenants", in_list=True),
        Field("userProfile", "ref", ref="userProfiles", since="2.0"),
        _b("nonMemberAccess"),
    ),
    "ldapSourceDoesNotExist",
    filter_fields=("baseDn", "filter"),
    tenant_filter=True,
    all_in_list=False,
)

BULK_PARAMETER_SET = Kind(
    "cospaceBulkParameterSets",
    "cospaceBulkParameterSet",
    (
        Field("startIndex", "int", required=True, in_list=True),
        Field("endIndex", "int", required=True, in_list=True),
        Field("coSpaceUriMapping"),
        Field("coSpaceNameMapping"),
        Field("coSpaceCallIdMapping"),
        Field("tenant", "ref", ref="tenants"),
        Field("callProfile", "ref", ref="callProfiles"),
        Field("callLegProfile", "ref", ref="callLegProfiles"),
        Field("callBrandingProfile"),
        _b("nonMemberAccess", default="true"),
    ),
    # The APIB lists no *DoesNotExist code for parameter sets; the bulk sync reports
    # failedNoSuchParameterSet. A GET of an unknown id answers this lab-chosen code with 404.
    "cospaceBulkParameterSetDoesNotExist",
    all_in_list=False,
)

GENERIC_KINDS: dict[str, Kind] = {
    k.plural.lower(): k
    for k in (
        CALL_PROFILE,
        CALL_LEG_PROFILE,
        USER_PROFILE,
        TENANT,
        LDAP_SERVER,
        LDAP_MAPPING,
        LDAP_SOURCE,
        BULK_PARAMETER_SET,
    )
}

# coSpaces (cms-api.md §2.1), in the order GET returns them. ownerId/autoGenerated/numAccessMethods are
# derived and rendered by the coSpace handler.
COSPACE = Kind(
    "coSpaces",
    "coSpace",
    (
        Field("name", in_list=True),
        Field("uri", in_list=True),
        Field("secondaryUri"),
        Field("callId", "callId", in_list=True),
        Field("cdrTag"),
        Field("passcode"),
        Field("defaultLayout", "enum", choices=LAYOUTS),
        Field("tenant", "ref", ref="tenants"),
        Field("callLegProfile", "ref", ref="callLegProfiles"),
        Field("callProfile", "ref", ref="callProfiles"),
        Field("callBrandingProfile"),
        Field("dialInSecurityProfile", since="3.0"),
        _b("requireCallId", readable=False),
        Field("secret"),
        _b("regenerateSecret", readable=False),
        _b("nonMemberAccess", since="2.0", default="true"),
        Field("ownerJid", since="2.0"),
        Field("streamUrl", since="2.1"),
        Field("ownerAdGuid", since="2.1"),
        Field("meetingScheduler", since="2.2"),
        Field("panePlacementHighestImportance", "int", since="2.4"),
        Field("panePlacementSelfPaneMode", "enum", choices=("skip", "self", "blank"), since="2.7"),
    ),
    "coSpaceDoesNotExist",
    filter_fields=("name", "uri", "secondaryUri", "callId"),
    tenant_filter=True,
    documented_prefixes=("panePlacement",),
)

COSPACE_USER = Kind(
    "coSpaceUsers",
    "coSpaceUser",
    (
        Field("userJid", required=True, in_list=True, writable=False),
        Field("callLegProfile", "ref", ref="callLegProfiles"),
        _b("canDestroy", default="false"),
        _b("canAddRemoveMember", default="false"),
        _b("canChangeName", default="false"),
        _b("canChangeUri", default="false"),
        _b("canChangeCallId", default="false"),
        _b("canChangePasscode", default="false"),
        _b("canPostMessage", default="false", until="3.0"),
        _b("canRemoveSelf", default="false"),
        _b("canDeleteAllMessages", default="false"),
        _b("canChangeNonMemberAccessAllowed", default="true", since="2.3"),
    ),
    "coSpaceUserDoesNotExist",
    filter_fields=("userJid",),
)

# Whether an id exists in a collection, for ``ref`` fields.
RefCheck = Callable[[str, str], bool]


def coerce_params(
    kind: Kind,
    form: Mapping[str, str],
    knobs: CmsKnobs,
    exists: RefCheck,
    *,
    creating: bool,
) -> dict[str, str | None]:
    """Turn form parameters into stored text; ``None`` means "unset" (a PUT with ``param=``).

    :raises CmsFailure: parameterError (bad value, missing required, unknown when rejecting unknowns),
        or 400 ``<refCollection>DoesNotExist`` for a reference to nothing.
    """
    out: dict[str, str | None] = {}
    for name, raw in form.items():
        spec = kind.field(name)
        if spec is None and name.startswith(kind.documented_prefixes or ("\0",)):
            # A documented parameter the lab does not model: "unsupported" is the lab's own word.
            raise parameter_error(name, "unsupported")
        if spec is None or not spec.exists_in(knobs) or (not spec.writable and not creating):
            if knobs.unknown_parameters == "reject":
                raise parameter_error(name, "unrecognised")
            continue
        out[name] = coerce(spec, raw, exists)
    if creating:
        for spec in kind.fields:
            if spec.required and spec.exists_in(knobs) and not out.get(spec.name):
                raise parameter_error(spec.name, "required")
    return out


def coerce(spec: Field, raw: str, exists: RefCheck) -> str | None:
    """One parameter's stored text (``None`` when sent empty)."""
    if raw == "":
        return None
    if spec.kind == "bool":
        return "true" if as_bool(spec.name, raw) else "false"
    if spec.kind == "int":
        return str(as_int(spec.name, raw))
    if spec.kind == "callId":
        if not CALL_ID.match(raw.strip()):
            raise parameter_error(spec.name)
        return raw.strip()
    if spec.kind == "enum":
        if raw not in spec.choices:
            raise parameter_error(spec.name)
        return raw
    if spec.kind == "ref":
        ref = spec.ref or ""
        if not exists(ref, raw):
            raise CmsFailure(400, missing_code(ref))
        return raw
    return raw


def missing_code(plural: str) -> str:
    """``callProfiles`` → ``callProfileDoesNotExist``."""
    for kind in (*GENERIC_KINDS.values(), COSPACE, COSPACE_USER):
        if kind.plural == plural:
            return kind.missing
    return f"{plural.removesuffix('s')}DoesNotExist"
