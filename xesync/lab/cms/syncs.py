"""``/ldapSyncs``: queue LDAP syncs and run them one at a time on a worker thread (cms-api.md §2.7).

A POSTed sync is ``pending`` until the worker takes it (only then can DELETE cancel it), then
``inProgress``, then ``complete`` or ``failed`` with a ``failureReason``. With
``removeWhenFinished=true`` (the default) the record disappears when it finishes, so a client that
wants the result sends ``false`` and polls.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from xesync import events
from xesync.lab.cms import ldapsync
from xesync.lab.cms.routing import ID, Req, Route, location, page_of
from xesync.lab.cms.schema import Field, coerce
from xesync.lab.cms.state import CmsState, Obj, new_id
from xesync.lab.cms.wire import CmsFailure, Fields, as_bool, empty_ok, object_doc
from xesync.lab.http import LabResponse

log = structlog.get_logger(__name__)

MAX_QUEUED = 10


def execute(state: CmsState, tenant: str | None, source: str | None) -> dict[str, Any]:
    """Run one sync now (directory I/O outside the lock); returns the ldapSync's result fields."""
    try:
        with state.lock:
            plans = ldapsync.plan(state, tenant, source)
            in_chain = state.knobs.ldap_in_chain
        records = ldapsync.fetch(plans, in_chain)
        with state.lock:
            imported = ldapsync.apply(state, plans, records, full=not tenant and not source)
        result: dict[str, Any] = {
            "state": "complete",
            "numUsersImported": imported,
            "numLdapSourcesComplete": len(plans),
        }
        log.info(events.LAB_LDAP_SYNCED, users=imported, sources=len(plans))
    except ldapsync.SyncFailedError as exc:
        result = {"state": "failed", "failureReason": exc.reason, "numUsersImported": 0}
        log.warning(events.LAB_LDAP_SYNC_FAILED, reason=exc.reason, detail=exc.detail)
    with state.lock:
        state.last_ldap_sync = result
    return result


class SyncRunner:
    """The worker that runs queued ldapSyncs of one :class:`CmsState`."""

    def __init__(self, state: CmsState) -> None:
        self.state = state
        self._queue: list[str] = []
        self._thread: threading.Thread | None = None

    def submit(self, sync: Obj) -> None:
        """Queue a sync (caller holds the state lock) and make sure the worker runs."""
        self._queue.append(sync.id)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="lab-cms-ldapsync", daemon=True)
            self._thread.start()

    def pending(self) -> int:
        """How many syncs wait."""
        return len(self._queue)

    def cancel(self, sync_id: str) -> bool:
        """Drop a sync that has not started."""
        if sync_id in self._queue:
            self._queue.remove(sync_id)
            return True
        return False

    def _work(self) -> None:
        while True:
            with self.state.lock:
                if not self._queue:
                    return
                sync = self.state.ldap_syncs.get(self._queue.pop(0))
                if sync is None:
                    continue
                sync.values["state"] = "inProgress"
                tenant, source = sync.values.get("tenant"), sync.values.get("ldapSource")
            result = execute(self.state, tenant, source)
            with self.state.lock:
                if sync.values.get("removeWhenFinished") == "true":
                    self.state.ldap_syncs.pop(sync.id, None)
                else:
                    sync.values.update({k: str(v) for k, v in result.items()})


def _runner(state: CmsState) -> SyncRunner:
    runner = state.ldap_runner
    if not isinstance(runner, SyncRunner):
        runner = SyncRunner(state)
        state.ldap_runner = runner
    return runner


def _fields(sync: Obj) -> Fields:
    names = ("tenant", "ldapSource", "removeWhenFinished", "state", "failureReason")
    out: list[tuple[str, str | None]] = [(n, sync.values.get(n)) for n in names]
    out += [(n, sync.values.get(n)) for n in ("numUsersImported", "numLdapSourcesComplete")]
    return out


def create_sync(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``POST /ldapSyncs [tenant=…] [ldapSource=…] [removeWhenFinished=false]``."""
    form = req.form()
    runner = _runner(state)
    if runner.pending() >= MAX_QUEUED:
        raise CmsFailure(400, "tooManyLdapSyncs")
    values = {"state": "pending", "removeWhenFinished": "true", "numUsersImported": "0"}
    for name in ("tenant", "ldapSource"):
        if form.get(name):
            values[name] = coerce(Field(name), form[name], state.exists) or ""
    if form.get("removeWhenFinished"):
        values["removeWhenFinished"] = (
            "true" if as_bool("removeWhenFinished", form["removeWhenFinished"]) else "false"
        )
    sync = Obj(id=new_id(), values=values)
    state.ldap_syncs[sync.id] = sync
    runner.submit(sync)
    return empty_ok(location("ldapSyncs", sync.id))


def list_syncs(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /ldapSyncs``."""
    return page_of(
        state, req, "ldapSyncs", "ldapSync", [(s.id, _fields(s)) for s in state.ldap_syncs.values()]
    )


def _sync(state: CmsState, sync_id: str) -> Obj:
    sync = state.ldap_syncs.get(sync_id)
    if sync is None:
        raise CmsFailure(404, "ldapSyncDoesNotExist")
    return sync


def read_sync(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /ldapSyncs/<id>``."""
    sync = _sync(state, ids[0])
    return object_doc("ldapSync", sync.id, _fields(sync))


def cancel_sync(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``DELETE /ldapSyncs/<id>``: only a sync that has not started can be cancelled."""
    sync = _sync(state, ids[0])
    if not _runner(state).cancel(sync.id):
        raise CmsFailure(400, "ldapSyncCannotBeCancelled")
    del state.ldap_syncs[sync.id]
    return empty_ok()


def routes() -> list[Route]:
    """Routes of this module."""
    return [
        Route(("ldapSyncs",), {"GET": list_syncs, "POST": create_sync}),
        Route(("ldapSyncs", ID), {"GET": read_sync, "DELETE": cancel_sync}),
    ]
