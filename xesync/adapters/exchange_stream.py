"""EWS streaming notifications as wake-ups for the daemon (``Subscribe`` + ``GetStreamingEvents``).

Terminology:

- *group*: at most :data:`GROUP_SIZE` (200) room mailboxes that share one streaming connection, the
  most Microsoft allows per affinity group (product.md §5.1). The group's first room is its *anchor*:
  the connection impersonates it and names it in ``X-AnchorMailbox``.
- *stream*: one ``GetStreamingEvents`` request carrying every subscription id of a group; a chunked
  HTTP response of envelopes that ends with ``ConnectionStatus`` ``Closed`` after at most
  :data:`CONNECTION_MINUTES` (ews.md §2.8.8).
- *connect*: subscribing (when the group has no live subscriptions) and opening a stream. A
  *resumed* connect opens a stream on the subscriptions of the previous one, after the server
  closed it in order (``ConnectionStatus`` ``Closed``).
- *covered since*: the monotonic time of the connect whose catch-up began the group's unbroken
  coverage; ``None`` while the group has no live subscriptions. A room pass that began after it
  misses nothing the stream would not wake the room for (:mod:`xesync.daemon_jobs`).

Decisions:

- **Notifications only wake.** ``sync_items`` with the stored state is the truth (ews.md §1.8); a
  notification for a room asks the daemon for that room's pass, nothing more.
- **Catch-up only when events could have been missed.** New subscriptions know nothing of what
  happened before them (trap 16), so a connect that subscribed anew (the first, or after a failure
  dropped the subscriptions) wakes the whole group once (the catch-up pass). A resumed connect does
  not: Microsoft's GetStreamingEvents reference says the response "returns an array of items and
  events that have occurred in a mailbox since the last notification", i.e. a live subscription
  keeps its events between two connections. Whether a real server does is [unconfirmed] (ews.md
  §1.8 cites the maintainer's "streams do not replay missed events", about a gap without a live
  subscription); ``exchange.stream_catch_up = "every_connect"`` catches up after every connect for a
  server that drops them. The interval pass (``sync.stream_safety_interval`` while covered) stays
  the safety net.
- The catch-up is asked for when the stream's HTTP response has begun (the request is on the wire
  and the server is holding it), not before: a change between our catch-up read and the stream's
  start would otherwise be seen by neither.
- **Each group holds one pooled session of the adapter's protocol for the life of its stream**
  (trap 6): the adapter grows its pool by one per group (:meth:`ExchangeCalendarSource.reserve_sessions`),
  so passes never wait behind a stream.
- **Stopping** shuts the stream's socket down (``SHUT_RDWR``), which wakes the thread blocked in
  ``recv`` at once; closing the response object alone does not wake it. Subscriptions are not
  unsubscribed on stop: one request per room would delay a SIGTERM, and the server drops
  subscriptions that have no connection when they time out.
- A failure (refused subscribe, dropped connection, 503) never ends the group's thread: it logs
  ``ews.stream_failed``, drops the subscriptions (they may be gone with the connection), reports the
  rooms as no longer covered (their interval passes return to ``sync.interval``), waits with capped
  exponential back-off and connects again with new subscriptions.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import structlog
from exchangelib.folders import FolderCollection
from exchangelib.services import GetStreamingEvents

from xesync import events
from xesync.config.model import StreamCatchUp

GROUP_SIZE = 200  # mailboxes per streaming affinity group (product.md §5.1, [documented] S50, S51)
CONNECTION_MINUTES = 30  # the longest ConnectionTimeout EWS allows (ews.md §2.8.8)
EVENT_TYPES = ("CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent", "CopiedEvent")
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0

log = structlog.get_logger(__name__)


class StreamSource(Protocol):
    """What a group needs from the Exchange adapter (``ExchangeCalendarSource``)."""

    def streaming_account(self, room: str) -> Any:
        """The room's exchangelib ``Account`` on the adapter's protocol."""

    def reserve_sessions(self, count: int) -> None:
        """Grow the adapter's session pool by ``count`` sessions."""


