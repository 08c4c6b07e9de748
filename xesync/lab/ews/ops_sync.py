"""``SyncFolderItems`` and ``SyncFolderHierarchy`` with opaque, self-contained sync states.

A state records which items (and which version of each) the client has been given, for one folder. It
is base64 of compressed JSON, so it is opaque, survives a client restart, and needs no server-side
bookkeeping: Create = an item the state does not know, Update = a known item at a newer version,
Delete = a known item no longer in the folder. Paging returns at most ``MaxChangesReturned`` changes per
call with ``IncludesLastItemInRange`` false until the last batch (``ews.md`` §2.8.5).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from xesync.lab.ews.context import Context
from xesync.lab.ews.parse import RequestError, parse_shape
from xesync.lab.ews.render import render
from xesync.lab.ews.store import DISTINGUISHED, FOLDER_CLASS, FOLDER_NAME
from xesync.lab.ews.xml import (
    Element,
    child,
    children,
    error,
    m,
    operation_response,
    sub,
    success,
    t,
    text_of,
)

STATE_PREFIX = "H4sIxesync"
MAX_CHANGES = 512


class SyncStateError(ValueError):
    """A sync state that is not ours, is corrupt, or names another folder."""


def encode_state(folder: str, known: dict[str, int]) -> str:
    """Pack a state."""
    raw = json.dumps({"v": 1, "f": folder, "k": known}, separators=(",", ":"), sort_keys=True).encode()
    return STATE_PREFIX + base64.b64encode(zlib.compress(raw, 6)).decode()


def decode_state(state: str, folder: str) -> dict[str, int]:
    """Unpack a state for ``folder``.

    :raises SyncStateError: when it cannot be used.
    """
    if not state.startswith(STATE_PREFIX):
        raise SyncStateError("not a sync state of this server")
    try:
        data = json.loads(zlib.decompress(base64.b64decode(state[len(STATE_PREFIX) :], validate=True)))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise SyncStateError(str(exc)) from None
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("f") != folder:
        raise SyncStateError("the state belongs to another folder")
    known = data.get("k")
    if not isinstance(known, dict) or not all(isinstance(v, int) for v in known.values()):
        raise SyncStateError("corrupt state")
    return {str(k): int(v) for k, v in known.items()}


def _sync_error(msgs: Element, code: str, text: str) -> None:
    # Trap 3: errors keep SyncState and IncludesLastItemInRange, or exchangelib raises AttributeError.
    msg = error(msgs, "SyncFolderItems", code, text)
    sub(msg, m("SyncState"))
    sub(msg, m("IncludesLastItemInRange"), "true")


def sync_folder_items(ctx: Context, req: Element) -> Element:
    """``SyncFolderItems``: one batch of changes and the state after it."""
    resp, msgs = operation_response("SyncFolderItems")
    shape = parse_shape(child(req, "ItemShape"))
    target = children(child(req, "SyncFolderId"))
    if not target:
        _sync_error(msgs, "ErrorInvalidArgument", "SyncFolderId is required.")
        return resp
    try:
        mailbox, dist = ctx.resolve_folder(target[0])
    except RequestError as exc:
        _sync_error(msgs, exc.code, exc.text)
        return resp
    folder = ctx.store.mailboxes[mailbox].folder_ids[dist]
    state = text_of(req, "SyncState") or ""
    try:
        if "invalid_sync_state" in ctx.flags:
            raise SyncStateError("injected")  # noqa: TRY301 - per-message errors are collected by the caller
        known = decode_state(state, folder) if state else {}
    except SyncStateError:
        _sync_error(
            msgs, "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
        )
        return resp
    try:
        limit = int(text_of(req, "MaxChangesReturned") or "100")
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_CHANGES:
        _sync_error(msgs, "ErrorInvalidArgument", "MaxChangesReturned must be between 1 and 512.")
        return resp
    ignore = {el.get("Id", "") for el in children(child(req, "Ignore"))}
    current = {i.id: i for i in ctx.store.items_in(mailbox, dist)}
    deletes = sorted(k for k in known if k not in current)
    upserts = sorted(
        (i for i in current.values() if known.get(i.id) != i.version),
        key=lambda i: (i.modified, i.id),
    )
    changes: list[tuple[str, Any]] = [("Delete", k) for k in deletes] + [
        ("Create" if i.id not in known else "Update", i) for i in upserts
    ]
    batch, rest = changes[:limit], changes[limit:]
    new_known = dict(known)
    for kind, obj in batch:
        if kind == "Delete":
            new_known.pop(obj, None)
        else:
            new_known[obj.id] = obj.version
    msg = success(msgs, "SyncFolderItems")
    sub(msg, m("SyncState"), encode_state(folder, new_known))
    sub(msg, m("IncludesLastItemInRange"), "false" if rest else "true")
    out = sub(msg, m("Changes"))
    for kind, obj in batch:
        if kind == "Delete":
            sub(sub(out, t("Delete")), t("ItemId"), Id=obj, ChangeKey="")
        elif obj.id in ignore:
            continue
        else:
            render(sub(out, t(kind)), ctx.store, obj, shape)
    return resp


def sync_folder_hierarchy(ctx: Context, req: Element) -> Element:
    """``SyncFolderHierarchy``: the fixed folder set, all at once on the first sync."""
    resp, msgs = operation_response("SyncFolderHierarchy")
    mailbox = ctx.acting
    target = children(child(req, "SyncFolderId"))
    try:
        if target:
            mailbox, _ = ctx.resolve_folder(target[0])
        if mailbox is None or ctx.store.mailbox(mailbox) is None:
            raise RequestError("ErrorNonExistentMailbox", "No mailbox to synchronise.")  # noqa: TRY301 - per-message errors are collected by the caller
    except RequestError as exc:
        msg = error(msgs, "SyncFolderHierarchy", exc.code, exc.text)
        sub(msg, m("SyncState"))
        sub(msg, m("IncludesLastFolderInRange"), "true")
        return resp
    box = ctx.store.mailboxes[mailbox]
    first = not (text_of(req, "SyncState") or "")
    msg = success(msgs, "SyncFolderHierarchy")
    sub(msg, m("SyncState"), encode_state(box.folder_ids["root"], {"hierarchy": 1}))
    sub(msg, m("IncludesLastFolderInRange"), "true")
    out = sub(msg, m("Changes"))
    if first:
        for dist in DISTINGUISHED:
            if dist == "root":
                continue
            f = sub(sub(out, t("Create")), t("CalendarFolder" if dist == "calendar" else "Folder"))
            sub(f, t("FolderId"), Id=box.folder_ids[dist], ChangeKey="AQAAAA==")
            sub(f, t("ParentFolderId"), Id=box.folder_ids["root"], ChangeKey="AQAAAA==")
            sub(f, t("FolderClass"), FOLDER_CLASS[dist] or "IPF.Note")
            sub(f, t("DisplayName"), FOLDER_NAME[dist])
    return resp
