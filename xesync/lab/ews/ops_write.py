"""Write operations: CreateItem (meetings, messages, responses, cancellations), UpdateItem, DeleteItem."""

from __future__ import annotations

from xesync.lab.ews.calendar import Occurrence, new_uid, series_starts
from xesync.lab.ews.context import Context
from xesync.lab.ews.parse import TIME_FIELDS, RequestError, apply_fields, delete_field, parse_item_ref
from xesync.lab.ews.render import Shape, render
from xesync.lab.ews.store import Item, Override
from xesync.lab.ews.xml import Element, child, children, error, local, m, operation_response, sub, success, t

ID_ONLY = Shape(fields=frozenset(), id_only=True)
SEND_INVITES = frozenset(
    {"SendOnlyToAll", "SendToAllAndSaveCopy", "SendOnlyToChanged", "SendToChangedAndSaveCopy"}
)
REPLIES = {"AcceptItem": "Accept", "DeclineItem": "Decline", "TentativelyAcceptItem": "Tentative"}
REPLY_ERROR = {"Accept": "Accept", "Decline": "Decline", "Tentative": "Tentative"}


def _normalise_series(item: Item) -> None:
    """A master's Start/End are its first occurrence's, whatever the client sent."""
    if item.recurrence is None or item.start is None or item.end is None:
        return
    starts = series_starts(item.recurrence, item.start, item.start_tz)
    if not starts:
        raise RequestError("ErrorOccurrenceCrossingBoundary", "The recurrence pattern has no occurrences.")
    duration = item.end - item.start
    item.start, item.end = starts[0], starts[0] + duration


def _saved_folder(ctx: Context, req: Element, default: str) -> tuple[str, str]:
    ref = children(child(req, "SavedItemFolderId"))
    if ref:
        return ctx.resolve_folder(ref[0])
    if ctx.acting is None:
        raise RequestError("ErrorNonExistentMailbox", "The caller has no mailbox.")
    return ctx.acting, default


def create_item(ctx: Context, req: Element) -> Element:
    """``CreateItem``: one message per item, in order."""
    resp, msgs = operation_response("CreateItem")
    disposition = req.get("MessageDisposition", "SaveOnly")
    invites = req.get("SendMeetingInvitations", "SendToNone")
    for el in children(child(req, "Items")):
        kind = local(el)
        try:
            if kind == "CalendarItem":
                created = [_create_meeting(ctx, req, el, invites)]
            elif kind == "Message":
                created = _create_message(ctx, req, el, disposition)
            elif kind in REPLIES:
                created = _reply(ctx, el, REPLIES[kind], disposition)
            elif kind == "CancelCalendarItem":
                created = _cancel(ctx, el)
            else:
                raise RequestError(  # noqa: TRY301 - per-message errors are collected by the caller
                    "ErrorInvalidItemForOperationCreateItem", f"{kind} cannot be created here."
                )
        except RequestError as exc:
            error(msgs, "CreateItem", exc.code, exc.text)
            continue
        msg = success(msgs, "CreateItem")
        items = sub(msg, m("Items"))
        for item in created:
            render(items, ctx.store, item, ID_ONLY)
    return resp


def _create_meeting(ctx: Context, req: Element, el: Element, invites: str) -> Item:
    mailbox, folder = _saved_folder(ctx, req, "calendar")
    item = Item(id=ctx.store.new_id(), mailbox=mailbox, folder=folder)
    apply_fields(item, el, ctx.store)
    if item.start is None or item.end is None:
        raise RequestError("ErrorMissingInformation", "A calendar item needs Start and End.")
    if item.end < item.start:
        raise RequestError("ErrorCalendarEndDateIsEarlierThanStartDate", "End is earlier than Start.")
    _normalise_series(item)
    item.uid = item.uid or new_uid(ctx.now())
    item.organizer = ctx.store.person(mailbox)
    item.my_response = "Organizer"
    has_attendees = bool(item.attendees())
    item.is_meeting = has_attendees
    item.appointment_state = 1 if has_attendees else 0
    ctx.store.add(item)
    if has_attendees and invites in SEND_INVITES:
        ctx.meetings.send(item, full=True)
        ctx.store.touch(item)
    return item


