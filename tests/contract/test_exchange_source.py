"""The Exchange adapter on the wire: request cost, retries, faults and mailbox access (lab EWS)."""

from __future__ import annotations

import dataclasses
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from exchangelib.folders import FolderCollection
from structlog.testing import capture_logs

from xesync import events
from xesync.adapters.exchange import ExchangeCalendarSource
from xesync.config.model import RoomConfig
from xesync.errors import ExchangeAccessError, ServiceUnavailableError
from xesync.meetings import ItemRef

# ews_lab lives beside this module; pytest's importlib mode does not put this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))
import ews_lab

lab_at = ews_lab.lab_at
exchange_source = ews_lab.exchange_source
organiser = ews_lab.organiser

ROOM = ews_lab.LAB_ROOM


def window(lab):
    """Now to now plus the default lookahead."""
    now = lab.clock.now()
    return now, now + timedelta(days=180)


def ews_requests(lab):
    """``{operation: count}`` of EWS requests since the last reset."""
    return lab.requests.snapshot("ews")["ews"]["operations"]


def book_single(organiser, days=2):
    """Alice sends one one-hour meeting to the room ``days`` ahead; its UID."""
    start = organiser.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return organiser.book("Sync", start, start + timedelta(hours=1))


def source_with(lab_config, *, rooms=(), **exchange):
    """An adapter on the lab with [exchange] fields changed and extra rooms configured."""
    return ExchangeCalendarSource(
        dataclasses.replace(lab_config.exchange, **exchange), (*lab_config.rooms, *rooms), timedelta(days=180)
    )


def test_new_single_meeting_costs_two_requests_then_accept_and_body_two_more(
    lab_at, exchange_source, organiser
):
    """Warm, a new meeting is SyncFolderItems + GetItem; the body and the accept add one request each."""
    first = exchange_source.changes(ROOM, None, window=window(lab_at))
    book_single(organiser)
    lab_at.requests.reset()
    changes = exchange_source.changes(ROOM, first.sync_state, window=window(lab_at))
    assert ews_requests(lab_at) == {"SyncFolderItems": 1, "GetItem": 1}
    (item,) = changes.items
    assert item.attendees == {"bob@lab.example", ROOM}
    ref = exchange_source.set_body(ItemRef(ROOM, item.item_id, item.change_key), "Dial 1234", html=False)
    exchange_source.accept(ref)
    assert ews_requests(lab_at) == {"SyncFolderItems": 1, "GetItem": 1, "UpdateItem": 1, "CreateItem": 1}


def test_pass_without_change_costs_one_request(lab_at, exchange_source, organiser):
    """Once warm, a pass over a room with no change is exactly one SyncFolderItems."""
    book_single(organiser)
    state = exchange_source.changes(ROOM, None, window=window(lab_at)).sync_state
    lab_at.requests.reset()
    again = exchange_source.changes(ROOM, state, window=window(lab_at))
    assert again.items == ()
    assert ews_requests(lab_at) == {"SyncFolderItems": 1}


def test_series_pass_adds_one_calendar_view(lab_at, exchange_source, organiser):
    """A changed series costs one calendar view (FindItem + GetItem of its instances) on top of the pass."""
    first = exchange_source.changes(ROOM, None, window=window(lab_at))
    start = organiser.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    organiser.book("Weekly", start, start + timedelta(hours=1), weekly=3)
    lab_at.requests.reset()
    (series,) = exchange_source.changes(ROOM, first.sync_state, window=window(lab_at)).items
    assert len(series.occurrences) == 3
    assert ews_requests(lab_at) == {"SyncFolderItems": 1, "GetItem": 2, "FindItem": 1}


def test_cold_adapter_syncs_the_calendar_by_its_distinguished_id(lab_at, exchange_source):
    """A room's first pass is its SyncFolderItems: no GetFolder resolves root or calendar first."""
    state = exchange_source.changes(ROOM, None, window=window(lab_at)).sync_state
    assert ews_requests(lab_at) == {"SyncFolderItems": 1}
    exchange_source.changes(ROOM, state, window=window(lab_at))
    assert ews_requests(lab_at) == {"SyncFolderItems": 2}


