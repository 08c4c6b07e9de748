"""The EWS simulator's part of the lab: its JSON-line section, state, and ``/lab/ews/...`` actions.

Actions (``METHOD /lab/ews/<action>``, JSON bodies):

- ``GET mailboxes``: every mailbox with its item count per folder.
- ``GET mailbox/<email>[/<folder>]``: the items of a folder (default ``calendar``), summarised.
- ``GET outbox``: messages and meeting responses sent since the reset.
- ``GET responses``: meeting responses (who, UID, Accept/Decline/Tentative, body, occurrence).
- ``POST meetings``: the organiser-side "send meeting to room" action: ``{"organizer", "subject",
  "start", "end", "rooms": [...], "attendees": [...], "body", "sensitivity", "timezone",
  "recurrence": {"pattern": "daily|weekly", "interval", "days", "count"}}``; answers the UID and ids.
- ``POST meetings/cancel``: ``{"organizer", "uid"}``: the organiser cancels the meeting.
- ``POST seed``: ``{"room", "count", "start", "organizer", "duration_minutes", "gap_minutes"}``:
  load accepted meetings straight into a room (for benchmarks and demos).
- ``POST streams/close``: end every open ``GetStreamingEvents`` stream now (``Closed``).
- ``GET subscriptions``: the live pull and streaming subscriptions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from xesync.lab.base import ControlError
from xesync.lab.ews.calendar import new_uid
from xesync.lab.ews.meetings import mirror
from xesync.lab.ews.recurrence import Recurrence, zone
from xesync.lab.ews.store import DISTINGUISHED, STATE_MEETING, STATE_RECEIVED, Attendee, Item
from xesync.lab.ews.xml import fmt_dt

if TYPE_CHECKING:
    from xesync.lab.ews.server import EwsSimulator


def describe(sim: EwsSimulator, base_url: str) -> dict[str, Any]:
    """The ``ews`` section of ``xesync lab serve``'s JSON line."""
    s = sim.settings
    out: dict[str, Any] = {
        "url": f"{base_url}/EWS/Exchange.asmx",
        "build": ".".join(str(n) for n in s.build),
        "version": s.version_string,
        "auth": list(s.auth),
        "service_account": {
            "username": s.service_username,
            "password": s.service_password,
            "impersonates": s.impersonates,
        },
        "rooms": [
            {
                "email": r.email,
                "name": r.name,
                "tms_system_id": r.tms_system_id,
                "automate_processing": sim.policies[r.email.casefold()].automate_processing,
            }
            for r in sim.fixture.rooms
        ],
        "users": [
            {
                "email": u.email,
                "password": u.password,
                "username": f"{sim.fixture.netbios}\\{u.username}",
                "name": u.name,
                "pmp": u.pmp,
                "in_directory": u.in_directory,
            }
            for u in sim.fixture.users
        ],
    }
    if s.oauth is not None:
        out["oauth"] = {
            "token_url": f"{base_url}/{s.oauth.tenant_id}/oauth2/v2.0/token",
            "client_id": s.oauth.client_id,
            "client_secret": s.oauth.client_secret,
            "tenant_id": s.oauth.tenant_id,
        }
    return out


def state(sim: EwsSimulator) -> dict[str, Any]:
    """``GET /lab/state``'s ``ews`` part."""
    with sim.store.lock:
        boxes = {
            box.email: {d: len(sim.store.items_in(key, d)) for d in DISTINGUISHED if d != "root"}
            for key, box in sim.store.mailboxes.items()
        }
        return {
            "mailboxes": boxes,
            "subscriptions": len(sim.hub.subs),
            "open_streams": sim.hub.open_streams,
            "outbox": len(sim.store.outbox),
            "pending_rba": len(sim.meetings.pending),
        }


def summary(item: Item) -> dict[str, Any]:
    """One item as the control API shows it."""
    out: dict[str, Any] = {
        "id": item.id,
        "changekey": item.changekey,
        "element": item.element,
        "subject": item.subject,
        "body": item.body,
        "body_type": item.body_type,
        "sensitivity": item.sensitivity,
    }
    if item.element == "CalendarItem":
        out.update(
            uid=item.uid,
            start=fmt_dt(item.start) if item.start else None,
            end=fmt_dt(item.end) if item.end else None,
            organizer=item.organizer.email if item.organizer else None,
            my_response=item.my_response,
            is_cancelled=item.is_cancelled,
            free_busy=item.free_busy,
            type="RecurringMaster" if item.recurrence else "Single",
            sequence=item.sequence,
            attendees={a.person.email: a.response for a in item.attendees()},
            deleted_occurrences=sorted(fmt_dt(d) for d in item.deleted_occurrences),
            modified_occurrences=sorted(fmt_dt(d) for d in item.overrides),
        )
    return out


def _time(body: dict[str, Any], key: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(body[key]))
    except (KeyError, ValueError):
        raise ControlError(400, f"{key} must be an ISO-8601 time with offset") from None
    if value.tzinfo is None:
        raise ControlError(400, f"{key} needs a UTC offset")
    return value


