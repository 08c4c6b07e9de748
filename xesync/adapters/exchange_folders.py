"""The Exchange adapter's folder-level EWS calls: the calendar by name, SyncFolderItems, views, GetItem.

Module-level helpers of :class:`xesync.adapters.exchange.ExchangeCalendarSource` (the reasons are in
its docstring); they take exchangelib objects and return them, and translate nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from exchangelib import Mailbox
from exchangelib.errors import ErrorExceededFindCountLimit, ErrorInvalidSyncStateData, ErrorItemNotFound
from exchangelib.folders import Calendar, DistinguishedFolderId, Root

# SyncFolderItems allows 1..512 changes per call (ews.md §2.8.5); ids only, so big pages are cheap.
SYNC_BATCH = 512
# GetItem ids per request (ews.md §1.13).
FETCH_CHUNK = 100
# The shortest calendar view split further when the server's find limit is hit.
MIN_VIEW = timedelta(days=1)


def _distinguished_calendar(account: Any) -> None:
    """Give ``account`` its root and calendar as unresolved distinguished folders (no request).

    exchangelib's ``Account.root`` and ``Account.calendar`` are cached properties that ask the server
    (``GetFolder`` root, then calendar); setting them on the instance first means every request
    names the calendar as ``<t:DistinguishedFolderId Id="calendar">`` with the room's mailbox, which
    ``SyncFolderItems``, ``FindItem`` and ``Subscribe`` accept (ews.md §2.8).
    """
    mailbox = Mailbox(email_address=account.primary_smtp_address)
    root = Root(
        account=account,
        _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )
    account.root = root
    account.calendar = Calendar(
        root=root,
        _distinguished_id=DistinguishedFolderId(id=Calendar.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )


def _drain(
    calendar: Any, sync_state: str | None, known: Mapping[str, str]
) -> tuple[list[str], list[str], str]:
    """Consume ``sync_items`` fully; only then is ``item_sync_state`` the new state (ews.md §4 trap 14).

    An update whose changekey is the one in ``known`` for its id is xesync's own write: left out.
    """
    # exchangelib falls back to the folder's last state when given None (folders/base.py), which
    # would turn a requested full sync into an incremental one.
    calendar.item_sync_state = None
    changed: dict[str, None] = {}
    deleted: list[str] = []
    for kind, obj in calendar.sync_items(
        sync_state=sync_state, only_fields=[], max_changes_returned=SYNC_BATCH
    ):
        if kind in {"create", "update"}:
            if known.get(obj.id) == obj.changekey:
                changed.pop(obj.id, None)  # our own write (or a version already handled)
                continue
            changed[obj.id] = None
        elif kind == "delete":
            changed.pop(obj.id, None)
            deleted.append(obj.id)
    state = calendar.item_sync_state
    if not state:
        raise ErrorInvalidSyncStateData("SyncFolderItems returned no sync state")
    return list(changed), deleted, str(state)


def _view(calendar: Any, start: Any, end: Any) -> list[Any]:
    """One ``FindItem`` ``CalendarView`` (``type`` only); halved while the server's find limit is hit.

    A busy room over a long lookahead can hold more instances than EWSFindCountLimit (1000,
    ews.md §1.15) allows in one view; CalendarView cannot page (§2.8.3), so the window is split.
    """
    try:
        return list(calendar.view(start=start, end=end).only("type"))
    except ErrorExceededFindCountLimit:
        if end - start <= MIN_VIEW:
            raise
        middle = start + (end - start) / 2
        # An item spanning the middle appears in both halves; keep it once.
        seen: dict[str, Any] = {}
        for row in (*_view(calendar, start, middle), *_view(calendar, middle, end)):
            seen.setdefault(row.id, row)
        return list(seen.values())


def _fetch(account: Any, calendar: Any, ids: Iterable[str], fields: Sequence[str]) -> Iterable[Any]:
    """``GetItem`` in chunks; items deleted meanwhile are left out (their Delete comes next pass)."""
    wanted = [(item_id, None) for item_id in ids]
    if not wanted:
        return
    for got in account.fetch(ids=wanted, folder=calendar, only_fields=list(fields), chunk_size=FETCH_CHUNK):
        if isinstance(got, ErrorItemNotFound):
            continue
        if isinstance(got, Exception):
            raise got
        yield got