def _create_message(ctx: Context, req: Element, el: Element, disposition: str) -> list[Item]:
    if ctx.acting is None:
        raise RequestError("ErrorNonExistentMailbox", "The caller has no mailbox.")
    default = "drafts" if disposition == "SaveOnly" else "sentitems"
    mailbox, folder = _saved_folder(ctx, req, default)
    msg = Item(
        id=ctx.store.new_id(), mailbox=mailbox, folder=folder, element="Message", item_class="IPM.Note"
    )
    apply_fields(msg, el, ctx.store)
    msg.sender = ctx.store.person(mailbox)
    if disposition == "SaveOnly":
        ctx.store.add(msg)
        return [msg]
    if not msg.to and not msg.cc:
        raise RequestError("ErrorInvalidRecipients", "At least one recipient is required.")
    ctx.store.record_sent(
        kind="Message",
        sender=msg.sender.email,
        to=[p.email for p in msg.to],
        cc=[p.email for p in msg.cc],
        subject=msg.subject,
        body=msg.body,
        body_type=msg.body_type,
    )
    for person in [*msg.to, *msg.cc]:
        box = ctx.store.mailbox(person.email)
        if box is None:
            continue
        copy = Item(
            id=ctx.store.new_id(),
            mailbox=box.email.casefold(),
            folder="inbox",
            element="Message",
            item_class="IPM.Note",
            subject=msg.subject,
            body=msg.body,
            body_type=msg.body_type,
            is_read=False,
        )
        copy.sender, copy.to, copy.cc = msg.sender, list(msg.to), list(msg.cc)
        ctx.store.add(copy)
    if disposition == "SendAndSaveCopy":
        ctx.store.add(msg)
    # ews.md §1.12: a sent message answers NoError with an empty m:Items.
    return []


def _reference(ctx: Context, el: Element) -> Item | Occurrence:
    ref_el = child(el, "ReferenceItemId")
    if ref_el is None:
        raise RequestError("ErrorMissingInformation", "ReferenceItemId is required.")
    ref = parse_item_ref(ref_el)
    target = ctx.lookup(ref)
    current = target.master.changekey if isinstance(target, Occurrence) else target.changekey
    if ref.changekey and ref.changekey != current:
        raise RequestError(
            ctx.settings.stale_changekey_error, "The change key is stale; read the item again."
        )
    return target


def _reply(ctx: Context, el: Element, response: str, disposition: str) -> list[Item]:
    target = _reference(ctx, el)
    item = target.master if isinstance(target, Occurrence) else target
    if item.element == "MeetingRequest" and item.associated_item_id:
        found = ctx.store.items.get(item.associated_item_id)
        if found is None:
            raise RequestError("ErrorItemNotFound", "The meeting of this request no longer exists.")
        item = found
    if item.element != "CalendarItem" or not item.is_meeting:
        raise RequestError("ErrorInvalidItemForOperationCreateItem", "Only meetings can be answered.")
    if item.my_response == "Organizer":
        raise RequestError(
            f"ErrorCalendarIsOrganizerFor{REPLY_ERROR[response]}", "The organiser cannot respond."
        )
    if item.is_cancelled:
        raise RequestError(
            f"ErrorCalendarIsCancelledFor{REPLY_ERROR[response]}", "The meeting was cancelled."
        )
    body_el = child(el, "Body")
    body = (body_el.text or "") if body_el is not None else ""
    send = disposition in {"SendOnly", "SendAndSaveCopy"}
    save_copy = disposition == "SendAndSaveCopy"
    if isinstance(target, Occurrence):
        # ews.md §3.5: an answer to one instance leaves the rest of the series as it was.
        saved = ctx.meetings.respond_occurrence(target, response, body=body, send=send, save_copy=save_copy)
    else:
        saved = ctx.meetings.respond(item, response, body=body, send=send, save_copy=save_copy)
    return [saved] if saved is not None else []


