"""Notifications: pull subscriptions (``GetEvents``) and streaming ones (``GetStreamingEvents``).

Every store change reaches the :class:`Hub`, which queues it for each matching subscription. A stream
is one chunked HTTP response of complete envelopes (``ews.md`` §2.8.8): each starts ``<s:Envelope``
followed by a space (trap 5), idle periods send heartbeats, and the last envelope says ``Closed``.
A new subscription knows nothing of what happened before it (trap 16). A live subscription keeps
queuing events while no stream is open, and the next stream delivers them, as Microsoft's
GetStreamingEvents reference describes; that a real server does so is [unconfirmed], and the knob
``[ews] streaming_keeps_events = false`` makes a stream deliver only what happens after it opened.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lxml import etree

from xesync.lab.ews.context import Context
from xesync.lab.ews.parse import RequestError
from xesync.lab.ews.store import Change, Store, folder_id
from xesync.lab.ews.xml import (
    SOAP,
    Element,
    child,
    children,
    error,
    fmt_dt,
    m,
    operation_response,
    sub,
    success,
    t,
    text_of,
)

ALL_EVENTS = frozenset(
    {
        "CopiedEvent",
        "CreatedEvent",
        "DeletedEvent",
        "ModifiedEvent",
        "MovedEvent",
        "NewMailEvent",
        "FreeBusyChangedEvent",
    }
)
MAX_EVENTS_PER_NOTIFICATION = 50
POLL_S = 0.05


@dataclass(slots=True)
class Queued:
    """One event waiting for a subscriber."""

    number: int
    change: Change


@dataclass(slots=True)
class Subscription:
    """A pull or streaming subscription on some folders of one mailbox."""

    id: str
    kind: str  # pull | streaming
    mailbox: str
    folders: frozenset[str] | None  # distinguished names; None = all folders
    events: frozenset[str]
    timeout_min: int = 30
    queue: list[Queued] = field(default_factory=list)

    def wants(self, change: Change) -> bool:
        """Whether ``change`` concerns this subscription."""
        if change.mailbox != self.mailbox or change.event not in self.events:
            return False
        if self.folders is None:
            return True
        return change.folder in self.folders or (change.old_folder or "") in self.folders


class Hub:
    """Subscriptions and their queues; woken by every store change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cond = threading.Condition(store.lock)
        self.subs: dict[str, Subscription] = {}
        self.open_streams = 0
        self._numbers = itertools.count(1)
        self._close_generation = 0
        store.listeners.append(self.on_change)

    def on_change(self, change: Change) -> None:
        """Queue a change for its subscribers and wake waiting streams."""
        with self.cond:
            for sub_ in self.subs.values():
                if sub_.wants(change):
                    sub_.queue.append(Queued(next(self._numbers), change))
            self.cond.notify_all()

    def watermark(self, number: int | None = None) -> str:
        """An opaque watermark for an event number (a fresh one when ``None``)."""
        n = next(self._numbers) if number is None else number
        return "AQAAAHhlc3luYy" + format(n, "08x")

    @staticmethod
    def watermark_number(value: str) -> int | None:
        """The event number inside a watermark of ours."""
        if not value.startswith("AQAAAHhlc3luYy"):
            return None
        try:
            return int(value[14:], 16)
        except ValueError:
            return None

    def close_streams(self) -> None:
        """End every open stream at its next wake-up (control API, reset)."""
        with self.cond:
            self._close_generation += 1
            self.cond.notify_all()


# ------------------------------------------------------------------------------------ Subscribe


