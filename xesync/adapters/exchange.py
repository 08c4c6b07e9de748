"""``ExchangeCalendarSource``: room calendars over EWS with exchangelib 5.6 (ports.CalendarSource).

Decisions, each with its reason (connection set-up: :mod:`xesync.adapters.exchange_session`):

- **One Account per room**, made lazily under a lock and pinned to the adapter's own protocol, so the
  engine may run different rooms in parallel threads (up to ``exchange.max_connections`` sessions);
  one room's passes are serialised by a per-room lock (the folder object holds the sync state).
- **Cost** (issue 10). ``SyncFolderItems`` cannot return bodies or attendees (MS SyncFolderItems
  Remarks), so a pass is ``SyncFolderItems`` (ids only) + ``GetItem`` (chunks of 100) for what
  changed; an idle pass is the single ``SyncFolderItems``. Series are expanded by one calendar view
  per pass (``FindItem`` with ``type`` only, then ``GetItem`` of the instances' UID and times).
  xesync's own writes (the dial-in body) come back from ``SyncFolderItems`` as updates; the engine
  passes the changekeys it stored (``known``), and an update still carrying one is not read again.
- **The calendar by its DistinguishedFolderId.** exchangelib's ``account.calendar`` resolves the
  root and then the calendar folder (two ``GetFolder`` per room before the first sync; at 5,000 rooms
  10,000 requests). ``SyncFolderItems``, ``FindItem`` and ``Subscribe`` take
  ``<t:DistinguishedFolderId Id="calendar"><t:Mailbox>`` as well, so the account's root and
  calendar are set to unresolved distinguished folders and the room's first request is its
  ``SyncFolderItems``. The calendar's real folder id is needed only to tell a re-read item in the
  calendar from one moved to Deleted Items (:meth:`ExchangeCalendarSource.item`), and by
  ``xesync check`` (:meth:`ExchangeCalendarSource.calendar_id`); it is asked for then, once per room
  and process (one ``GetFolder``). Streams subscribe to the distinguished calendar. Impersonation and
  ``X-AnchorMailbox`` come from the account, as before.
- **Retries.** Throttling is left to exchangelib's (bounded) FaultTolerance. Dropped connections are
  raised at once with one pooled session (ews.md §4 trap 8), so reads are tried once more; writes
  never are: the next pass sees whether they landed.
- Errors are translated once, in :mod:`xesync.adapters.exchange_errors`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from exchangelib import (
    DELEGATE,
    IMPERSONATION,
    UTC,
    Account,
    Body,
    CalendarItem,
    EWSDateTime,
    HTMLBody,
    Mailbox,
    Message,
)
from exchangelib.errors import (
    ErrorInvalidSyncStateData,
    ErrorTimeoutExpired,
)
from exchangelib.folders import Calendar
from exchangelib.items import SEND_ONLY

from xesync import events
from xesync.adapters.exchange_errors import ews_errors
from xesync.adapters.exchange_folders import _distinguished_calendar, _drain, _fetch, _view
from xesync.adapters.exchange_items import (
    INSTANCE_TYPES,
    ITEM_FIELDS,
    MASTER,
    OCCURRENCE_FIELDS,
    to_occurrences,
    to_room_item,
)
from xesync.adapters.exchange_session import (
    BoundedFaultTolerance,
    build_configuration,
    own_protocol,
    release_protocol,
)
from xesync.config.model import ExchangeConfig, RoomConfig
from xesync.errors import ConfigError, ServiceUnavailableError
from xesync.meetings import ItemRef, Mail, RoomChanges, RoomItem

T = TypeVar("T")

READ_ATTEMPTS = 2


class ExchangeCalendarSource:
    """Room mailbox calendars read and answered through EWS (see the module docstring).

    :param exchange: the ``[exchange]`` section.
    :param rooms: the configured rooms; calls for any other room raise ``ConfigError``.
    :param lookahead: ``sync.lookahead``: a calendar view never spans more than this.
    :param logger: a structlog logger (the daemon's); this module's own by default.
    """

    def __init__(
        self,
        exchange: ExchangeConfig,
        rooms: Sequence[RoomConfig],
        lookahead: timedelta,
        *,
        logger: Any = None,
    ) -> None:
        self._exchange = exchange
        self._rooms = {room.email.lower(): room for room in rooms}
        self._lookahead = lookahead
        self._log = logger if logger is not None else structlog.get_logger(__name__)
        self._policy = BoundedFaultTolerance(max_wait=exchange.max_wait.total_seconds())
        self._config = build_configuration(exchange, self._policy)
        self._access_type = IMPERSONATION if exchange.impersonation else DELEGATE
        self._lock = threading.Lock()
        self._room_locks = {key: threading.Lock() for key in self._rooms}
        self._protocol: Any = None
        self._accounts: dict[str, Any] = {}
        self._calendar_ids: dict[str, str] = {}  # room key -> the calendar's real folder id
        self._reserved = 0  # sessions held by streams (xesync.adapters.exchange_stream)

    # ------------------------------------------------------------------------------ plumbing

    def _room_key(self, room: str) -> str:
        key = room.lower()
        if key not in self._rooms:
            names = ", ".join(sorted(self._rooms)) or "none"
            raise ConfigError([f"room {room!r} is not configured; configured rooms: {names}"])
        return key

    def _account(self, key: str) -> Any:
        with self._lock:
            account = self._accounts.get(key)
            if account is None:
                if self._protocol is None:
                    self._protocol = own_protocol(self._config, self._exchange)
                    self._protocol.max_connections = self._exchange.max_connections + self._reserved
                account = Account(
                    primary_smtp_address=self._rooms[key].email,
                    config=self._config,
                    autodiscover=False,
                    access_type=self._access_type,
                    default_timezone=UTC,  # naive response values are read as UTC (ews.md §4 trap 26)
                )
                account.protocol = self._protocol
                _distinguished_calendar(account)
                self._accounts[key] = account
            return account

    def _calendar_id(self, key: str) -> str:
        """The calendar's real folder id: one ``GetFolder`` per room and process, only when needed.

        The resolved folder replaces the account's distinguished one; it keeps the distinguished id
        (exchangelib copies it over), so requests still name the calendar the same way.
        """
        with self._lock:
            found = self._calendar_ids.get(key)
        if found is None:
            account = self._account(key)
            resolved = Calendar.resolve(account=account, folder=account.calendar)
            account.calendar = resolved
            found = str(resolved.id)
            with self._lock:
                self._calendar_ids[key] = found
        return found

    def _call(self, key: str, fn: Callable[[], T], *, item_id: str | None = None, retry: bool = False) -> T:
        """Run ``fn`` with a fresh wait budget and translated errors; reads (``retry``) get a second try."""
        attempts = READ_ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            self._policy.start_call()
            try:
                with ews_errors(room=key, user=self._exchange.username, item_id=item_id):
                    return fn()
            except ServiceUnavailableError as exc:
                if attempt == attempts or not isinstance(exc.__cause__, ErrorTimeoutExpired):
                    raise
                self._log.warning(
                    events.RETRY_ATTEMPTED, service="ews", room=key, attempt=attempt, reason=exc.reason
                )
            finally:
                self._policy.end_call()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _window(self, window: tuple[datetime, datetime]) -> tuple[Any, Any]:
        start, end = window
        end = min(end, start + self._lookahead)
        return EWSDateTime.from_datetime(start), EWSDateTime.from_datetime(end)

    # ------------------------------------------------------------------------------ reads

    def changes(
        self,
        room: str,
        sync_state: str | None,
        *,
        window: tuple[datetime, datetime],
        known: Mapping[str, str] | None = None,
    ) -> RoomChanges:
        """``SyncFolderItems`` until drained, then ``GetItem`` of what changed and one ``FindItem`` view.

        See :meth:`xesync.ports.CalendarSource.changes`.
        """
        key = self._room_key(room)
        with self._room_locks[key]:
            return self._call(key, lambda: self._changes(key, sync_state, window, known or {}), retry=True)

    def _changes(
        self, key: str, sync_state: str | None, window: tuple[datetime, datetime], known: Mapping[str, str]
    ) -> RoomChanges:
        account = self._account(key)
        calendar = account.calendar
        full = sync_state is None
        try:
            changed, deleted, state = _drain(calendar, sync_state, known if sync_state else {})
        except ErrorInvalidSyncStateData:
            # ews.md §1.7, trap 15: the state is bad or expired; start over once, never loop on it.
            self._log.warning(events.EWS_SYNC_STATE_RESET, room=key)
            changed, deleted, state = _drain(calendar, None, {})
            full = True
        items = self._read_items(key, account, calendar, changed, window)
        return RoomChanges(items=items, deleted=tuple(deleted), sync_state=state, full=full)

    def item(self, room: str, item_id: str, *, window: tuple[datetime, datetime]) -> RoomItem | None:
        """``GetItem`` of one item (and a view if it is a series master); ``None`` if it is gone."""
        key = self._room_key(room)

        def read() -> RoomItem | None:
            account = self._account(key)
            calendar = account.calendar
            # A declined or deleted item may live on in Deleted Items under the same id (the lab
            # keeps ids on a move); only one still in the room's calendar counts.
            folder_id = self._calendar_id(key)
            found = self._read_items(key, account, calendar, [item_id], window, folder_id=folder_id)
            return found[0] if found else None

        return self._call(key, read, item_id=item_id, retry=True)

    def _read_items(
        self,
        key: str,
        account: Any,
        calendar: Any,
        ids: Sequence[str],
        window: tuple[datetime, datetime],
        *,
        folder_id: str | None = None,
    ) -> tuple[RoomItem, ...]:
        items = [
            got
            for got in _fetch(account, calendar, ids, ITEM_FIELDS)
            # Calendar folders hold calendar items; anything else is not a meeting.
            if isinstance(got, CalendarItem)
            and (folder_id is None or getattr(got.parent_folder_id, "id", folder_id) == folder_id)
        ]
        uids = {got.uid for got in items if got.type == MASTER}
        instances = self._instances(account, calendar, uids, window) if uids else {}
        out = []
        for got in items:
            try:
                out.append(to_room_item(key, got, to_occurrences(instances.get(got.uid, ()), window)))
            except ValueError as exc:
                # ews.md §4 trap 1: a time exchangelib could not parse. Skipped with an event; the
                # item comes again with its next change.
                self._log.error(events.EWS_ITEM_SKIPPED, room=key, item_id=got.id, reason=str(exc))
        return tuple(out)

    def _instances(
        self, account: Any, calendar: Any, uids: set[str], window: tuple[datetime, datetime]
    ) -> dict[str, list[Any]]:
        """The series instances in ``window`` whose UID is in ``uids`` (``FindItem`` view + ``GetItem``)."""
        start, end = self._window(window)
        ids = [row.id for row in _view(calendar, start, end) if row.type in INSTANCE_TYPES]
        rows: dict[str, list[Any]] = defaultdict(list)
        for got in _fetch(account, calendar, ids, OCCURRENCE_FIELDS):
            if got.uid in uids:
                rows[got.uid].append(got)
        return rows

    # ------------------------------------------------------------------------------ streaming

    def streaming_account(self, room: str) -> Any:
        """The room's exchangelib ``Account`` on this adapter's protocol (for ``Subscribe`` and streams).

        Its calendar is the unresolved distinguished folder (no request): streams subscribe through
        exchangelib's ``FolderCollection``, which accepts it (:mod:`xesync.adapters.exchange_stream`).
        """
        return self._account(self._room_key(room))

    def calendar_id(self, room: str) -> str:
        """The room's calendar folder id: one ``GetFolder`` per room and process (``xesync check``
        proves with it that the room's calendar is readable)."""
        key = self._room_key(room)
        return self._call(key, lambda: self._calendar_id(key), retry=True)

    def reserve_sessions(self, count: int) -> None:
        """Grow the session pool by ``count``: each open stream holds one (ews.md trap 6)."""
        with self._lock:
            self._reserved += count
            if self._protocol is not None:
                self._protocol.max_connections = self._exchange.max_connections + self._reserved

    # ------------------------------------------------------------------------------ writes

    def set_body(self, ref: ItemRef, body: str, *, html: bool) -> ItemRef:
        """``UpdateItem`` ``SetItemField item:Body`` (AutoResolve, SaveOnly, SendToNone, ews.md §1.11)."""
        key = self._room_key(ref.room)

        def write() -> ItemRef:
            item = CalendarItem(account=self._account(key), id=ref.item_id, changekey=ref.change_key)
            item.body = HTMLBody(body) if html else Body(body)
            # exchangelib's save() defaults are the ones wanted: ConflictResolution AutoResolve,
            # SendMeetingInvitationsOrCancellations SendToNone; update_fields keeps it to the body.
            item.save(update_fields=["body"])
            return ItemRef(key, ref.item_id, item.changekey)

        return self._call(key, write, item_id=ref.item_id)

    def accept(self, ref: ItemRef, message: str = "") -> None:
        """``CreateItem`` ``AcceptItem`` with ``MessageDisposition="SendOnly"`` (ews.md §1.10)."""
        key = self._room_key(ref.room)

        def write() -> None:
            item = CalendarItem(account=self._account(key), id=ref.item_id, changekey=ref.change_key)
            item.accept(message_disposition=SEND_ONLY, body=Body(message) if message else None)

        self._call(key, write, item_id=ref.item_id)

    def decline(self, ref: ItemRef, message: str) -> None:
        """``CreateItem`` ``DeclineItem`` with ``MessageDisposition="SendOnly"`` and the reason as body."""
        key = self._room_key(ref.room)

        def write() -> None:
            item = CalendarItem(account=self._account(key), id=ref.item_id, changekey=ref.change_key)
            item.decline(message_disposition=SEND_ONLY, body=Body(message) if message else None)

        self._call(key, write, item_id=ref.item_id)

    def send_mail(self, mail: Mail) -> None:
        """``CreateItem`` ``Message`` with ``MessageDisposition="SendOnly"``, as the room (ews.md §1.12).

        EWS carries one body per message: the HTML one when there is one, else the text.
        """
        key = self._room_key(mail.room)

        def write() -> None:
            Message(
                account=self._account(key),
                subject=mail.subject,
                body=HTMLBody(mail.html) if mail.html else Body(mail.text),
                to_recipients=[Mailbox(email_address=mail.to)],
            ).send(save_copy=False)

        self._call(key, write)

    def close(self) -> None:
        """Close the pooled sessions and drop this adapter's protocol from exchangelib's cache."""
        with self._lock:
            protocol, self._protocol = self._protocol, None
            self._accounts.clear()
        if protocol is not None:
            release_protocol(self._config, protocol)
