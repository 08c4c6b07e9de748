"""The TMS simulator's part of the control API: ``METHOD /lab/tms/<action>`` (lab-contract.md).

=======================  ====================================================================
``GET  state``           the summary ``GET /lab/state`` shows
``GET  knobs``           every knob; ``POST knobs`` with ``{"name": value, ...}`` changes some
``GET  systems``         the systems; ``POST systems`` with ``{"system_id", "name",
                         "allow_bookings"?, "sip_uri"?, "network_address"?, …}`` (or a
                         list of them; see ``SYSTEM_DETAILS``) adds or replaces
``GET  users``           the users; ``POST users`` with ``{"username", "first_name"?,
                         "last_name"?, "email"?, "ad_guid"?}`` (or a list) adds or replaces
``GET  conferences``     every booking with its occurrences and CMS calls
``GET  transactions``    the transaction log
``GET  sessions``        the client sessions; ``POST sessions/expire`` forgets them all
``GET  requests``        request counts per SOAP operation since the last reset
``POST cms/pool``        create (or find) the CMS pool now, instead of at the first start
=======================  ====================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xesync.lab.base import ControlError
from xesync.lab.tms.cms_driver import CmsDriveError
from xesync.lab.tms.values import fmt_time

if TYPE_CHECKING:
    from xesync.lab.tms.server import TmsSimulator


def route(sim: TmsSimulator, action: str, method: str, body: Any) -> Any:
    """Dispatch one control call.

    :raises ControlError: 404 for an unknown action, 400 for a bad body.
    """
    key = (method.upper(), action.strip("/").lower())
    if key == ("GET", "state"):
        return state(sim)
    if key == ("GET", "knobs"):
        return sim.knobs.as_dict()
    if key == ("POST", "knobs"):
        return sim.set_knobs(_object(body)).as_dict()
    if key == ("GET", "systems"):
        return [s.as_dict() for s in sorted(sim.store.systems.values(), key=lambda s: s.system_id)]
    if key == ("POST", "systems"):
        return [_add_system(sim, item) for item in _items(body)]
    if key == ("GET", "users"):
        return [u.as_dict() for u in sorted(sim.store.users.values(), key=lambda u: u.user_id)]
    if key == ("POST", "users"):
        return [_add_user(sim, item) for item in _items(body)]
    if key == ("GET", "conferences"):
        return conferences(sim)
    if key == ("GET", "transactions"):
        return [
            {"transaction_id": t.transaction_id, "conference_id": t.conference_id, "type": t.kind}
            for t in sim.store.transactions
        ]
    if key == ("GET", "sessions"):
        return [{"id": s.session_id, "issued": fmt_time(s.issued)} for s in sim.store.sessions.values()]
    if key == ("POST", "sessions/expire"):
        with sim.store.lock:
            for session_id in list(sim.store.sessions):
                sim.store.expire_session(session_id)
        return {"sessions": 0}
    if key == ("GET", "requests"):
        return {"operations": dict(sim.counts), "total": sum(sim.counts.values())}
    if key == ("POST", "cms/pool"):
        if sim.driver is None:
            raise ControlError(409, "the CMS simulator is not running")
        try:
            return {"pool": {str(k): v for k, v in sim.driver.ensure_pool().items()}}
        except CmsDriveError as exc:
            raise ControlError(502, str(exc)) from None
    raise ControlError(404, f"no TMS control route {method} {action}")


def state(sim: TmsSimulator) -> dict[str, Any]:
    """The TMS part of ``GET /lab/state``."""
    now = sim.clock.now()
    with sim.store.lock:
        statuses: dict[str, int] = {}
        for booking in sim.store.bookings.values():
            for occ in booking.occurrences:
                status = booking.status(occ, now)
                statuses[status] = statuses.get(status, 0) + 1
        return {
            "conferences": len(sim.store.bookings),
            "occurrences_by_status": statuses,
            "users": len(sim.store.users),
            "systems": len(sim.store.systems),
            "transactions": len(sim.store.transactions),
            "sessions": len(sim.store.sessions),
            "cms": None if sim.driver is None else {"pool": {str(k): v for k, v in sim.driver.pool.items()}},
            "knobs": {
                "owner_to_cms": sim.knobs.owner_to_cms,
                "reset_clears_owner": sim.knobs.reset_clears_owner,
            },
        }


def conferences(sim: TmsSimulator) -> list[dict[str, Any]]:
    """Every booking, for the control API."""
    now = sim.clock.now()
    with sim.store.lock:
        return [
            {
                "conference_id": b.booking_id,
                "title": b.title,
                "owner_id": b.owner_id,
                "external_source_id": b.external_source_id,
                "external_primary_key": b.external_primary_key,
                "systems": b.systems(),
                "version": b.version,
                "defective": b.defective,
                "deleted": b.deleted,
                "numeric_id": b.numeric_id,
                "occurrences": [
                    {
                        "conference_id": o.conference_id,
                        "start": fmt_time(o.start),
                        "end": fmt_time(o.end),
                        "status": b.status(o, now),
                        "cms": dict(o.cms),
                    }
                    for o in b.occurrences
                ],
            }
            for b in sim.store.bookings.values()
        ]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _items(body: Any) -> list[dict[str, Any]]:
    items = body if isinstance(body, list) else [body]
    if not items or not all(isinstance(i, dict) for i in items):
        raise ControlError(400, "body must be a JSON object or a list of objects")
    return items


# Remote setup strings a control-API system may set (TmsSystem fields).
SYSTEM_DETAILS = (
    "network_address",
    "web_interface_url",
    "contact",
    "description",
    "isdn_number",
    "h323_id",
    "e164_alias",
)


def _add_system(sim: TmsSimulator, item: dict[str, Any]) -> dict[str, Any]:
    system_id, name = item.get("system_id"), item.get("name")
    if isinstance(system_id, bool) or not isinstance(system_id, int) or system_id < 1:
        raise ControlError(400, "system_id must be a positive integer")
    if not isinstance(name, str) or not name:
        raise ControlError(400, "name must be a non-empty string")
    allow = item.get("allow_bookings", True)
    if not isinstance(allow, bool):
        raise ControlError(400, "allow_bookings must be true or false")
    details = {k: item[k] for k in SYSTEM_DETAILS if k in item}
    if any(not isinstance(v, str) for v in details.values()):
        raise ControlError(400, f"{', '.join(SYSTEM_DETAILS)} must be strings")
    with sim.store.lock:
        system = sim.store.add_system(
            system_id=system_id,
            name=name,
            sip_uri=str(item.get("sip_uri", "")),
            allow_bookings=allow,
            details=details,
        )
    return system.as_dict()


def _add_user(sim: TmsSimulator, item: dict[str, Any]) -> dict[str, Any]:
    username = item.get("username")
    if not isinstance(username, str) or not username:
        raise ControlError(400, "username must be a non-empty string (DOMAIN\\name)")
    fields = {k: item.get(k) for k in ("first_name", "last_name", "email", "ad_guid")}
    if any(v is not None and not isinstance(v, str) for v in fields.values()):
        raise ControlError(400, "first_name, last_name, email and ad_guid must be strings")
    with sim.store.lock:
        user = sim.store.add_user(
            username=username,
            first_name=fields["first_name"] or "",
            last_name=fields["last_name"] or "",
            email=fields["email"] or "",
            ad_guid=fields["ad_guid"],
        )
    return user.as_dict()