def test_reading_one_item_resolves_the_calendar_once_per_room(lab_at, exchange_source, organiser):
    """item() needs the calendar's real id (to skip Deleted Items): one GetFolder, then never again."""
    book_single(organiser)
    (item,) = exchange_source.changes(ROOM, None, window=window(lab_at)).items
    lab_at.requests.reset()
    assert exchange_source.item(ROOM, item.item_id, window=window(lab_at)).uid == item.uid
    assert exchange_source.item(ROOM, item.item_id, window=window(lab_at)).uid == item.uid
    assert ews_requests(lab_at) == {"GetFolder": 1, "GetItem": 2}


def test_a_streaming_account_subscribes_with_no_get_folder(lab_at, exchange_source):
    """Streams subscribe to the distinguished calendar as the stream group does: Subscribe, no GetFolder."""
    account = exchange_source.streaming_account(ROOM)
    folders = FolderCollection(account=account, folders=[account.calendar])
    assert folders.subscribe_to_streaming(event_types=["CreatedEvent"])
    assert ews_requests(lab_at) == {"Subscribe": 1}


def test_the_calendar_id_costs_one_get_folder_per_room(lab_at, exchange_source):
    """``calendar_id`` (xesync check) resolves the calendar once per room and process."""
    first = exchange_source.calendar_id(ROOM)
    assert exchange_source.calendar_id(ROOM) == first
    assert ews_requests(lab_at) == {"GetFolder": 1}


def test_own_body_write_is_not_read_again(lab_at, exchange_source, organiser):
    """An update still carrying the changekey our body write returned is left out, and costs no GetItem."""
    book_single(organiser)
    first = exchange_source.changes(ROOM, None, window=window(lab_at))
    (item,) = first.items
    ref = exchange_source.set_body(ItemRef(ROOM, item.item_id, item.change_key), "Dial 1234", html=False)
    lab_at.requests.reset()
    mine = exchange_source.changes(
        ROOM, first.sync_state, window=window(lab_at), known={ref.item_id: ref.change_key}
    )
    assert mine.items == ()
    assert ews_requests(lab_at) == {"SyncFolderItems": 1}
    stale = exchange_source.changes(
        ROOM, first.sync_state, window=window(lab_at), known={item.item_id: item.change_key}
    )
    assert [i.item_id for i in stale.items] == [item.item_id]  # a changekey we did not store: read it


def test_known_changekeys_do_not_hide_items_on_a_full_sync(lab_at, exchange_source, organiser):
    """A full sync lists every item, known or not (a missing one would read as deleted)."""
    book_single(organiser)
    (item,) = exchange_source.changes(ROOM, None, window=window(lab_at)).items
    again = exchange_source.changes(ROOM, None, window=window(lab_at), known={item.item_id: item.change_key})
    assert [i.item_id for i in again.items] == [item.item_id]


def test_server_busy_is_retried_after_its_back_off(lab_at, exchange_source, organiser):
    """An ErrorServerBusy fault with a short back-off is waited out and retried by FaultTolerance."""
    state = exchange_source.changes(ROOM, None, window=window(lab_at)).sync_state
    uid = book_single(organiser)
    lab_at.requests.reset()
    lab_at.inject(service="ews", kind="server_busy", back_off_ms=200, count=1, operation="SyncFolderItems")
    changes = exchange_source.changes(ROOM, state, window=window(lab_at))
    assert [i.uid for i in changes.items] == [uid]
    assert ews_requests(lab_at)["SyncFolderItems"] == 2


def test_http_503_past_max_wait_is_service_unavailable(lab_at, lab_config):
    """A 503 persisting past exchange.max_wait raises ServiceUnavailableError with the server's back-off."""
    source = source_with(lab_config, max_wait=timedelta(seconds=1))
    try:
        state = source.changes(ROOM, None, window=window(lab_at)).sync_state
        lab_at.requests.reset()
        lab_at.inject(
            service="ews", kind="http_status", status=503, retry_after_s=1, operation="SyncFolderItems"
        )
        with pytest.raises(ServiceUnavailableError) as info:
            source.changes(ROOM, state, window=window(lab_at))
    finally:
        source.close()
    assert info.value.service == "ews"
    assert info.value.retry_after == 1
    # One wait of 1 s fits max_wait; the second would pass it, so two requests in all (plain
    # FaultTolerance would retry a Retry-After of 1 s for ever).
    assert ews_requests(lab_at) == {"SyncFolderItems": 2}


