"""Calls, call legs and participants (cms-api.md §2.4, §2.5), and their lifecycle.

``POST /calls coSpace=<id>`` instantiates a space: the call takes the space's name, gets a fresh
``callCorrelator``, and the licence engine assigns its licence at that moment. TMS then dials the rooms
with ``POST /calls/<id>/callLegs remoteParty=…`` and ends the meeting with ``DELETE /calls/<id>``.
The control API joins participants (with or without a user JID) through the same functions. What
these objects accept and how GET shows them (their Kinds and documents) is in
:mod:`xesync.lab.cms.call_docs`.
"""

from __future__ import annotations

import structlog

from xesync import events
from xesync.lab.cms import licensing
from xesync.lab.cms.call_docs import CALL, LEG, call_fields, leg_fields, num_legs, participant_fields
from xesync.lab.cms.config_api import apply_values
from xesync.lab.cms.routing import ID, Req, Route, location, page_of, text_filter
from xesync.lab.cms.schema import coerce_params
from xesync.lab.cms.state import Call, CallLeg, CmsState, Grant, Obj, Participant, new_id
from xesync.lab.cms.wire import CmsFailure, as_bool, empty_ok, object_doc, parameter_error
from xesync.lab.http import LabResponse

log = structlog.get_logger(__name__)


# ---------------------------------------------------------------------------------- lifecycle


def start_call(
    state: CmsState,
    *,
    space_id: str | None,
    name: str | None,
    values: dict[str, str],
    joined: list[dict[str, str]] | None = None,
) -> Call:
    """Instantiate a space (or a space-less call) and assign its licence.

    ``joined`` are participants present as the call starts (``remote_party``, ``name``, ``user_jid``),
    for rule 1 of the licence engine. A space has at most one call: asking again answers the running
    call (an assumption; the spec is silent, and CMS joins everyone dialling a space into one call).
    """
    now = state.now()
    space = state.spaces.get(space_id) if space_id else None
    if space is not None:
        running = state.call_of_space(space.id)
        if running is not None:
            return running
    call = Call(
        id=new_id(),
        name=space.values.get("name", "") if space is not None else (name or ""),
        cospace=space.id if space is not None else None,
        correlator=new_id(),
        tenant=space.values.get("tenant") if space is not None else None,
        started=now,
        grant=Grant(kind="smp", reason="none", at=now),
        values=values,
    )
    call.recording = values.get("recording") == "true"
    call.streaming = values.get("streaming") == "true"
    state.calls[call.id] = call
    for who in joined or []:
        join(
            state, call, remote_party=who["remote_party"], name=who.get("name"), user_jid=who.get("user_jid")
        )
    licensing.assign(state, call, now, "call_started")
    log.info(events.LAB_CALL_STARTED, call_id=call.id, cospace=call.cospace, licence=call.grant.kind)
    return call


def end_call(state: CmsState, call_id: str) -> Call:
    """End a call: its participants leave, its licence is released."""
    call = get_call(state, call_id)
    for participant_id in list(call.participants):
        _drop_participant(state, participant_id)
    call.ended = state.now()
    del state.calls[call.id]
    state.ended_calls.append(call)
    log.info(events.LAB_CALL_ENDED, call_id=call.id, licence=call.grant.kind)
    return call


def join(
    state: CmsState,
    call: Call,
    *,
    remote_party: str,
    name: str | None = None,
    user_jid: str | None = None,
    direction: str = "outgoing",
    leg_values: dict[str, str] | None = None,
) -> tuple[Participant, CallLeg]:
    """A participant joins with one leg; a logged-in CMS user carries ``user_jid``."""
    now = state.now()
    if user_jid is None and state.user_by_jid(remote_party) is not None:
        # Dialling a user's JID reaches the user's CMS app, which is logged in as that user.
        user_jid = remote_party
    participant = Participant(
        id=new_id(),
        call=call.id,
        name=name or remote_party,
        uri=remote_party,
        user_jid=user_jid,
        joined=now,
        activator=not call.participants,
    )
    leg = CallLeg(
        id=new_id(),
        call=call.id,
        participant=participant.id,
        remote_party=remote_party,
        name=name or "",
        direction=direction,
        started=now,
        values=dict(leg_values or {}),
    )
    participant.legs.append(leg.id)
    state.participants[participant.id] = participant
    state.legs[leg.id] = leg
    call.participants.append(participant.id)
    call.max_legs = max(call.max_legs, num_legs(state, call))
    state.legs_max_active = max(state.legs_max_active, len(state.legs))
    if user_jid:
        licensing.on_member_joined(state, call, now)
    return participant, leg


