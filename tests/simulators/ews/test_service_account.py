"""The service account reads and answers room calendars through impersonation (ews.md §1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from exchangelib import (
    IMPERSONATION,
    OAUTH2,
    UTC,
    Account,
    Build,
    CalendarItem,
    Configuration,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    HTMLBody,
    Message,
    OAuth2Credentials,
    Version,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorInvalidExchangeImpersonationHeaderData,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
)
from exchangelib.items import SEND_ONLY, SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.properties import UID
from exchangelib.protocol import close_connections

ROOM = "room-oslo@lab.example"
UTC_TZ = EWSTimeZone("UTC")
WINDOW = (EWSDateTime(2026, 3, 1, tzinfo=UTC), EWSDateTime(2026, 5, 1, tzinfo=UTC))
SYNC_FIELDS = ["uid", "subject", "start", "end", "changekey", "my_response_type", "is_cancelled", "type"]


class GlobalObjectId(ExtendedProperty):
    """PidLidGlobalObjectId, the filterable form of the UID (ews.md §1.6)."""

    distinguished_property_set_id = "Meeting"
    property_id = 3
    property_type = "Binary"


def book(organiser, day, *, subject="Sync", room=ROOM, hours=1):
    """Alice sends a meeting with ``room`` on 2026-03-``day`` 09:00 UTC."""
    start = EWSDateTime(2026, 3, day, 9, tzinfo=UTC_TZ)
    item = CalendarItem(
        account=organiser,
        folder=organiser.calendar,
        subject=subject,
        start=start,
        end=start + timedelta(hours=hours),
        resources=[room],
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def test_impersonated_calendar_view_reads_the_room(organiser, service):
    """The service account sees the room's meetings through impersonation, with simple fields only."""
    book(organiser(), 2, subject="One")
    book(organiser("bob@lab.example"), 3, subject="Two")
    view = list(
        service(ROOM).calendar.view(*WINDOW).only("subject", "start", "end", "legacy_free_busy_status")
    )
    assert [(v.subject, v.start) for v in view] == [
        ("One", EWSDateTime(2026, 3, 2, 9, tzinfo=UTC)),
        ("Two", EWSDateTime(2026, 3, 3, 9, tzinfo=UTC)),
    ]
    assert {v.legacy_free_busy_status for v in view} == {"Busy"}


def test_view_includes_a_meeting_ending_exactly_at_the_window_start(organiser, service):
    """A meeting ending at the view's start is returned, as Exchange does (ews.md §1.5)."""
    book(organiser(), 2)
    start = EWSDateTime(2026, 3, 2, 10, tzinfo=UTC)
    assert len(list(service(ROOM).calendar.view(start, start + timedelta(hours=2)))) == 1


def test_impersonating_a_user_is_denied(service):
    """The service account may impersonate rooms only."""
    with pytest.raises(ErrorImpersonateUserDenied):
        service("alice@lab.example").calendar.all().count()


def test_impersonating_an_unknown_mailbox_fails(service):
    """An address without a mailbox answers ErrorNonExistentMailbox."""
    with pytest.raises(ErrorNonExistentMailbox):
        service("nobody@lab.example").calendar.all().count()


