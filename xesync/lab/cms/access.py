"""A coSpace's access methods, ``/coSpaces/<id>/accessMethods`` (cms-api.md §2.1 sub-resources).

An access method is one more way into a space: its own ``uri``, ``callId``, ``passcode``,
``callLegProfile``, ``secret`` and ``scope``. They are kept on the space (``meta["accessMethods"]``),
so that deleting the space deletes them, and ``numAccessMethods`` on the space counts them.
A URI or callId may not clash with any space's or any other access method's.
"""

from __future__ import annotations

from typing import Any

from xesync.lab.cms.config_api import apply_values
from xesync.lab.cms.routing import ID, Req, Route, location, page_of
from xesync.lab.cms.schema import Field, Kind, _b, coerce_params
from xesync.lab.cms.spaces import get_space
from xesync.lab.cms.state import CmsState, Obj, new_id, new_secret
from xesync.lab.cms.wire import CmsFailure, Fields, empty_ok, object_doc
from xesync.lab.http import LabResponse

ACCESS_METHOD = Kind(
    "accessMethods",
    "accessMethod",
    (
        Field("uri", in_list=True),
        Field("callId", "callId", in_list=True),
        Field("passcode"),
        Field("callLegProfile", "ref", ref="callLegProfiles"),
        Field("secret"),
        _b("regenerateSecret", readable=False),
        Field("scope", "enum", choices=("public", "private"), in_list=True),
        Field("name", since="2.1", in_list=True),
    ),
    "accessMethodDoesNotExist",
)


def methods_of(space: Obj) -> dict[str, Obj]:
    """A space's access methods by id (created on first use)."""
    found: dict[str, Obj] = space.meta.setdefault("accessMethods", {})
    return found


def _method(state: CmsState, ids: list[str]) -> tuple[Obj, Obj]:
    space = get_space(state, ids[0])
    method = methods_of(space).get(ids[1])
    if method is None:
        # spec: cms-api.md §1.4: a PUT on a missing accessMethod gave 400 [third-party]; the status
        # for GET/DELETE is [unconfirmed]; knob missing_access_method_status.
        raise CmsFailure(state.knobs.missing_access_method_status, "accessMethodDoesNotExist")
    return space, method


def _fields(state: CmsState, method: Obj, *, in_list: bool) -> Fields:
    return [
        (spec.name, method.values.get(spec.name))
        for spec in ACCESS_METHOD.fields
        if spec.readable and spec.exists_in(state.knobs) and (spec.in_list or not in_list)
    ]


def _check_unique(state: CmsState, values: dict[str, str], skip: str) -> None:
    uri, call_id = (values.get("uri") or "").casefold(), values.get("callId")
    for space in state.spaces.values():
        others: list[dict[str, Any]] = [space.values]
        others += [m.values for m in methods_of(space).values() if m.id != skip]
        for other in others:
            if uri and uri in {str(other.get(k) or "").casefold() for k in ("uri", "secondaryUri")}:
                raise CmsFailure(400, "duplicateCoSpaceUri")
            if call_id and other.get("callId") == call_id:
                raise CmsFailure(400, "duplicateCoSpaceId")


def _write(state: CmsState, method: Obj, req: Req, *, creating: bool) -> None:
    values = coerce_params(ACCESS_METHOD, req.form(), state.knobs, state.exists, creating=creating)
    regenerate = values.pop("regenerateSecret", None) == "true"
    shadow = Obj(id=method.id, values=dict(method.values))
    apply_values(shadow, values)
    if regenerate or (creating and not shadow.values.get("secret")):
        shadow.values["secret"] = new_secret()
    _check_unique(state, shadow.values, method.id)
    method.values = shadow.values


def list_methods(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``GET /coSpaces/<id>/accessMethods``."""
    space = get_space(state, ids[0])
    items = [(m.id, _fields(state, m, in_list=True)) for m in methods_of(space).values()]
    return page_of(state, req, "accessMethods", "accessMethod", items)


def create_method(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``POST /coSpaces/<id>/accessMethods``: 200 with ``Location``."""
    space = get_space(state, ids[0])
    method = Obj(id=new_id(), values={})
    _write(state, method, req, creating=True)
    methods_of(space)[method.id] = method
    return empty_ok(location("coSpaces", space.id, "accessMethods", method.id))


def read_method(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /coSpaces/<id>/accessMethods/<id>``."""
    _, method = _method(state, ids)
    return object_doc("accessMethod", method.id, _fields(state, method, in_list=False))


def update_method(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``PUT /coSpaces/<id>/accessMethods/<id>``: a partial update."""
    _, method = _method(state, ids)
    _write(state, method, req, creating=False)
    return empty_ok()


def delete_method(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``DELETE /coSpaces/<id>/accessMethods/<id>``."""
    space, method = _method(state, ids)
    del methods_of(space)[method.id]
    return empty_ok()


def routes() -> list[Route]:
    """Routes of this module."""
    return [
        Route(("coSpaces", ID, "accessMethods"), {"GET": list_methods, "POST": create_method}),
        Route(
            ("coSpaces", ID, "accessMethods", ID),
            {"GET": read_method, "PUT": update_method, "DELETE": delete_method},
        ),
    ]