def _cancel(ctx: Context, el: Element) -> list[Item]:
    target = _reference(ctx, el)
    if isinstance(target, Occurrence):
        master = target.master
        if master.my_response != "Organizer":
            raise RequestError("ErrorCalendarIsNotOrganizer", "Only the organiser can cancel a meeting.")
        _delete_occurrence(ctx, target, send=True)
        return []
    if target.element != "CalendarItem" or target.my_response != "Organizer":
        raise RequestError("ErrorCalendarIsNotOrganizer", "Only the organiser can cancel a meeting.")
    ctx.meetings.cancel(target)
    ctx.store.move(target, "deleteditems")
    return []


def _delete_occurrence(ctx: Context, occ: Occurrence, *, send: bool) -> None:
    master = occ.master
    master.deleted_occurrences.add(occ.original_start)
    master.overrides.pop(occ.original_start, None)
    ctx.store.touch(master)
    if send and master.my_response == "Organizer" and master.attendees():
        ctx.meetings.send(master, full=True)


# ------------------------------------------------------------------------------------ UpdateItem


def update_item(ctx: Context, req: Element) -> Element:
    """``UpdateItem``: SetItemField/AppendToItemField/DeleteItemField per item."""
    resp, msgs = operation_response("UpdateItem")
    conflict = req.get("ConflictResolution", "AutoResolve")
    invites = req.get("SendMeetingInvitationsOrCancellations", "SendToNone")
    for change in children(child(req, "ItemChanges")):
        ids = [
            c for c in children(change) if local(c) in {"ItemId", "OccurrenceItemId", "RecurringMasterItemId"}
        ]
        try:
            if not ids:
                raise RequestError("ErrorInvalidIdEmpty", "ItemChange needs an id.")  # noqa: TRY301 - per-message errors are collected by the caller
            ref = parse_item_ref(ids[0])
            target = ctx.lookup(ref)
            current = target.master.changekey if isinstance(target, Occurrence) else target.changekey
            if conflict == "NeverOverwrite" and ref.changekey and ref.changekey != current:
                raise RequestError("ErrorIrresolvableConflict", "The item changed since it was read.")  # noqa: TRY301 - per-message errors are collected by the caller
            updated = _update(ctx, target, child(change, "Updates"), invites)
        except RequestError as exc:
            error(msgs, "UpdateItem", exc.code, exc.text)
            continue
        msg = success(msgs, "UpdateItem")
        render(sub(msg, m("Items")), ctx.store, updated, ID_ONLY)
        sub(sub(msg, m("ConflictResults")), t("Count"), "0")
    return resp


def _update(
    ctx: Context, target: Item | Occurrence, updates: Element | None, invites: str
) -> Item | Occurrence:
    if isinstance(target, Occurrence):
        return _update_occurrence(ctx, target, updates, invites)
    item = target
    before = {a.person.email.casefold() for a in item.attendees()}
    changed: set[str] = set()
    for upd in children(updates):
        kind = local(upd)
        if kind in {"SetItemField", "AppendToItemField"}:
            value = next(
                (
                    c
                    for c in children(upd)
                    if local(c) not in {"FieldURI", "ExtendedFieldURI", "IndexedFieldURI"}
                ),
                None,
            )
            if value is None:
                raise RequestError(
                    "ErrorIncorrectUpdatePropertyCount", "SetItemField needs one item element."
                )
            changed |= apply_fields(item, value, ctx.store)
        elif kind == "DeleteItemField":
            uri = next(iter(children(upd)), None)
            if uri is None:
                raise RequestError("ErrorIncorrectUpdatePropertyCount", "DeleteItemField needs a field.")
            changed.add(delete_field(item, uri))
    if item.start is not None and item.end is not None and item.end < item.start:
        raise RequestError("ErrorCalendarEndDateIsEarlierThanStartDate", "End is earlier than Start.")
    if changed & {"Recurrence", "Start"}:
        _normalise_series(item)
    full = bool(changed & TIME_FIELDS)
    if item.element == "CalendarItem" and item.my_response == "Organizer" and invites in SEND_INVITES:
        if full:
            item.sequence += 1
        after = {a.person.email.casefold() for a in item.attendees()}
        ctx.meetings.uninvite(item, before - after)
        only_changed = invites in {"SendOnlyToChanged", "SendToChangedAndSaveCopy"}
        ctx.meetings.send(item, full=full, recipients=(after - before) if only_changed and not full else None)
    ctx.store.touch(item)
    return item