def test_sync_resumes_from_a_saved_state_after_a_restart(organiser, service):
    """A saved sync state, used by a fresh client, yields only what changed since it was saved."""
    alice = organiser()
    first = book(alice, 2, subject="First")
    book(alice, 3, subject="Second")
    cal = service(ROOM).calendar
    initial = list(cal.sync_items(only_fields=SYNC_FIELDS, max_changes_returned=1))
    assert sorted((c, i.subject) for c, i in initial) == [("create", "First"), ("create", "Second")]
    saved = cal.item_sync_state
    first.subject = "First, renamed"
    first.save(update_fields=["subject"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    book(alice, 4, subject="Third")
    close_connections()  # the daemon restarts: a new protocol, a new Account, the stored state
    fresh = service(ROOM).calendar
    changes = list(fresh.sync_items(sync_state=saved, only_fields=SYNC_FIELDS))
    assert sorted((c, i.subject) for c, i in changes) == [("create", "Third"), ("update", "First, renamed")]
    assert fresh.item_sync_state != saved
    assert list(fresh.sync_items(sync_state=fresh.item_sync_state, only_fields=SYNC_FIELDS)) == []


def test_fetch_returns_items_in_order_and_errors_in_place(organiser, service):
    """fetch() returns the items asked for in order, with ErrorItemNotFound instances for missing ids."""
    book(organiser(), 2, subject="A")
    book(organiser(), 3, subject="B")
    room = service(ROOM)
    ids = [(i.id, i.changekey) for i in room.calendar.view(*WINDOW)]
    fetched = list(
        room.fetch(
            [ids[1], ("AAMkADmissingmissing", "ck"), ids[0]],
            folder=room.calendar,
            only_fields=["subject", "body"],
        )
    )
    assert fetched[0].subject == "B"
    assert isinstance(fetched[1], ErrorItemNotFound)
    assert fetched[2].subject == "A"


def test_accept_keeps_the_item_and_tells_the_organiser(organiser, service):
    """Accepting a tentative room copy sets Accept, bumps the changekey and reaches the organiser."""
    alice = organiser()
    sent = book(alice, 2, room="room-tromso@lab.example")
    room = service("room-tromso@lab.example")
    (item,) = room.calendar.view(*WINDOW)
    item.refresh()
    before = item.changekey
    item.accept(message_disposition=SEND_ONLY, body="Booked in TMS")
    item.refresh()
    assert item.my_response_type == "Accept"
    assert item.changekey != before
    sent.refresh()
    assert sent.resources[0].response_type == "Accept"
    assert [m.subject for m in alice.inbox.all().only("subject")] == ["Accepted: Sync"]


def test_decline_removes_the_item_and_tells_the_organiser(organiser, service):
    """Declining removes the room copy (a sync delete) and sends the organiser a decline."""
    alice = organiser()
    sent = book(alice, 2, room="room-tromso@lab.example")
    cal = service("room-tromso@lab.example").calendar
    (change,) = list(cal.sync_items(only_fields=SYNC_FIELDS))
    item = change[1]
    item.decline(message_disposition=SEND_ONLY, body="Declined: the room is busy in TMS")
    assert [c for c, _ in cal.sync_items(only_fields=SYNC_FIELDS)] == ["delete"]
    sent.refresh()
    assert sent.resources[0].response_type == "Decline"
    (response,) = alice.inbox.all().only("subject", "body")
    assert response.subject == "Declined: Sync"
    assert "busy in TMS" in response.body


def test_accept_with_a_stale_changekey_is_refused(organiser, service):
    """A response must carry the current changekey (ews.md §1.10)."""
    book(organiser(), 2, room="room-tromso@lab.example")
    room = service("room-tromso@lab.example")
    (item,) = room.calendar.view(*WINDOW)
    stale = CalendarItem(account=room, folder=room.calendar, id=item.id, changekey="DwAAABYAAAAstale")
    with pytest.raises(Exception, match="change key") as info:
        stale.accept(message_disposition=SEND_ONLY)
    assert type(info.value).__name__ == "ErrorIrresolvableConflict"


def test_body_update_keeps_the_id_and_stays_on_the_room_copy(organiser, service):
    """Writing dial-in details into the room's item keeps its id, bumps its changekey, and stays local."""
    alice = organiser()
    sent = book(alice, 2)
    room = service(ROOM)
    (item,) = room.calendar.view(*WINDOW)
    item.refresh()
    old = item.changekey
    item.body = HTMLBody("<p>Dial 1234@video.lab.example</p>")
    item.save(update_fields=["body"])
    item.refresh()
    assert item.body == "<p>Dial 1234@video.lab.example</p>"
    assert item.changekey != old
    sent.refresh()
    assert "1234@" not in (sent.body or "")


def test_room_sends_mail_to_the_organiser(ews, organiser, service):
    """A message sent as the room (SendOnly) reaches the organiser's inbox and the lab's outbox."""
    room = service(ROOM)
    Message(
        account=room, subject="Booked", body=HTMLBody("<p>ok</p>"), to_recipients=["alice@lab.example"]
    ).send(save_copy=False)
    (mail,) = organiser().inbox.all().only("subject", "sender", "body")
    assert mail.subject == "Booked"
    assert mail.sender.email_address == ROOM
    outbox = ews.ews.control("outbox", "GET", None)["messages"]
    assert [(m["sender"], m["subject"]) for m in outbox] == [(ROOM, "Booked")]


def test_send_and_save_copy_keeps_a_sent_item(service):
    """SendAndSaveCopy saves the message in the room's Sent Items."""
    room = service(ROOM)
    Message(account=room, subject="Copy", body="x", to_recipients=["bob@lab.example"]).send()
    assert [m.subject for m in room.sent.all().only("subject")] == ["Copy"]


def test_global_object_id_filter_finds_the_meeting_by_uid(organiser, service):
    """The GlobalObjectId extended-property equality finds the room's copy of a UID (ews.md §1.6)."""
    CalendarItem.register("global_object_id", GlobalObjectId)
    try:
        alice = organiser()
        sent = book(alice, 2, subject="Target")
        book(alice, 3, subject="Other")
        uid = alice.calendar.get(id=sent.id).uid
        goid = UID.to_global_object_id(uid)
        found = list(service(ROOM).calendar.filter(global_object_id=goid).only("subject", "uid"))
        assert [(f.subject, f.uid) for f in found] == [("Target", uid)]
    finally:
        CalendarItem.deregister("global_object_id")


def test_filter_pages_through_indexed_views(organiser, service):
    """calendar.filter pages with IndexedPagingOffset and returns masters and singles only."""
    alice = organiser()
    for day in range(2, 9):
        book(alice, day, subject=f"M{day}")
    room = service(ROOM)
    found = list(
        room.calendar.filter(start__gte=EWSDateTime(2026, 3, 4, tzinfo=UTC)).only("subject").order_by("start")
    )
    assert [f.subject for f in found] == ["M4", "M5", "M6", "M7", "M8"]
    assert room.calendar.filter(subject="M2").count() == 1


def test_delegate_access_to_another_mailbox_is_denied(organiser):
    """A user cannot open another user's calendar without rights."""
    alice = organiser()
    other = Account(
        "bob@lab.example",
        config=alice.protocol.config,
        autodiscover=False,
        access_type="delegate",
        default_timezone=UTC_TZ,
    )
    with pytest.raises(ErrorAccessDenied):
        list(other.calendar.all())


class LabOAuth2Credentials(OAuth2Credentials):
    """Client credentials aimed at the lab's token endpoint instead of login.microsoftonline.com."""

    lab_token_url = ""

    @property
    def token_url(self):
        """The lab's token endpoint."""
        return self.lab_token_url


def test_app_only_oauth_token_with_impersonation_reads_a_room(monkeypatch):
    """An app token from the local token endpoint, with impersonation, reads the room (ews.md §1.1)."""
    import dataclasses  # noqa: PLC0415

    from xesync.lab.fixture import load_fixture  # noqa: PLC0415
    from xesync.lab.runtime import Lab  # noqa: PLC0415

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    base = load_fixture()
    fixture = dataclasses.replace(
        base,
        ews={
            **base.ews,
            "oauth": {"client_id": "app", "client_secret": "s3", "tenant_id": "t1", "impersonates": "rooms"},
        },
    )
    with Lab(fixture, only=("ews",), directory=False) as lab:
        section = lab.describe()["ews"]
        creds = LabOAuth2Credentials(client_id="app", client_secret="s3", tenant_id="t1")
        creds.lab_token_url = section["oauth"]["token_url"]
        config = Configuration(
            service_endpoint=section["url"],
            credentials=creds,
            auth_type=OAUTH2,
            version=Version(build=Build(15, 1, 2507, 6)),
        )
        try:
            room = Account(
                ROOM, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=UTC_TZ
            )
            assert room.calendar.all().count() == 0
            assert lab.requests.count("ews", "OAuthToken") == 1
            bare = Account(
                ROOM, config=config, autodiscover=False, access_type="delegate", default_timezone=UTC_TZ
            )
            with pytest.raises(ErrorInvalidExchangeImpersonationHeaderData):
                bare.root.refresh()
        finally:
            close_connections()
