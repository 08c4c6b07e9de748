"""Read operations: ConvertId, GetFolder, FindItem (CalendarView, IndexedPageItemView) and GetItem."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any

from xesync.lab.ews.calendar import Occurrence, calendar_view, global_object_id
from xesync.lab.ews.context import Context
from xesync.lab.ews.parse import RequestError, parse_shape
from xesync.lab.ews.render import GOID_PROPS, MEETING_SET, render
from xesync.lab.ews.store import FOLDER_CLASS, FOLDER_NAME, Item
from xesync.lab.ews.xml import (
    Element,
    child,
    children,
    error,
    local,
    m,
    operation_response,
    parse_bool,
    parse_dt,
    sub,
    success,
    t,
)

FIND_COUNT_LIMIT = 1000  # EWSFindCountLimit (ews.md §1.15)


def convert_id(ctx: Context, req: Element) -> Element:
    """``ConvertId``: the version probe gets an error message with a 200 (``ews.md`` §2.8.1)."""
    resp, msgs = operation_response("ConvertId")
    fmt = req.get("DestinationFormat", "EwsId")
    for alt in children(child(req, "SourceIds")):
        mailbox = alt.get("Mailbox", "")
        if ctx.store.mailbox(mailbox) is None:
            error(
                msgs,
                "ConvertId",
                "ErrorInvalidSmtpAddress",
                "The SMTP address has no mailbox associated with it.",
            )
            continue
        msg = success(msgs, "ConvertId")
        sub(msg, m("AlternateId"), Format=fmt, Id=alt.get("Id", ""), Mailbox=mailbox)
    return resp


def get_folder(ctx: Context, req: Element) -> Element:
    """``GetFolder``: one message per folder, in request order."""
    resp, msgs = operation_response("GetFolder")
    for ref in children(child(req, "FolderIds")):
        try:
            mailbox, dist = ctx.resolve_folder(ref)
        except RequestError as exc:
            error(msgs, "GetFolder", exc.code, exc.text)
            continue
        box = ctx.store.mailboxes[mailbox]
        msg = success(msgs, "GetFolder")
        folders = sub(msg, m("Folders"))
        tag = "CalendarFolder" if dist == "calendar" else "Folder"
        f = sub(folders, t(tag))
        sub(f, t("FolderId"), Id=box.folder_ids[dist], ChangeKey="AQAAAA==")
        if dist != "root":
            sub(f, t("ParentFolderId"), Id=box.folder_ids["root"], ChangeKey="AQAAAA==")
        if FOLDER_CLASS[dist]:
            sub(f, t("FolderClass"), FOLDER_CLASS[dist])
        sub(f, t("DisplayName"), FOLDER_NAME[dist])
        items = ctx.store.items_in(mailbox, dist)
        sub(f, t("TotalCount"), str(len(items)))
        sub(f, t("ChildFolderCount"), str(len(FOLDER_NAME) - 1 if dist == "root" else 0))
        if dist != "calendar":
            sub(f, t("UnreadCount"), str(sum(1 for i in items if not i.is_read)))
        sub(f, t("DistinguishedFolderId"), dist)
    return resp


# ------------------------------------------------------------------------------------ restrictions


def _field_value(item: Item, uri: str) -> Any:
    values: dict[str, Any] = {
        "item:Subject": item.subject,
        "item:ItemClass": item.item_class,
        "item:Sensitivity": item.sensitivity,
        "item:Importance": item.importance,
        "item:Categories": item.categories,
        "item:DateTimeCreated": item.created,
        "item:DateTimeReceived": item.created,
        "item:LastModifiedTime": item.modified,
        "item:Body": item.body,
        "calendar:Start": item.start,
        "calendar:End": item.end,
        "calendar:Location": item.location,
        "calendar:UID": item.uid,
        "calendar:IsCancelled": item.is_cancelled,
        "calendar:IsAllDayEvent": item.is_all_day,
        "calendar:IsMeeting": item.is_meeting,
        "calendar:IsRecurring": False,
        "calendar:LegacyFreeBusyStatus": item.free_busy,
        "calendar:MyResponseType": item.my_response,
        "calendar:CalendarItemType": "RecurringMaster" if item.recurrence else "Single",
        "calendar:AppointmentState": item.appointment_state,
        "calendar:AppointmentSequenceNumber": item.sequence,
        "message:IsRead": item.is_read,
    }
    return values.get(uri)


def _operand(item: Item, el: Element) -> tuple[bool, Any]:
    """``(known, value)`` of the property a comparison names."""
    name = local(el)
    if name == "FieldURI":
        uri = el.get("FieldURI", "")
        return uri in _SEARCHABLE, _field_value(item, uri)
    if name == "ExtendedFieldURI":
        set_id = (el.get("DistinguishedPropertySetId") or "").lower()
        prop_id = el.get("PropertyId")
        if set_id == MEETING_SET.lower() and prop_id in GOID_PROPS:
            return True, global_object_id(item.uid) if item.uid else None
        key = (
            el.get("DistinguishedPropertySetId") or el.get("PropertySetId") or "",
            prop_id or el.get("PropertyName") or el.get("PropertyTag") or "",
            el.get("PropertyType", "String"),
        )
        return True, item.extended.get(key)
    return False, None


_SEARCHABLE = frozenset(
    {
        "item:Subject",
        "item:ItemClass",
        "item:Sensitivity",
        "item:Importance",
        "item:Categories",
        "item:DateTimeCreated",
        "item:DateTimeReceived",
        "item:LastModifiedTime",
        "item:Body",
        "calendar:Start",
        "calendar:End",
        "calendar:Location",
        "calendar:IsCancelled",
        "calendar:IsAllDayEvent",
        "calendar:IsMeeting",
        "calendar:IsRecurring",
        "calendar:LegacyFreeBusyStatus",
        "calendar:MyResponseType",
        "calendar:CalendarItemType",
        "calendar:AppointmentState",
        "calendar:AppointmentSequenceNumber",
        "message:IsRead",
    }
)


def _coerce(value: Any, raw: str) -> Any:
    if isinstance(value, bool):
        return parse_bool(raw)
    if isinstance(value, datetime):
        return parse_dt(raw)
    if isinstance(value, int):
        return int(raw)
    if isinstance(value, bytes):
        return base64.b64decode(raw)
    return raw


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return op == "IsNotEqualTo"
    if isinstance(left, list):
        return (
            (right in left) if op == "IsEqualTo" else (right not in left if op == "IsNotEqualTo" else False)
        )
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.casefold(), right.casefold()
    ops = {
        "IsEqualTo": lambda a, b: a == b,
        "IsNotEqualTo": lambda a, b: a != b,
        "IsGreaterThan": lambda a, b: a > b,
        "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
        "IsLessThan": lambda a, b: a < b,
        "IsLessThanOrEqualTo": lambda a, b: a <= b,
    }
    return bool(ops[op](left, right))


def matches(item: Item, expr: Element) -> bool:
    """Evaluate a restriction expression against an item.

    :raises RequestError: ``ErrorUnsupportedPathForQuery`` for an unsearchable property.
    """
    name = local(expr)
    if name == "And":
        return all(matches(item, c) for c in children(expr))
    if name == "Or":
        return any(matches(item, c) for c in children(expr))
    if name == "Not":
        inner = children(expr)
        return not matches(item, inner[0]) if inner else True
    parts = children(expr)
    if not parts:
        raise RequestError("ErrorInvalidRestriction", f"{name} has no operand")
    known, value = _operand(item, parts[0])
    if not known:
        raise RequestError(
            "ErrorUnsupportedPathForQuery", f"{parts[0].get('FieldURI')} cannot be used in a query"
        )
    if name == "Exists":
        return value is not None
    constant = child(child(expr, "FieldURIOrConstant"), "Constant")
    if constant is None:
        constant = child(expr, "Constant")
    raw = constant.get("Value", "") if constant is not None else ""
    if name == "Contains":
        mode = expr.get("ContainmentMode", "Substring")
        ignore_case = "IgnoreCase" in expr.get("ContainmentComparison", "Exact")
        hay, needle = str(value or ""), raw
        if ignore_case:
            hay, needle = hay.casefold(), needle.casefold()
        return {
            "FullString": hay == needle,
            "Prefixed": hay.startswith(needle),
            "Substring": needle in hay,
            "PrefixOnWords": any(w.startswith(needle) for w in hay.split()),
            "ExactPhrase": needle in hay,
        }.get(mode, needle in hay)
    if name not in {
        "IsEqualTo",
        "IsNotEqualTo",
        "IsGreaterThan",
        "IsGreaterThanOrEqualTo",
        "IsLessThan",
        "IsLessThanOrEqualTo",
    }:
        raise RequestError("ErrorInvalidRestriction", f"unsupported restriction {name}")
    try:
        right = _coerce(value, raw) if value is not None else raw
    except (ValueError, TypeError, binascii.Error):
        raise RequestError("ErrorInvalidValueForProperty", f"bad constant {raw!r}") from None
    return _compare(name, value, right)


# ------------------------------------------------------------------------------------ FindItem


def _sort_key(uri: str) -> Callable[[Item], tuple[bool, Any]]:
    def key(item: Item) -> tuple[bool, Any]:
        value = _field_value(item, uri)
        return (value is None, value if value is not None else "")

    return key


def _sort(items: list[Item], order: Element | None) -> list[Item]:
    items = sorted(items, key=lambda i: (i.created, i.id))
    for field in reversed(children(order, "FieldOrder")):
        uri_el = child(field, "FieldURI")
        uri = uri_el.get("FieldURI", "") if uri_el is not None else ""
        reverse = field.get("Order", "Ascending") == "Descending"
        items.sort(key=_sort_key(uri), reverse=reverse)
    return items


def find_item(ctx: Context, req: Element) -> Element:
    """``FindItem`` over one or more folders."""
    resp, msgs = operation_response("FindItem")
    shape = parse_shape(child(req, "ItemShape"))
    view = child(req, "CalendarView")
    paged = child(req, "IndexedPageItemView")
    restriction = child(req, "Restriction")
    for ref in children(child(req, "ParentFolderIds")):
        try:
            mailbox, dist = ctx.resolve_folder(ref)
            if view is not None:
                _calendar_view(ctx, msgs, shape, view, restriction, mailbox)
            elif paged is not None or child(req, "FractionalPageItemView") is None:
                _indexed(ctx, msgs, shape, paged, restriction, child(req, "SortOrder"), mailbox, dist)
            else:
                raise RequestError(  # noqa: TRY301 - per-message errors are collected by the caller
                    "ErrorInvalidOperation", "Only CalendarView and IndexedPageItemView are served."
                )
        except RequestError as exc:
            error(msgs, "FindItem", exc.code, exc.text)
    return resp


def _calendar_view(  # noqa: PLR0917
    ctx: Context, msgs: Element, shape: Any, view: Element, restriction: Element | None, mailbox: str
) -> None:
    if restriction is not None:
        raise RequestError(
            "ErrorInvalidOperation", "Restrictions and sort order may not be specified for a CalendarView."
        )
    start = parse_dt(view.get("StartDate"))
    end = parse_dt(view.get("EndDate"))
    if start is None or end is None or end < start:
        raise RequestError("ErrorInvalidArgument", "CalendarView needs StartDate <= EndDate.")
    found = calendar_view(ctx.store, mailbox, start, end)
    total = len(found)
    limit = view.get("MaxEntriesReturned")
    last = True
    if limit is not None and limit.isdigit() and int(limit) < total:
        # ews.md §2.8.3: a CalendarView cannot page; truncated by MaxEntriesReturned it says false.
        found = found[: int(limit)]
        last = False
    msg = success(msgs, "FindItem")
    # Trap 4: always "true" unless MaxEntriesReturned truncated the view.
    root = sub(
        msg, m("RootFolder"), TotalItemsInView=str(total), IncludesLastItemInRange="true" if last else "false"
    )
    items = sub(root, t("Items"))
    for obj in found:
        render(items, ctx.store, obj, shape)


def _indexed(  # noqa: PLR0917
    ctx: Context,
    msgs: Element,
    shape: Any,
    paged: Element | None,
    restriction: Element | None,
    order: Element | None,
    mailbox: str,
    dist: str,
) -> None:
    candidates = ctx.store.items_in(mailbox, dist)
    if restriction is not None:
        exprs = children(restriction)
        if exprs:
            candidates = [i for i in candidates if matches(i, exprs[0])]
    candidates = _sort(candidates, order)
    total = len(candidates)
    try:
        size = int(paged.get("MaxEntriesReturned", "1000")) if paged is not None else 1000
        offset = int(paged.get("Offset", "0")) if paged is not None else 0
    except ValueError:
        raise RequestError("ErrorInvalidArgument", "bad paging values") from None
    if size > FIND_COUNT_LIMIT and total > FIND_COUNT_LIMIT:
        raise RequestError("ErrorExceededFindCountLimit", "The view exceeds the find count limit.")
    if paged is not None and paged.get("BasePoint") == "End":
        page = candidates[max(0, total - offset - size) : max(0, total - offset)]
    else:
        page = candidates[offset : offset + size]
    next_offset = offset + len(page)
    msg = success(msgs, "FindItem")
    root = sub(
        msg,
        m("RootFolder"),
        IndexedPagingOffset=str(next_offset),
        TotalItemsInView=str(total),
        IncludesLastItemInRange="true" if next_offset >= total else "false",
    )
    items = sub(root, t("Items"))
    for obj in page:
        render(items, ctx.store, obj, shape)


# ------------------------------------------------------------------------------------ GetItem


def get_item(ctx: Context, req: Element) -> Element:
    """``GetItem``: one message per id, in order; missing ids answer ``ErrorItemNotFound``."""
    resp, msgs = operation_response("GetItem")
    shape = parse_shape(child(req, "ItemShape"))
    for ref in children(child(req, "ItemIds")):
        try:
            obj: Item | Occurrence = ctx.lookup_el(ref)
        except RequestError as exc:
            error(msgs, "GetItem", exc.code, exc.text)
            continue
        msg = success(msgs, "GetItem")
        render(sub(msg, m("Items")), ctx.store, obj, shape)
    return resp