def leave(state: CmsState, participant_id: str) -> None:
    """A participant leaves; a call that is not ``activeWhenEmpty`` ends with its last participant."""
    participant = state.participants.get(participant_id)
    if participant is None:
        raise CmsFailure(404, "participantDoesNotExist")
    _drop_participant(state, participant_id)
    call = state.calls.get(participant.call)
    if call is not None and not call.participants and call.values.get("activeWhenEmpty") == "false":
        end_call(state, call.id)


def _drop_participant(state: CmsState, participant_id: str) -> None:
    participant = state.participants.pop(participant_id)
    for leg_id in participant.legs:
        if state.legs.pop(leg_id, None) is not None:
            state.legs_completed += 1
    call = state.calls.get(participant.call)
    if call is not None and participant_id in call.participants:
        call.participants.remove(participant_id)


def get_call(state: CmsState, call_id: str) -> Call:
    """An active call or 404 ``callDoesNotExist``."""
    call = state.calls.get(call_id)
    if call is None:
        raise CmsFailure(404, "callDoesNotExist")
    return call


# ---------------------------------------------------------------------------------- handlers


def list_calls(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /calls`` with ``coSpaceFilter`` and ``tenantFilter``."""
    space, tenant = req.q("coSpaceFilter"), req.q("tenantFilter")
    items = [
        (c.id, call_fields(state, c, in_list=True))
        for c in state.calls.values()
        if (not space or c.cospace == space) and (not tenant or c.tenant == tenant)
    ]
    return page_of(state, req, "calls", "call", items)


def create_call(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``POST /calls coSpace=<id>`` (or ``name=`` for a space-less call)."""
    form = req.form()
    values = coerce_params(CALL, form, state.knobs, state.exists, creating=True)
    space_id, name = values.pop("coSpace", None), form.get("name")
    values.pop("name", None)
    if not space_id and not name:
        raise parameter_error("coSpace", "required")
    call = start_call(state, space_id=space_id, name=name, values={k: v for k, v in values.items() if v})
    return empty_ok(location("calls", call.id))


def read_call(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /calls/<id>``."""
    call = get_call(state, ids[0])
    return object_doc("call", call.id, call_fields(state, call, in_list=False))


def update_call(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``PUT /calls/<id>``: call flags."""
    call = get_call(state, ids[0])
    values = coerce_params(CALL, req.form(), state.knobs, state.exists, creating=False)
    shadow = _values_obj(call.values)
    apply_values(shadow, values)
    call.values = shadow.values
    call.recording = call.values.get("recording") == "true"
    call.streaming = call.values.get("streaming") == "true"
    return empty_ok()


def delete_call(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``DELETE /calls/<id>``: end the call."""
    end_call(state, ids[0])
    return empty_ok()


def _values_obj(values: dict[str, str]) -> Obj:
    return Obj(id="", values=dict(values))


def _dial(state: CmsState, req: Req, call: Call) -> tuple[Participant, CallLeg]:
    form = req.form()
    values = coerce_params(LEG, form, state.knobs, state.exists, creating=True)
    remote = values.pop("remoteParty", None) or ""
    name = values.get("name")
    return join(
        state, call, remote_party=remote, name=name, leg_values={k: v for k, v in values.items() if v}
    )


def call_legs_of(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``GET /calls/<id>/callLegs``."""
    call = get_call(state, ids[0])
    items = [
        (leg.id, leg_fields(state, leg, in_list=True)) for leg in state.legs.values() if leg.call == call.id
    ]
    return page_of(state, req, "callLegs", "callLeg", items)


def dial_leg(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``POST /calls/<id>/callLegs remoteParty=…``: ``Location: /api/v1/callLegs/<id>`` (traced)."""
    _participant, leg = _dial(state, req, get_call(state, ids[0]))
    return empty_ok(location("callLegs", leg.id))


def participants_of(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``GET /calls/<id>/participants``."""
    call = get_call(state, ids[0])
    items = [(p, participant_fields(state, state.participants[p], in_list=True)) for p in call.participants]
    return page_of(state, req, "participants", "participant", items)


def dial_participant(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``POST /calls/<id>/participants remoteParty=…``: ``Location: /api/v1/participants/<id>``."""
    participant, _leg = _dial(state, req, get_call(state, ids[0]))
    return empty_ok(location("participants", participant.id))


def list_legs(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /callLegs`` with ``filter``, ``participantFilter``, ``tenantFilter`` and ``ownerIdSet``."""
    who, tenant, owner_set = req.q("participantFilter"), req.q("tenantFilter"), req.q("ownerIdSet")
    want_owner = as_bool("ownerIdSet", owner_set) if owner_set else None
    items = []
    for leg in state.legs.values():
        call = state.calls.get(leg.call)
        if not text_filter(req, [leg.name, leg.remote_party]):
            continue
        if (who and leg.participant != who) or (tenant and (call is None or call.tenant != tenant)):
            continue
        if want_owner is not None and bool(leg.values.get("ownerId")) != want_owner:
            continue
        items.append((leg.id, leg_fields(state, leg, in_list=True)))
    return page_of(state, req, "callLegs", "callLeg", items)


def _leg(state: CmsState, leg_id: str) -> CallLeg:
    leg = state.legs.get(leg_id)
    if leg is None:
        raise CmsFailure(404, "callLegDoesNotExist")
    return leg


def read_leg(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /callLegs/<id>``."""
    leg = _leg(state, ids[0])
    return object_doc("callLeg", leg.id, leg_fields(state, leg, in_list=False))


def update_leg(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``PUT /callLegs/<id>``: per-leg overrides."""
    leg = _leg(state, ids[0])
    shadow = _values_obj(leg.values)
    apply_values(shadow, coerce_params(LEG, req.form(), state.knobs, state.exists, creating=False))
    leg.values = shadow.values
    return empty_ok()


def drop_leg(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``DELETE /callLegs/<id>``: hang up one leg (its participant leaves with its last leg)."""
    leg = _leg(state, ids[0])
    participant = state.participants[leg.participant]
    if participant.legs == [leg.id]:
        leave(state, participant.id)
    else:
        participant.legs.remove(leg.id)
        del state.legs[leg.id]
        state.legs_completed += 1
    return empty_ok()


def list_participants(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /participants`` with ``filter``, ``tenantFilter`` and ``callBridgeFilter``."""
    tenant, bridge = req.q("tenantFilter"), req.q("callBridgeFilter")
    items = []
    for p in state.participants.values():
        call = state.calls.get(p.call)
        if not text_filter(req, [p.name, p.uri]):
            continue
        if tenant and (call is None or call.tenant != tenant):
            continue
        if bridge and bridge not in state.call_bridges:
            continue
        items.append((p.id, participant_fields(state, p, in_list=True)))
    return page_of(state, req, "participants", "participant", items)


def read_participant(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /participants/<id>``."""
    participant = state.participants.get(ids[0])
    if participant is None:
        raise CmsFailure(404, "participantDoesNotExist")
    return object_doc("participant", participant.id, participant_fields(state, participant, in_list=False))


def drop_participant(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``DELETE /participants/<id>``."""
    leave(state, ids[0])
    return empty_ok()


def routes() -> list[Route]:
    """Routes of this module."""
    return [
        Route(("calls",), {"GET": list_calls, "POST": create_call}),
        Route(("calls", ID), {"GET": read_call, "PUT": update_call, "DELETE": delete_call}),
        Route(("calls", ID, "callLegs"), {"GET": call_legs_of, "POST": dial_leg}),
        Route(("calls", ID, "participants"), {"GET": participants_of, "POST": dial_participant}),
        Route(("callLegs",), {"GET": list_legs}),
        Route(("callLegs", ID), {"GET": read_leg, "PUT": update_leg, "DELETE": drop_leg}),
        Route(("participants",), {"GET": list_participants}),
        Route(("participants", ID), {"GET": read_participant, "DELETE": drop_participant}),
    ]
