"""The Remote Setup service's operations (tms-booking-api.md §6.4, §8.8)."""

from __future__ import annotations

from lxml import etree

from xesync.lab.tms.codec import render_system, render_user, sub
from xesync.lab.tms.operations import Call, Handler, response_element
from xesync.lab.tms.soap import REMOTE_NS, Code, TmsFault


def _remote(op: str) -> etree._Element:
    return response_element(op, REMOTE_NS)


def get_systems(call: Call) -> etree._Element:
    """``GetSystems`` / ``GetSystemsForUser``: every system (all are bookable by the service user)."""
    op = call.env.operation
    out = _remote(op)
    result = sub(out, f"{op}Result", ns=REMOTE_NS)
    for system in sorted(call.store.systems.values(), key=lambda s: s.system_id):
        render_system(result, "TMSSystem", system, REMOTE_NS)
    return out


def get_system_by_id(call: Call) -> etree._Element:
    """``GetSystemById``: fault if not found."""
    system_id = call.int_arg("TMSSystemId")
    system = call.store.systems.get(system_id)
    if system is None:
        raise TmsFault(Code.SYSTEMNOTFOUND, f"System {system_id} does not exist.")
    out = _remote("GetSystemById")
    render_system(out, "GetSystemByIdResult", system, REMOTE_NS)
    return out


def get_users(call: Call) -> etree._Element:
    """``GetUsers``: every user, including auto-created ones."""
    out = _remote("GetUsers")
    result = sub(out, "GetUsersResult", ns=REMOTE_NS)
    for user in sorted(call.store.users.values(), key=lambda u: u.user_id):
        render_user(result, user, REMOTE_NS)
    return out


def _bool(op: str, value: bool) -> etree._Element:
    out = _remote(op)
    sub(out, f"{op}Result", "true" if value else "false", ns=REMOTE_NS)
    return out


def is_alive(call: Call) -> etree._Element:  # noqa: ARG001 - every operation takes the call
    """``IsAlive``."""
    return _bool("IsAlive", value=True)


def is_book_on_behalf(call: Call) -> etree._Element:
    """``IsTMSBookOnBehalfUser``: the service user's right (the ``book_on_behalf`` knob)."""
    return _bool("IsTMSBookOnBehalfUser", call.store.knobs.book_on_behalf)


def is_book_on_behalf_of_user(call: Call) -> etree._Element:
    """``IsBookOnBehalfOfUser(user)`` (not in the WSDL; shape [unconfirmed]): the user exists."""
    raw = call.arg("user") or ""
    known = (raw.isdigit() and int(raw) in call.store.users) or call.store.user_by_name(raw) is not None
    return _bool("IsBookOnBehalfOfUser", call.store.knobs.book_on_behalf and bool(known))


def _flag(op: str, value: bool) -> Handler:
    return lambda call: _bool(op, value)  # noqa: ARG005


REMOTE: dict[str, Handler] = {
    "GetSystems": get_systems,
    "GetSystemsForUser": get_systems,
    "GetSystemById": get_system_by_id,
    "GetUsers": get_users,
    "IsAlive": is_alive,
    "IsTMSBookOnBehalfUser": is_book_on_behalf,
    "IsBookOnBehalfOfUser": is_book_on_behalf_of_user,
    "IsTMSServiceUser": _flag("IsTMSServiceUser", value=True),
    "IsTMSSiteAdmin": _flag("IsTMSSiteAdmin", value=False),
    "IsLocalAdmin": _flag("IsLocalAdmin", value=False),
}