def _update_occurrence(ctx: Context, occ: Occurrence, updates: Element | None, invites: str) -> Occurrence:
    """Modify one instance: the master gains (or updates) an Exception (``ews.md`` §3.5)."""
    master = occ.master
    scratch = Item(id="scratch", mailbox=master.mailbox, folder=master.folder)
    scratch.start, scratch.end = occ.start, occ.end
    scratch.subject = (
        occ.override.subject if occ.override and occ.override.subject is not None else master.subject
    )
    scratch.location = (
        occ.override.location if occ.override and occ.override.location is not None else master.location
    )
    scratch.body, scratch.body_type = (
        occ.override.body if occ.override and occ.override.body else (master.body, master.body_type)
    )
    changed: set[str] = set()
    for upd in children(updates):
        if local(upd) in {"SetItemField", "AppendToItemField"}:
            value = next(
                (
                    c
                    for c in children(upd)
                    if local(c) not in {"FieldURI", "ExtendedFieldURI", "IndexedFieldURI"}
                ),
                None,
            )
            if value is not None:
                changed |= apply_fields(scratch, value, ctx.store)
    if changed & {"Recurrence", "UID"}:
        raise RequestError(
            "ErrorInvalidPropertyForOperation", "An occurrence's recurrence cannot be changed."
        )
    if scratch.start is None or scratch.end is None or scratch.end < scratch.start:
        raise RequestError("ErrorCalendarEndDateIsEarlierThanStartDate", "End is earlier than Start.")
    master.overrides[occ.original_start] = Override(
        start=scratch.start,
        end=scratch.end,
        subject=scratch.subject if "Subject" in changed or (occ.override and occ.override.subject) else None,
        location=scratch.location
        if "Location" in changed or (occ.override and occ.override.location)
        else None,
        body=(scratch.body, scratch.body_type)
        if "Body" in changed or (occ.override and occ.override.body)
        else None,
        my_response=occ.override.my_response if occ.override else None,
        responses=dict(occ.override.responses) if occ.override else {},
    )
    ctx.store.touch(master)
    if master.my_response == "Organizer" and invites in SEND_INVITES and master.attendees():
        ctx.meetings.send_occurrence(master, occ.original_start, full=bool(changed & TIME_FIELDS))
    occ.override = master.overrides[occ.original_start]
    occ.start, occ.end = scratch.start, scratch.end
    return occ


# ------------------------------------------------------------------------------------ DeleteItem


def delete_item(ctx: Context, req: Element) -> Element:
    """``DeleteItem``: hard, soft or to Deleted Items; organisers' meetings send cancellations."""
    resp, msgs = operation_response("DeleteItem")
    delete_type = req.get("DeleteType", "MoveToDeletedItems")
    cancellations = req.get("SendMeetingCancellations", "SendToNone")
    send = cancellations in {"SendOnlyToAll", "SendToAllAndSaveCopy"}
    for ref_el in children(child(req, "ItemIds")):
        try:
            target = ctx.lookup_el(ref_el)
            if isinstance(target, Occurrence):
                _delete_occurrence(ctx, target, send=send)
            else:
                if send and target.element == "CalendarItem" and target.my_response == "Organizer":
                    ctx.meetings.cancel(target)
                if delete_type == "MoveToDeletedItems" and target.folder != "deleteditems":
                    ctx.store.move(target, "deleteditems")
                else:
                    ctx.store.delete(target)
        except RequestError as exc:
            error(msgs, "DeleteItem", exc.code, exc.text)
            continue
        success(msgs, "DeleteItem")
    return resp
