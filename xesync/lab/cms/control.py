"""The CMS simulator's control API: ``METHOD /lab/cms/<action>`` with JSON bodies.

| Method and action | Body | Answer |
|---|---|---|
| ``GET knobs`` / ``PUT knobs`` | ``{"reevaluate_on_owner_change": true, …}`` | every knob |
| ``GET page_cap`` / ``PUT page_cap`` | ``{"default": 10, "collections": {"coSpaces": 3}}`` | the caps |
| ``GET fault_kinds`` | - | the generic kinds and CMS's own (``failure``) |
| ``GET requests`` / ``DELETE requests`` | - | counts per ``METHOD /template`` |
| ``GET calls`` | - | active calls with their licence |
| ``POST calls`` | ``{"coSpace": id}``, ``{"uri": …}`` or ``{"name": …}``; ``participants`` | the call |
| ``GET calls/<id>`` / ``DELETE calls/<id>`` | - | the call (with licence history) / the ended call |
| ``POST calls/<id>/participants`` | ``{"userJid": …?, "name": …?, "uri": …?}`` | participant, leg, call |
| ``DELETE participants/<id>`` | - | the call after the participant left |
| ``GET licences`` | - | the multipartyLicensing counters and activePersonalLicenses |
| ``POST ldap_sync`` | ``{"ldapSource": id?, "tenant": id?}`` | the sync result (runs now) |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xesync.lab.base import ControlError
from xesync.lab.cms import calls, licensing, syncs
from xesync.lab.cms.state import Call, CmsState
from xesync.lab.faults import GENERIC_KINDS

if TYPE_CHECKING:
    from xesync.lab.cms.server import CmsSimulator


def control(sim: CmsSimulator, action: str, method: str, body: Any) -> Any:
    """Dispatch one control call (``action`` is the path below ``/lab/cms/``)."""
    parts = [p for p in action.split("/") if p]
    head = parts[0].lower() if parts else ""
    db = sim.db
    if head == "knobs":
        if method in {"PUT", "POST"}:
            with db.lock:
                db.knobs = db.knobs.updated(_object(body))
        return db.knobs.as_dict()
    if head == "page_cap":
        return _page_cap(db, method, body)
    if head == "fault_kinds":
        return {"generic": sorted(GENERIC_KINDS), "cms": sorted(sim.fault_kinds)}
    if head == "requests":
        if method == "DELETE":
            sim.clear_request_counts()
        return {"operations": sim.request_counts()}
    if head == "ldap_sync" and method == "POST":
        spec = _object(body or {})
        return syncs.execute(db, _opt_str(spec, "tenant"), _opt_str(spec, "ldapSource"))
    with db.lock:
        return _calls(db, parts, method, body)


def _calls(db: CmsState, parts: list[str], method: str, body: Any) -> Any:
    head = parts[0].lower() if parts else ""
    if head == "licences" and method == "GET":
        counters = licensing.counters(db)
        return {
            "users": counters.users,
            "personalLicenses": counters.personal_licenses,
            "callsActive": counters.calls,
            "callsWithoutPersonalLicense": counters.calls_without_personal,
            "participantsActive": counters.participants,
            "activePersonalLicenses": dict(licensing.active_personal_licenses(db)),
        }
    if head == "calls" and len(parts) == 1:
        if method == "GET":
            return {"calls": [_call_view(db, c) for c in db.calls.values()]}
        if method == "POST":
            return _start(db, _object(body))
    if head == "calls" and len(parts) == 2:  # noqa: PLR2004
        if method == "GET":
            return _call_view(db, calls.get_call(db, parts[1]))
        if method == "DELETE":
            return _call_view(db, calls.end_call(db, parts[1]))
    if head == "calls" and len(parts) == 3 and parts[2].lower() == "participants" and method == "POST":  # noqa: PLR2004
        call = calls.get_call(db, parts[1])
        who = _participant(db, _object(body or {}))
        participant, leg = calls.join(
            db, call, remote_party=who["remote_party"], name=who.get("name"), user_jid=who.get("user_jid")
        )
        return {"participant": participant.id, "callLeg": leg.id, "call": _call_view(db, call)}
    if head == "participants" and len(parts) == 2 and method == "DELETE":  # noqa: PLR2004
        gone = db.participants.get(parts[1])
        if gone is None:
            raise ControlError(404, f"no participant {parts[1]}")
        calls.leave(db, parts[1])
        left = db.calls.get(gone.call)
        return {"call": _call_view(db, left) if left else None}
    raise ControlError(404, f"no CMS control action {method} {'/'.join(parts)}")


def _start(db: CmsState, spec: dict[str, Any]) -> dict[str, Any]:
    space_id = _opt_str(spec, "coSpace")
    uri = _opt_str(spec, "uri")
    if uri and not space_id:
        match = next(
            (s for s in db.spaces.values() if s.values.get("uri", "").casefold() == uri.casefold()), None
        )
        if match is None:
            raise ControlError(404, f"no coSpace with uri {uri!r}")
        space_id = match.id
    if space_id and space_id not in db.spaces:
        raise ControlError(404, f"no coSpace {space_id}")
    name = _opt_str(spec, "name")
    if not space_id and not name:
        raise ControlError(400, 'give "coSpace", "uri" or "name"')
    joined = [_participant(db, p) for p in spec.get("participants") or []]
    call = calls.start_call(db, space_id=space_id, name=name, values={}, joined=joined)
    return _call_view(db, call)


def _participant(db: CmsState, spec: Any) -> dict[str, str]:
    if not isinstance(spec, dict):
        raise ControlError(400, "a participant is a JSON object")
    jid = _opt_str(spec, "userJid")
    if jid and db.user_by_jid(jid) is None:
        raise ControlError(400, f"userJid {jid!r} is not a CMS user")
    uri = _opt_str(spec, "uri") or jid or "sip:guest@lab.example"
    out = {"remote_party": uri, "name": _opt_str(spec, "name") or uri}
    if jid:
        out["user_jid"] = jid
    return out


def _call_view(db: CmsState, call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "name": call.name,
        "coSpace": call.cospace,
        "callCorrelator": call.correlator,
        "active": call.ended is None,
        "participants": [
            {"id": p, "userJid": db.participants[p].user_jid, "uri": db.participants[p].uri}
            for p in call.participants
            if p in db.participants
        ],
        **call.grant.as_dict(),
        "history": [g.as_dict() for g in call.history],
    }


def _page_cap(db: CmsState, method: str, body: Any) -> dict[str, Any]:
    if method in {"PUT", "POST"}:
        spec = _object(body)
        changes: dict[str, Any] = {}
        if "default" in spec:
            changes["page_cap"] = spec["default"]
        if "collections" in spec:
            changes["page_caps"] = {**db.knobs.page_caps, **_object(spec["collections"])}
        with db.lock:
            db.knobs = db.knobs.updated(changes)
    return {"default": db.knobs.page_cap, "collections": dict(db.knobs.page_caps)}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _opt_str(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ControlError(400, f"{key} must be a string")
    return value
