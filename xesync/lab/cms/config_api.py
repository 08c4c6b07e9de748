"""Configuration objects with plain create/read/update/delete, users, and ``/system/profiles``.

Profiles, tenants, LDAP servers/mappings/sources and bulk parameter sets all follow the field tables in
:mod:`xesync.lab.cms.schema`. Users exist only through LDAP sync (cms-api.md §2.3): no POST, and
DELETE answers ``invalidOperation``.
"""

from __future__ import annotations

from xesync.lab.cms.routing import ID, Handler, Req, Route, invalid_operation, location, page_of, text_filter
from xesync.lab.cms.schema import GENERIC_KINDS, Field, Kind, coerce, coerce_params
from xesync.lab.cms.state import CmsState, Obj, User, new_id
from xesync.lab.cms.wire import CmsFailure, Fields, empty_ok, object_doc, parameter_error
from xesync.lab.http import LabResponse


def render(state: CmsState, kind: Kind, obj: Obj, *, in_list: bool) -> Fields:
    """An object's fields in table order, leaving out unset, write-only and other-version fields."""
    out: list[tuple[str, str | None]] = []
    for spec in kind.fields:
        if not spec.readable or not spec.exists_in(state.knobs):
            continue
        if in_list and not (kind.all_in_list or spec.in_list):
            continue
        out.append((spec.name, obj.values.get(spec.name)))
    return out


def referenced_ids(state: CmsState) -> set[str]:
    """Every id some object refers to (for ``usageFilter``)."""
    refs: set[str] = set(state.system_profiles.values())
    pools = [*state.objects.values(), state.spaces, *state.members.values()]
    for pool in pools:
        for obj in pool.values():
            refs.update(obj.values.values())
    refs.update(u.user_profile for u in state.users.values() if u.user_profile)
    return refs


def _usage_ok(state: CmsState, req: Req, obj_id: str) -> bool:
    usage = req.q("usageFilter")
    if usage is None:
        return True
    if usage not in {"referenced", "unreferenced"}:
        raise parameter_error("usageFilter")
    return (obj_id in referenced_ids(state)) == (usage == "referenced")


def _get_obj(state: CmsState, kind: Kind, obj_id: str) -> Obj:
    obj = state.objects[kind.plural.lower()].get(obj_id)
    if obj is None:
        raise CmsFailure(404, kind.missing)
    return obj