def subscribe(ctx: Context, req: Element) -> Element:
    """``Subscribe`` with a pull or streaming request."""
    resp, msgs = operation_response("Subscribe")
    pull = child(req, "PullSubscriptionRequest")
    stream = child(req, "StreamingSubscriptionRequest")
    spec = pull if pull is not None else stream
    try:
        if spec is None:
            raise RequestError(  # noqa: TRY301 - per-message errors are collected by the caller
                "ErrorInvalidSubscriptionRequest", "Only pull and streaming subscriptions are served."
            )
        folders: set[str] | None = set()
        mailbox = ctx.acting
        if spec.get("SubscribeToAllFolders", "false").lower() in {"true", "1"}:
            folders = None
        for ref in children(child(spec, "FolderIds")):
            mailbox, dist = ctx.resolve_folder(ref)
            if folders is not None:
                folders.add(dist)
        if mailbox is None:
            raise RequestError("ErrorNonExistentMailbox", "No mailbox to subscribe to.")  # noqa: TRY301 - per-message errors are collected by the caller
        events = (
            frozenset(e.text.strip() for e in children(child(spec, "EventTypes")) if e.text) or ALL_EVENTS
        )
        if not events <= ALL_EVENTS | {"StatusEvent"}:
            raise RequestError(  # noqa: TRY301 - per-message errors are collected by the caller
                "ErrorInvalidSubscriptionRequest", f"unknown event types {sorted(events - ALL_EVENTS)}"
            )
        timeout = int(text_of(spec, "Timeout") or "30")
    except RequestError as exc:
        error(msgs, "Subscribe", exc.code, exc.text)
        return resp
    except ValueError:
        error(msgs, "Subscribe", "ErrorInvalidArgument", "Timeout must be a number of minutes.")
        return resp
    sub_ = Subscription(
        id="SUB" + os.urandom(18).hex(),
        kind="pull" if pull is not None else "streaming",
        mailbox=mailbox,
        folders=None if folders is None else frozenset(folders),
        events=events,
        timeout_min=timeout,
    )
    ctx.hub.subs[sub_.id] = sub_
    msg = success(msgs, "Subscribe")
    sub(msg, m("SubscriptionId"), sub_.id)
    if sub_.kind == "pull":
        # A pull response without Watermark breaks exchangelib (ews.md §2.8.7).
        sub(msg, m("Watermark"), ctx.hub.watermark())
    return resp


def unsubscribe(ctx: Context, req: Element) -> Element:
    """``Unsubscribe``."""
    resp, msgs = operation_response("Unsubscribe")
    sid = text_of(req, "SubscriptionId") or ""
    if ctx.hub.subs.pop(sid, None) is None:
        error(msgs, "Unsubscribe", ctx.settings.unknown_subscription_error, "The subscription was not found.")
    else:
        success(msgs, "Unsubscribe")
    return resp


def _event_el(parent: Element, store: Store, q: Queued, watermark: str | None) -> None:
    c = q.change
    el = sub(parent, t(c.event))
    if watermark is not None:
        sub(el, t("Watermark"), watermark)
    sub(el, t("TimeStamp"), fmt_dt(c.at))
    box = store.mailboxes.get(c.mailbox)
    email = box.email if box else c.mailbox
    sub(el, t("ItemId"), Id=c.item_id, ChangeKey=c.changekey)
    sub(el, t("ParentFolderId"), Id=folder_id(email, c.folder), ChangeKey="AQAAAA==")
    if c.event == "MovedEvent":
        sub(el, t("OldItemId"), Id=c.item_id, ChangeKey=c.changekey)
        sub(el, t("OldParentFolderId"), Id=folder_id(email, c.old_folder or c.folder), ChangeKey="AQAAAA==")


def get_events(ctx: Context, req: Element) -> Element:
    """``GetEvents``: events after the watermark, at most 50, ``MoreEvents`` when more wait."""
    resp, msgs = operation_response("GetEvents")
    sid = text_of(req, "SubscriptionId") or ""
    sub_ = ctx.hub.subs.get(sid)
    if sub_ is None or sub_.kind != "pull" or sub_.mailbox != ctx.acting:
        error(msgs, "GetEvents", ctx.settings.unknown_subscription_error, "The subscription was not found.")
        return resp
    previous = text_of(req, "Watermark") or ""
    after = ctx.hub.watermark_number(previous)
    if after is None:
        error(msgs, "GetEvents", "ErrorInvalidWatermark", "The watermark is invalid.")
        return resp
    # Returned events leave the queue: exchangelib repeats GetEvents with the *same* watermark while
    # MoreEvents is true (folders/base.py::get_events), so only dequeueing lets it make progress.
    pending = [q for q in sub_.queue if q.number > after]
    batch, sub_.queue = pending[:MAX_EVENTS_PER_NOTIFICATION], pending[MAX_EVENTS_PER_NOTIFICATION:]
    msg = success(msgs, "GetEvents")
    note = sub(msg, m("Notification"))
    sub(note, t("SubscriptionId"), sid)
    sub(note, t("PreviousWatermark"), previous)
    sub(note, t("MoreEvents"), "true" if sub_.queue else "false")
    if not batch:
        status = sub(note, t("StatusEvent"))
        sub(status, t("Watermark"), ctx.hub.watermark())
    for q in batch:
        _event_el(note, ctx.store, q, ctx.hub.watermark(q.number))
    return resp


# ------------------------------------------------------------------------------------ streaming


def _stream_envelope(body: Element) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    sub(env, f"{{{SOAP}}}Body").append(body)
    # Trap 5: "<s:Envelope" must be followed by a space, never a newline; lxml writes it that way.
    return bytes(etree.tostring(env, encoding="utf-8"))


