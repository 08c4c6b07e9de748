"""What calls, call legs and participants look like on the wire (cms-api.md §2.4, §2.5).

The :class:`Kind` of each (the parameters POST and PUT accept), what a call shows for a setting never
written, and the documents GET answers with, in a list or alone. The lifecycle and the handlers that
serve these documents are in :mod:`xesync.lab.cms.calls`.
"""

from __future__ import annotations

from xesync.lab.cms.schema import CALL_LEG_PROFILE, LAYOUTS, Field, Kind
from xesync.lab.cms.state import Call, CallLeg, CmsState, Participant
from xesync.lab.cms.wire import Fields, Value

CALL = Kind(
    "calls",
    "call",
    (
        Field("coSpace", "ref", ref="coSpaces", writable=False),
        Field("name", writable=False),
        Field("locked", "bool"),
        Field("recording", "bool"),
        Field("streaming", "bool"),
        Field("allowAllMuteSelf", "bool"),
        Field("allowAllPresentationContribution", "bool"),
        Field("joinAudioMuteOverride", "bool"),
        Field("messageText"),
        Field("messagePosition", "enum", choices=("top", "middle", "bottom")),
        Field("messageDuration"),
        Field("activeWhenEmpty", "bool", since="2.2"),
        Field("panePlacementHighestImportance", "int", since="2.4"),
        Field("panePlacementSelfPaneMode", "enum", choices=("skip", "self", "blank"), since="2.7"),
    ),
    "callDoesNotExist",
    documented_prefixes=("panePlacement",),
)
# What a call shows for a setting never written (cms-api.md §2.4 lists the fields; the values of an
# untouched call are [unconfirmed]: off, no message, middle position, no duration).
CALL_DEFAULTS = {
    "recording": "false",
    "streaming": "false",
    "allowAllMuteSelf": "false",
    "allowAllPresentationContribution": "false",
    "joinAudioMuteOverride": "false",
    "messageText": "",
    "messagePosition": "middle",
    "messageDuration": "0",
}

LEG = Kind(
    "callLegs",
    "callLeg",
    (
        Field("remoteParty", required=True, writable=False),
        Field("name"),
        Field("bandwidth", "int"),
        Field("confirmation", "bool"),
        Field("ownerId"),
        Field("chosenLayout", "enum", choices=LAYOUTS),
        Field("callLegProfile", "ref", ref="callLegProfiles"),
        Field("dtmfSequence"),
        *CALL_LEG_PROFILE.fields,
    ),
    "callLegDoesNotExist",
)
LEG_TOP_LEVEL = {"remoteParty", "name", "ownerId", "callLegProfile"}


def num_legs(state: CmsState, call: Call) -> int:
    """How many legs the call's participants have (``numCallLegs``)."""
    return sum(len(state.participants[p].legs) for p in call.participants if p in state.participants)


def owner_name(state: CmsState, call: Call) -> str | None:
    """``ownerName``: the space's meetingScheduler, else the owner's name, else the owner's JID."""
    space = state.spaces.get(call.cospace) if call.cospace else None
    if space is None:
        return None
    if space.values.get("meetingScheduler"):
        return space.values["meetingScheduler"]
    owner = state.owner_of(space)
    if owner is not None:
        return owner.name or owner.jid
    return space.values.get("ownerJid")


def call_fields(state: CmsState, call: Call, *, in_list: bool) -> Fields:
    """A call as GET shows it."""
    if in_list:
        return [
            ("name", call.name),
            ("coSpace", call.cospace),
            ("callCorrelator", call.correlator),
            ("tenant", call.tenant),
        ]
    knobs = state.knobs
    flags = {
        s.name: call.values.get(s.name, CALL_DEFAULTS.get(s.name))
        for s in CALL.fields[2:]
        if s.exists_in(knobs)
    }
    if knobs.at_least("2.2"):
        flags["activeWhenEmpty"] = call.values.get("activeWhenEmpty", "true")
    return [
        ("coSpace", call.cospace),
        ("callCorrelator", call.correlator),
        ("callType", ("coSpace" if call.cospace else "adHoc") if knobs.at_least("2.3") else None),
        ("tenant", call.tenant),
        ("durationSeconds", int((state.now() - call.started).total_seconds())),
        ("name", call.name),
        ("numCallLegs", num_legs(state, call)),
        ("maxCallLegs", call.max_legs),
        ("numParticipantsLocal", len(call.participants)),
        ("numParticipantsRemote", 0),
        ("numDistributedInstances", 0),
        ("locked", flags.pop("locked", None) or "false"),
        *flags.items(),
        ("endpointRecording", False),
        ("lyncAudienceMute", False),
        ("ownerName", owner_name(state, call) if knobs.at_least("2.2") else None),
    ]


def leg_fields(state: CmsState, leg: CallLeg, *, in_list: bool) -> Fields:
    """A call leg; per-leg profile overrides appear under ``configuration``."""
    call = state.calls.get(leg.call)
    head: list[tuple[str, Value]] = [
        ("name", leg.name),  # always present, empty for a leg without a name
        ("remoteParty", leg.remote_party),
        ("originalRemoteParty", leg.remote_party),
        ("call", leg.call),
        ("tenant", call.tenant if call else None),
    ]
    if in_list:
        return head
    config = [(k, v) for k, v in leg.values.items() if k not in LEG_TOP_LEVEL]
    return [
        *head,
        ("ownerId", leg.values.get("ownerId")),
        ("localAddress", f"{leg.id[:8]}@lab-cms"),
        ("type", "sip"),
        ("direction", leg.direction),
        ("canMove", True),
        ("configuration", config),  # always present, empty without per-leg overrides
        (
            "status",
            [
                ("state", "connected"),
                ("durationSeconds", int((state.now() - leg.started).total_seconds())),
                ("direction", leg.direction),
                ("encryptedMedia", False),
            ],
        ),
    ]


def participant_fields(state: CmsState, participant: Participant, *, in_list: bool) -> Fields:
    """A participant; ``userJid`` only for logged-in CMS users (never for SIP room systems)."""
    call = state.calls.get(participant.call)
    head: list[tuple[str, Value]] = [
        ("name", participant.name),
        ("call", participant.call),
        ("tenant", call.tenant if call else None),
        ("callBridge", next(iter(state.call_bridges), None)),
    ]
    if in_list:
        return head
    return [
        *head,
        ("uri", participant.uri),
        ("originalUri", participant.uri),
        ("numCallLegs", len(participant.legs)),
        ("isActivator", participant.activator),
        ("canMove", True),
        ("status", [("state", "connected")]),
        ("configuration", [("importance", 0)]),
        ("userJid", participant.user_jid),
    ]
