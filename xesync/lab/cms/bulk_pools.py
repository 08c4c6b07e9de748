"""Bulk pools of coSpaces (cms-api.md §2.8): ``POST /cospaceBulkSyncs`` creates, updates or removes the
spaces a ``coSpaceBulkParameterSet`` describes, one per index of its range.

A pool space carries ``bulk_set`` and ``bulk_index`` in its meta; the sync record answers ``pending``
for the first ``bulk_sync_pending_polls`` reads (a knob), then the final status. The spaces themselves
are served by :mod:`xesync.lab.cms.spaces`, whose routes include these.
"""

from __future__ import annotations

from collections.abc import Callable

from xesync.lab.cms.routing import ID, Req, Route, location, page_of
from xesync.lab.cms.state import CmsState, Obj, new_id, new_secret
from xesync.lab.cms.wire import (
    CmsFailure,
    Fields,
    as_bool,
    empty_ok,
    expand_mapping,
    object_doc,
    parameter_error,
)
from xesync.lab.http import LabResponse


def run_bulk_sync(state: CmsState, set_id: str, remove_all: bool) -> str:
    """Create, update or remove a parameter set's pool of spaces; returns the final status."""
    pset = state.objects["cospacebulkparametersets"].get(set_id)
    if pset is None:
        return "failedNoSuchParameterSet"
    pool = {s.meta["bulk_index"]: s for s in state.spaces.values() if s.meta.get("bulk_set") == set_id}
    if remove_all:
        for space in pool.values():
            state.remove_space(space.id)
        return "complete"
    start, end = int(pset.values["startIndex"]), int(pset.values["endIndex"])
    if end < start:
        return "failedIndexRangeInvalid"
    if end - start + 1 > state.knobs.max_bulk_range:
        return "failedIndexRangeTooGreat"
    wanted: dict[int, dict[str, str]] = {}
    for index in range(start, end + 1):
        values = {}
        for param, target in (
            ("coSpaceNameMapping", "name"),
            ("coSpaceUriMapping", "uri"),
            ("coSpaceCallIdMapping", "callId"),
        ):
            template = pset.values.get(param)
            if template:
                values[target] = expand_mapping(template, _index_resolver(index))
        for param in ("tenant", "callProfile", "callLegProfile", "callBrandingProfile", "nonMemberAccess"):
            if pset.values.get(param):
                values[param] = pset.values[param]
        wanted[index] = values
    status = _bulk_conflicts(state, set_id, wanted)
    if status:
        return status
    for index, space in pool.items():
        if index not in wanted:
            state.remove_space(space.id)
    for index, values in wanted.items():
        found = pool.get(index)
        if found is None:
            found = Obj(
                id=new_id(), values={"secret": new_secret()}, meta={"bulk_set": set_id, "bulk_index": index}
            )
            state.spaces[found.id] = found
            state.members[found.id] = {}
        found.values.update(values)
    return "complete"


def _index_resolver(index: int) -> Callable[[str], str]:
    return lambda name: str(index) if name == "index" else ""


def _bulk_conflicts(state: CmsState, set_id: str, wanted: dict[int, dict[str, str]]) -> str | None:
    others = [s for s in state.spaces.values() if s.meta.get("bulk_set") != set_id]
    taken_uris = {s.values[k].casefold() for s in others for k in ("uri", "secondaryUri") if s.values.get(k)}
    taken_ids = {s.values["callId"] for s in others if s.values.get("callId")}
    seen_uris: set[str] = set()
    seen_ids: set[str] = set()
    for values in wanted.values():
        uri, call_id = values.get("uri", "").casefold(), values.get("callId", "")
        if uri and (uri in taken_uris or uri in seen_uris):
            return "failedCoSpaceUriConflict"
        if call_id and (call_id in taken_ids or call_id in seen_ids):
            return "failedCallIdConflict"
        seen_uris.add(uri)
        seen_ids.add(call_id)
    return None


def _bulk_fields(sync: Obj) -> Fields:
    polls = int(sync.meta.get("pending_polls", 0))
    status = "pending" if polls > 0 else sync.values["status"]
    sync.meta["pending_polls"] = max(0, polls - 1)
    return [("cospaceBulkParameterSet", sync.values.get("cospaceBulkParameterSet")), ("status", status)]


def create_bulk_sync(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``POST /cospaceBulkSyncs cospaceBulkParameterSet=… [removeAll=true]``."""
    form = req.form()
    set_id = form.get("cospaceBulkParameterSet", "")
    if not set_id:
        raise parameter_error("cospaceBulkParameterSet", "required")
    remove_all = as_bool("removeAll", form["removeAll"]) if form.get("removeAll") else False
    sync = Obj(
        id=new_id(),
        values={"cospaceBulkParameterSet": set_id, "status": run_bulk_sync(state, set_id, remove_all)},
        meta={"pending_polls": state.knobs.bulk_sync_pending_polls},
    )
    state.bulk_syncs[sync.id] = sync
    return empty_ok(location("cospaceBulkSyncs", sync.id))


def list_bulk_syncs(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /cospaceBulkSyncs``."""
    items = [(s.id, _bulk_fields(s)) for s in state.bulk_syncs.values()]
    return page_of(state, req, "cospaceBulkSyncs", "cospaceBulkSync", items)


def read_bulk_sync(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /cospaceBulkSyncs/<id>``: ``pending`` for the first polls, then the result."""
    sync = state.bulk_syncs.get(ids[0])
    if sync is None:
        raise CmsFailure(404, "cospaceBulkSyncDoesNotExist")
    return object_doc("cospaceBulkSync", sync.id, _bulk_fields(sync))


def delete_bulk_sync(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``DELETE /cospaceBulkSyncs/<id>`` forgets the record (the pool stays)."""
    if state.bulk_syncs.pop(ids[0], None) is None:
        raise CmsFailure(404, "cospaceBulkSyncDoesNotExist")
    return empty_ok()


def routes() -> list[Route]:
    """Routes of this module."""
    return [
        Route(("cospaceBulkSyncs",), {"GET": list_bulk_syncs, "POST": create_bulk_sync}),
        Route(("cospaceBulkSyncs", ID), {"GET": read_bulk_sync, "DELETE": delete_bulk_sync}),
    ]