def test_dropped_connection_on_a_read_is_tried_once_more(lab_at, exchange_source):
    """A dropped connection (exchangelib raises it at once with one session) is retried once, logged."""
    state = exchange_source.changes(ROOM, None, window=window(lab_at)).sync_state
    lab_at.requests.reset()
    lab_at.inject(service="ews", kind="drop_connection", count=1, operation="SyncFolderItems")
    with capture_logs() as logs:
        changes = exchange_source.changes(ROOM, state, window=window(lab_at))
    assert changes.items == ()
    assert [e["event"] for e in logs if e["event"] == events.RETRY_ATTEMPTED] == [events.RETRY_ATTEMPTED]
    assert ews_requests(lab_at)["SyncFolderItems"] == 2


def test_dropped_connection_twice_is_service_unavailable(lab_at, exchange_source):
    """A read that drops twice raises ServiceUnavailableError; nothing loops."""
    state = exchange_source.changes(ROOM, None, window=window(lab_at)).sync_state
    lab_at.inject(service="ews", kind="drop_connection", count=2, operation="SyncFolderItems")
    with pytest.raises(ServiceUnavailableError):
        exchange_source.changes(ROOM, state, window=window(lab_at))


def test_invalid_sync_state_resets_with_an_event(lab_at, exchange_source, organiser):
    """ErrorInvalidSyncStateData starts the room over: full=True, every item, ews.sync_state_reset logged."""
    uid = book_single(organiser)
    state = exchange_source.changes(ROOM, None, window=window(lab_at)).sync_state
    lab_at.inject(service="ews", kind="invalid_sync_state", count=1, operation="SyncFolderItems")
    with capture_logs() as logs:
        changes = exchange_source.changes(ROOM, state, window=window(lab_at))
    assert changes.full is True
    assert [i.uid for i in changes.items] == [uid]
    assert {"event": events.EWS_SYNC_STATE_RESET, "room": ROOM, "log_level": "warning"} in logs


def test_mailbox_outside_the_impersonation_scope_is_an_access_error(lab_at, lab_config):
    """A user mailbox (impersonation is scoped to rooms) raises ExchangeAccessError naming the fix."""
    wrong = RoomConfig(email="alice@lab.example", tms_system_id=99, name="Not a room")
    source = source_with(lab_config, rooms=(wrong,))
    try:
        with pytest.raises(ExchangeAccessError) as info:
            source.changes("alice@lab.example", None, window=window(lab_at))
    finally:
        source.close()
    assert (info.value.room, info.value.code) == ("alice@lab.example", "ErrorImpersonateUserDenied")
    assert "ApplicationImpersonation" in info.value.hint
    assert lab_config.exchange.username in info.value.hint


def test_unknown_mailbox_is_an_access_error(lab_at, lab_config):
    """A configured room with no mailbox raises ExchangeAccessError with ErrorNonExistentMailbox."""
    ghost = RoomConfig(email="room-ghost@lab.example", tms_system_id=98, name="Ghost")
    source = source_with(lab_config, rooms=(ghost,))
    try:
        with pytest.raises(ExchangeAccessError) as info:
            source.changes("room-ghost@lab.example", None, window=window(lab_at))
    finally:
        source.close()
    assert info.value.code == "ErrorNonExistentMailbox"


def test_delegate_access_without_rights_is_an_access_error(lab_at, lab_config):
    """With exchange.impersonation = false and no delegate rights on the room, the room is an access error."""
    source = source_with(lab_config, impersonation=False)
    try:
        with pytest.raises(ExchangeAccessError) as info:
            source.changes(ROOM, None, window=window(lab_at))
    finally:
        source.close()
    assert info.value.code == "ErrorAccessDenied"
    assert "FullAccess" in info.value.hint