def control(sim: EwsSimulator, action: str, method: str, body: Any) -> Any:
    """Route one ``/lab/ews/<action>`` call."""
    parts = [p for p in action.split("/") if p]
    route = (method, parts[0].lower() if parts else "")
    store = sim.store
    if route == ("GET", "mailboxes"):
        return state(sim)["mailboxes"]
    if route == ("GET", "mailbox") and len(parts) >= 2:  # noqa: PLR2004
        folder = parts[2] if len(parts) > 2 else "calendar"  # noqa: PLR2004
        with store.lock:
            if store.mailbox(parts[1]) is None or folder not in DISTINGUISHED:
                raise ControlError(404, f"no mailbox {parts[1]!r} or folder {folder!r}")
            return {"items": [summary(i) for i in store.items_in(parts[1], folder)]}
    if route == ("GET", "outbox"):
        return {"messages": list(store.outbox)}
    if route == ("GET", "responses"):
        return {"responses": list(sim.meetings.responses)}
    if route == ("GET", "subscriptions"):
        return {
            "subscriptions": [
                {"id": s.id, "kind": s.kind, "mailbox": s.mailbox} for s in sim.hub.subs.values()
            ]
        }
    if route == ("POST", "streams") and parts[1:] == ["close"]:
        sim.hub.close_streams()
        return {"closed": True}
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    if route == ("POST", "meetings") and parts[1:] == ["cancel"]:
        with store.lock:
            org = store.by_uid(str(body.get("organizer", "")), str(body.get("uid", "")))
            if org is None:
                raise ControlError(404, "no such meeting in the organiser's calendar")
            sim.meetings.cancel(org)
            store.move(org, "deleteditems")
            return {"cancelled": org.uid}
    if route == ("POST", "meetings") and len(parts) == 1:
        with store.lock:
            return send_meeting(sim, body)
    if route == ("POST", "seed"):
        with store.lock:
            return {"created": seed(sim, body)}
    raise ControlError(404, f"no EWS control action {method} {action}")


def send_meeting(sim: EwsSimulator, body: dict[str, Any]) -> dict[str, Any]:
    """Create a meeting in an organiser's calendar and send it (SendToAllAndSaveCopy)."""
    store = sim.store
    organizer = str(body.get("organizer", ""))
    box = store.mailbox(organizer)
    if box is None:
        raise ControlError(400, f"organizer {organizer!r} has no mailbox in the lab")
    start, end = _time(body, "start"), _time(body, "end")
    if end < start:
        raise ControlError(400, "end is before start")
    item = Item(id=store.new_id(), mailbox=box.email.casefold(), folder="calendar")
    item.subject = str(body.get("subject", ""))
    item.body = str(body.get("body", ""))
    item.body_type = "HTML" if body.get("body_type") == "HTML" else "Text"
    item.sensitivity = str(body.get("sensitivity", "Normal"))
    item.location = str(body.get("location", ""))
    item.start, item.end = start, end
    item.start_tz = item.end_tz = str(body.get("timezone", "UTC"))
    item.uid = new_uid(store.now())
    item.organizer = store.person(box.email)
    item.my_response = "Organizer"
    item.resources = [Attendee(store.person(str(r))) for r in body.get("rooms", [])]
    item.required = [Attendee(store.person(str(a))) for a in body.get("attendees", [])]
    rec = body.get("recurrence")
    if isinstance(rec, dict):
        pattern = {"daily": "DailyRecurrence", "weekly": "WeeklyRecurrence"}.get(str(rec.get("pattern", "")))
        if pattern is None:
            raise ControlError(400, "recurrence.pattern must be daily or weekly")
        local_start = start.astimezone(zone(item.start_tz))
        item.recurrence = Recurrence(
            pattern=pattern,
            interval=int(rec.get("interval", 1)),
            days_of_week=list(rec.get("days", [local_start.strftime("%A")])),
            boundary="NumberedRecurrence",
            start_date=local_start.date(),
            count=int(rec.get("count", 5)),
        )
    store.add(item)
    if item.attendees():
        sim.meetings.send(item, full=True)
        store.touch(item)
    return {"uid": item.uid, "organizer_item_id": item.id}


def seed(sim: EwsSimulator, body: dict[str, Any]) -> int:
    """Load ``count`` accepted single meetings into a room, back to back from ``start``."""
    store = sim.store
    room = store.mailbox(str(body.get("room", "")))
    if room is None:
        raise ControlError(400, "room has no mailbox in the lab")
    organizer = store.person(
        str(body.get("organizer") or (sim.fixture.users[0].email if sim.fixture.users else ""))
    )
    start = _time(body, "start")
    count = int(body.get("count", 1))
    duration = timedelta(minutes=int(body.get("duration_minutes", 30)))
    gap = timedelta(minutes=int(body.get("gap_minutes", 30)))
    for n in range(count):
        org = Item(id="seed", mailbox=organizer.email.casefold(), folder="calendar")
        org.subject = f"Seeded meeting {n + 1}"
        org.start = start + n * (duration + gap)
        org.end = org.start + duration
        org.uid = new_uid(store.now())
        org.organizer = organizer
        org.resources = [Attendee(store.person(room.email), "Accept")]
        copy = Item(id=store.new_id(), mailbox=room.email.casefold(), folder="calendar")
        mirror(copy, org)
        copy.my_response = "Accept"
        copy.free_busy = "Busy"
        copy.appointment_state = STATE_MEETING | STATE_RECEIVED
        store.add(copy)
    return count