class StreamHooks(Protocol):
    """Where a group reports: wake-ups, connects and drops."""

    def wake(self, rooms: Sequence[str], *, reason: str) -> None:
        """Ask for a pass over ``rooms`` (``reason``: ``notification`` or ``catch_up``)."""

    def stream_opened(self, *, reconnect: bool) -> None:
        """A group's stream is open (``reconnect``: not its first)."""

    def stream_closed(self) -> None:
        """A group's open stream ended."""

    def stream_lost(self, rooms: Sequence[str]) -> None:
        """A group's subscriptions are gone (a failure): ``rooms`` are no longer covered."""


def group_rooms(rooms: Sequence[str], size: int = GROUP_SIZE) -> list[tuple[str, ...]]:
    """``rooms`` cut into groups of at most ``size``, in order (the first of each is its anchor)."""
    if size < 1:
        raise ValueError("size must be positive")
    return [tuple(rooms[i : i + size]) for i in range(0, len(rooms), size)]


class _Stream(GetStreamingEvents):  # type: ignore[misc] # exchangelib is untyped
    """``GetStreamingEvents`` that says when its response has begun, and can be cut from another thread."""

    def __init__(self, *, on_open: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_open = on_open

    def _get_response(self, payload: Any, api_version: Any) -> Any:
        response = super()._get_response(payload=payload, api_version=api_version)
        self._on_open()
        return response

    def cut(self) -> None:
        """Shut the stream's socket down, waking the reader; a no-op when no stream is open."""
        response = self._streaming_response
        sock = getattr(getattr(getattr(response, "raw", None), "_connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class StreamGroup:
    """One group's subscriptions and stream, run by a thread of its own until :meth:`stop`."""

    def __init__(
        self,
        index: int,
        rooms: Sequence[str],
        source: StreamSource,
        hooks: StreamHooks,
        *,
        catch_up: StreamCatchUp = StreamCatchUp.NEW_SUBSCRIPTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rooms:
            raise ValueError("a group needs at least one room")
        self.index, self.rooms = index, tuple(rooms)
        self._source, self._hooks = source, hooks
        self._catch_up, self._clock = catch_up, clock
        self._fresh = False  # the subscriptions were made since the last stream opened
        #: See *covered since* in the module docstring.
        self.covered_since: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: _Stream | None = None
        self._subscriptions: dict[str, str] = {}  # subscription id -> room
        self._connects = 0
        self._open = False
        self._thread = threading.Thread(target=self._run, name=f"xesync-stream-{index}", daemon=True)

    @property
    def is_open(self) -> bool:
        """Whether the group's stream is open now."""
        return self._open

    def start(self) -> None:
        """Start the group's thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Cut the stream, end the thread and release its session (waits up to ``timeout`` seconds)."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.cut()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---------------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        delay = FIRST_BACKOFF
        while not self._stop.is_set():
            try:
                self._connect_and_read()
                delay = FIRST_BACKOFF  # the server closed the stream in order: open it again at once
            except Exception as exc:  # noqa: BLE001 - a stream must outlive any failure; polling covers the gap
                if self._stop.is_set():
                    break
                log.warning(
                    events.EWS_STREAM_FAILED, group=self.index, anchor=self.rooms[0],
                    error=type(exc).__name__, detail=str(exc)[:300], retry_in_s=delay,
                )  # fmt: skip
                # The subscriptions may be gone with the connection: make new ones next time, and
                # until their catch-up the rooms are polled at sync.interval again.
                self._subscriptions = {}
                if self.covered_since is not None:
                    self.covered_since = None
                    self._hooks.stream_lost(self.rooms)
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    def _connect_and_read(self) -> None:
        if not self._subscriptions:
            self._subscriptions = dict(self._subscribe())
            self._fresh = True
        anchor = self._source.streaming_account(self.rooms[0])
        policy = anchor.protocol.config.retry_policy
        if callable(getattr(policy, "start_call", None)):
            policy.start_call()  # a fresh back-off budget for this thread (exchange_session)
        stream = _Stream(account=anchor, on_open=self._opened)
        with self._lock:
            if self._stop.is_set():
                return
            self._stream = stream
        try:
            for notification in self._notifications(stream):
                rooms = self._rooms_of(notification)
                if rooms:
                    self._hooks.wake(rooms, reason="notification")
        finally:
            with self._lock:
                self._stream = None
            with contextlib.suppress(Exception):
                stream.stop_streaming()  # closes the response and gives the session back to the pool
            if self._open:
                self._open = False
                self._hooks.stream_closed()
                log.info(events.EWS_STREAM_CLOSED, group=self.index, anchor=self.rooms[0])

    def _notifications(self, stream: _Stream) -> Iterator[Any]:
        yield from stream.call(
            subscription_ids=list(self._subscriptions), connection_timeout=CONNECTION_MINUTES
        )

    def _subscribe(self) -> Iterator[tuple[str, str]]:
        for room in self.rooms:
            if self._stop.is_set():
                return
            account = self._source.streaming_account(room)
            # Through FolderCollection, not ``Folder.subscribe_to_streaming``: that one requires a
            # resolved folder id, and the adapter names the calendar by its DistinguishedFolderId
            # (no GetFolder per room), which Subscribe accepts as well (ews.md §2.8.7).
            folders = FolderCollection(account=account, folders=[account.calendar])
            subscription = folders.subscribe_to_streaming(event_types=EVENT_TYPES)
            yield str(subscription), room

    def _opened(self) -> None:
        reconnect = self._connects > 0
        self._connects += 1
        self._open = True
        catch_up = self._fresh or self._catch_up is StreamCatchUp.EVERY_CONNECT
        self._fresh = False
        log.info(
            events.EWS_STREAM_CONNECTED, group=self.index, anchor=self.rooms[0], rooms=len(self.rooms),
            reconnect=reconnect, catch_up=catch_up,
        )  # fmt: skip
        self._hooks.stream_opened(reconnect=reconnect)
        if catch_up:
            # New subscriptions (or a server that drops events between connections): what changed
            # before this stream began is found by this pass, and coverage starts now.
            self.covered_since = self._clock()
            self._hooks.wake(self.rooms, reason="catch_up")

    def _rooms_of(self, notification: Any) -> list[str]:
        changed = [e for e in notification.events or () if type(e).__name__ != "StatusEvent"]
        room = self._subscriptions.get(str(notification.subscription_id))
        return [room] if changed and room is not None else []


class StreamSet:
    """Every group's stream for a set of rooms; :meth:`close` stops them all."""

    def __init__(
        self,
        rooms: Sequence[str],
        source: StreamSource,
        hooks: StreamHooks,
        *,
        size: int = GROUP_SIZE,
        catch_up: StreamCatchUp = StreamCatchUp.NEW_SUBSCRIPTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.groups = [
            StreamGroup(i, g, source, hooks, catch_up=catch_up, clock=clock)
            for i, g in enumerate(group_rooms(rooms, size))
        ]
        self._by_room = {room: group for group in self.groups for room in group.rooms}
        self._source = source

    def start(self) -> None:
        """Reserve one session per group and start every group's thread."""
        if not self.groups:
            return
        self._source.reserve_sessions(len(self.groups))
        for group in self.groups:
            group.start()

    def covered_since(self, room: str) -> float | None:
        """Since when ``room``'s group has been covered (see the module docstring), or ``None``."""
        group = self._by_room.get(room)
        return None if group is None else group.covered_since

    def open_count(self) -> int:
        """How many groups have their stream open now."""
        return sum(group.is_open for group in self.groups)

    def close(self) -> None:
        """Stop every group (their sockets are cut first, so this does not wait for a stream to end)."""
        for group in self.groups:
            group._stop.set()  # noqa: SLF001 - all groups first, then wait for each
        for group in self.groups:
            group.stop()