def _stream_message(status: str, notes: list[tuple[Subscription, list[Queued]]], store: Store) -> bytes:
    resp, msgs = operation_response("GetStreamingEvents")
    msg = success(msgs, "GetStreamingEvents")
    if notes:
        holder = sub(msg, m("Notifications"))
        for sub_, events in notes:
            note = sub(holder, m("Notification"))
            sub(note, t("SubscriptionId"), sub_.id)
            for q in events:
                _event_el(note, store, q, None)
    sub(msg, m("ConnectionStatus"), status)
    return _stream_envelope(resp)


def streaming_error(code: str, text: str, ids: list[str]) -> bytes:
    """The single envelope for a bad subscription id: Error, the ids, ``Closed``."""
    resp, msgs = operation_response("GetStreamingEvents")
    msg = error(msgs, "GetStreamingEvents", code, text)
    if ids:
        holder = sub(msg, m("ErrorSubscriptionIds"))
        for sid in ids:
            sub(holder, m("SubscriptionId"), sid)
    sub(msg, m("ConnectionStatus"), "Closed")
    return _stream_envelope(resp)


def _may_stream(ctx: Context, sub_: Subscription) -> bool:
    """Whether this connection may carry ``sub_``: its own mailbox's, or one its account impersonates.

    One connection carries a whole affinity group (up to 200 mailboxes) while impersonating the
    group's anchor (MS "maintain affinity between a group of subscriptions"); that the server checks
    impersonation rights per subscription, rather than the anchor only, is [unconfirmed].
    """
    if sub_.mailbox == ctx.acting:
        return True
    box = ctx.store.mailboxes.get(sub_.mailbox)
    rights = ctx.principal.impersonates
    kind = box.kind if box is not None else ""
    return rights == "all" or (rights == "rooms" and kind == "room") or (rights == "users" and kind == "user")


def open_stream(ctx: Context, req: Element, clock_now: Callable[[], datetime]) -> Iterator[bytes] | bytes:
    """Validate a ``GetStreamingEvents`` request; return the chunk iterator (or one error envelope)."""
    ids = [(s.text or "").strip() for s in children(child(req, "SubscriptionIds"))]
    hub = ctx.hub
    bad = [
        i
        for i in ids
        if i not in hub.subs or hub.subs[i].kind != "streaming" or not _may_stream(ctx, hub.subs[i])
    ]
    if not ids or bad:
        return streaming_error("ErrorInvalidSubscription", "The subscription is invalid.", bad)
    try:
        minutes = int(text_of(req, "ConnectionTimeout") or "30")
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 30:  # noqa: PLR2004
        return streaming_error("ErrorInvalidArgument", "ConnectionTimeout must be 1 to 30 minutes.", [])
    subs = [hub.subs[i] for i in ids]
    if not ctx.settings.streaming_keeps_events:
        for s in subs:
            # The knob's "off": nothing queued before this stream opened is delivered.
            s.queue.clear()
    return _stream(
        hub, subs, minutes, ctx.settings.streaming_keepalive_s, ctx.settings.streaming_minute_s, clock_now
    )


def _stream(  # noqa: PLR0917
    hub: Hub,
    subs: list[Subscription],
    minutes: int,
    keepalive_s: float,
    minute_s: float,
    clock_now: Callable[[], datetime],
) -> Iterator[bytes]:
    real_deadline = time.monotonic() + minutes * minute_s
    lab_deadline = clock_now() + timedelta(minutes=minutes)
    last_sent = time.monotonic()
    with hub.cond:
        generation = hub._close_generation  # noqa: SLF001 - the hub's own counter
        hub.open_streams += 1
    try:
        while True:
            with hub.cond:
                if not any(s.queue for s in subs):
                    hub.cond.wait(POLL_S)
                notes = []
                for s in subs:
                    if s.id not in hub.subs:
                        continue
                    events, s.queue = (
                        s.queue[:MAX_EVENTS_PER_NOTIFICATION],
                        s.queue[MAX_EVENTS_PER_NOTIFICATION:],
                    )
                    if events:
                        notes.append((s, events))
                closing = (
                    hub._close_generation != generation  # noqa: SLF001
                    or time.monotonic() >= real_deadline
                    or clock_now() >= lab_deadline
                    or not any(s.id in hub.subs for s in subs)
                )
                chunk = _stream_message("OK", notes, hub.store) if notes else None
            if chunk is not None:
                last_sent = time.monotonic()
                yield chunk
            if closing:
                yield _stream_message("Closed", [], hub.store)
                return
            if chunk is None and time.monotonic() - last_sent >= keepalive_s:
                last_sent = time.monotonic()
                yield _stream_message("OK", [], hub.store)
    finally:
        with hub.cond:
            hub.open_streams -= 1