def generic_routes(kind: Kind) -> list[Route]:
    """List/create and read/update/delete for one generic collection."""

    def list_(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
        items = []
        tenant = req.q("tenantFilter")
        for obj in state.objects[kind.plural.lower()].values():
            if not text_filter(req, [obj.values.get(f) for f in kind.filter_fields]):
                continue
            if kind.tenant_filter and tenant and obj.values.get("tenant") != tenant:
                continue
            if kind.usage_filter and not _usage_ok(state, req, obj.id):
                continue
            items.append((obj.id, render(state, kind, obj, in_list=True)))
        return page_of(state, req, kind.plural, kind.singular, items)

    def create(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
        values = coerce_params(kind, req.form(), state.knobs, state.exists, creating=True)
        obj = Obj(id=new_id(), values={})
        for spec in kind.fields:
            if spec.default is not None and spec.exists_in(state.knobs):
                obj.values[spec.name] = spec.default
        obj.values.update({k: v for k, v in values.items() if v is not None})
        state.objects[kind.plural.lower()][obj.id] = obj
        return empty_ok(location(kind.plural, obj.id))

    def get(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
        obj = _get_obj(state, kind, ids[0])
        return object_doc(kind.singular, obj.id, render(state, kind, obj, in_list=False))

    def update(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
        obj = _get_obj(state, kind, ids[0])
        values = coerce_params(kind, req.form(), state.knobs, state.exists, creating=False)
        apply_values(obj, values)
        return empty_ok()

    def delete(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
        _get_obj(state, kind, ids[0])
        del state.objects[kind.plural.lower()][ids[0]]
        return empty_ok()

    return [
        Route((kind.plural,), {"GET": list_, "POST": create}),
        Route((kind.plural, ID), {"GET": get, "PUT": update, "DELETE": delete}),
    ]


def apply_values(obj: Obj, values: dict[str, str | None]) -> None:
    """A partial update: omitted parameters keep their value, empty ones are unset (cms-api.md §1.2)."""
    for name, value in values.items():
        if value is None:
            obj.values.pop(name, None)
        else:
            obj.values[name] = value


# ---------------------------------------------------------------------------------- users


def user_fields(state: CmsState, user: User, *, in_list: bool) -> Fields:
    """A user as ``GET /users`` (list: JID and tenant) or ``GET /users/<id>`` shows it."""
    if in_list:
        return [("userJid", user.jid), ("tenant", user.tenant)]
    profile = user.user_profile
    if profile is None and state.knobs.user_shows_inherited_profile:
        profile = state.effective_profile(user)
    return [
        ("userJid", user.jid),
        ("tenant", user.tenant),
        ("name", user.name),
        ("email", user.email),
        ("authenticationId", user.authentication_id or None),
        ("cdrTag", user.cdr_tag or None),
        ("userProfile", profile if state.knobs.at_least("2.0") else None),
    ]


def _user(state: CmsState, user_id: str) -> User:
    user = state.users.get(user_id)
    if user is None:
        raise CmsFailure(404, "userDoesNotExist")
    return user


def list_users(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /users`` with ``filter``, ``tenantFilter``, ``emailFilter`` and ``cdrTagFilter`` (exact)."""
    tenant, email, cdr = req.q("tenantFilter"), req.q("emailFilter"), req.q("cdrTagFilter")
    items = []
    for user in state.users.values():
        if not text_filter(req, [user.jid, user.name, user.email]):
            continue
        if tenant and user.tenant != tenant:
            continue
        if email and user.email.casefold() != email.casefold():
            continue
        if cdr and user.cdr_tag != cdr:
            continue
        items.append((user.id, user_fields(state, user, in_list=True)))
    return page_of(state, req, "users", "user", items)


def get_user(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /users/<id>``."""
    user = _user(state, ids[0])
    return object_doc("user", user.id, user_fields(state, user, in_list=False))


def refuse_user_change(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """PUT/DELETE on an LDAP user: ``invalidOperation`` (a 404 first for an unknown id)."""
    _user(state, ids[0])
    raise invalid_operation()


def user_spaces(state: CmsState, req: Req, ids: list[str]) -> LabResponse:
    """``GET /users/<id>/usercoSpaces``: the spaces the user is a member of."""
    user = _user(state, ids[0])
    items: list[tuple[str, Fields]] = [
        (member.id, [("coSpaceId", space_id)])
        for space_id, members in state.members.items()
        for member in members.values()
        if member.values.get("userJid", "").casefold() == user.jid.casefold()
    ]
    return page_of(state, req, "userCoSpaces", "userCoSpace", items)


def _refuse(_state: CmsState, _req: Req, _ids: list[str]) -> LabResponse:
    raise invalid_operation()


# ---------------------------------------------------------------------------------- system profiles

PROFILE_REFS = {
    "callLegProfile": "callLegProfiles",
    "callProfile": "callProfiles",
    "dtmfProfile": None,
    "userProfile": "userProfiles",
    "ivrBrandingProfile": None,
    "callBrandingProfile": None,
}


def get_profiles(state: CmsState, _req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/profiles``."""
    return object_doc("profiles", None, [(name, state.system_profiles.get(name)) for name in PROFILE_REFS])


def put_profiles(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``PUT /system/profiles``: attach global profiles (cms-api.md §2.3; POST is ``invalidOperation``)."""
    updates: dict[str, str | None] = {}
    for name, raw in req.form().items():
        if name not in PROFILE_REFS:
            if state.knobs.unknown_parameters == "reject":
                raise parameter_error(name, "unrecognised")
            continue
        ref = PROFILE_REFS[name]
        spec = Field(name, "ref", ref=ref) if ref else Field(name)
        updates[name] = coerce(spec, raw, state.exists)
    for name, value in updates.items():
        if value is None:
            state.system_profiles.pop(name, None)
        else:
            state.system_profiles[name] = value
    return empty_ok()


def routes() -> list[Route]:
    """Routes of this module."""
    out: list[Route] = []
    for kind in GENERIC_KINDS.values():
        out.extend(generic_routes(kind))
    refuse: Handler = _refuse
    out += [
        Route(("users",), {"GET": list_users, "POST": refuse}),
        Route(("users", ID), {"GET": get_user, "PUT": refuse_user_change, "DELETE": refuse_user_change}),
        Route(("users", ID, "usercoSpaces"), {"GET": user_spaces}),
        Route(("system", "profiles"), {"GET": get_profiles, "PUT": put_profiles, "POST": refuse}),
    ]
    return out
