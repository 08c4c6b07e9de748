"""Pure parts of the EWS simulator: recurrence expansion, sync states, room policies, UIDs."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xesync.lab.ews.calendar import global_object_id, new_uid, overlaps
from xesync.lab.ews.ops_sync import SyncStateError, decode_state, encode_state
from xesync.lab.ews.recurrence import Recurrence, series_starts
from xesync.lab.ews.settings import room_policy
from xesync.lab.fixture import FixtureError, LabRoom


def test_weekly_series_keeps_local_time_across_dst():
    """A 09:00 W. Europe weekly meeting moves from 08:00 to 07:00 UTC at the March DST change (trap 27)."""
    rec = Recurrence(
        pattern="WeeklyRecurrence",
        days_of_week=["Monday"],
        boundary="NumberedRecurrence",
        start_date=date(2026, 3, 16),
        count=4,
    )
    starts = series_starts(rec, datetime(2026, 3, 16, 8, tzinfo=UTC), "W. Europe Standard Time")
    assert [s.isoformat() for s in starts] == [
        "2026-03-16T08:00:00+00:00",
        "2026-03-23T08:00:00+00:00",
        "2026-03-30T07:00:00+00:00",
        "2026-04-06T07:00:00+00:00",
    ]


def test_relative_monthly_last_friday():
    """RelativeMonthly 'Last Friday' picks the last Friday of each month."""
    rec = Recurrence(
        pattern="RelativeMonthlyRecurrence",
        days_of_week=["Friday"],
        week_index="Last",
        boundary="EndDateRecurrence",
        start_date=date(2026, 1, 1),
        end_date=date(2026, 4, 30),
    )
    starts = series_starts(rec, datetime(2026, 1, 30, 12, tzinfo=UTC), "UTC")
    assert [s.date() for s in starts] == [
        date(2026, 1, 30),
        date(2026, 2, 27),
        date(2026, 3, 27),
        date(2026, 4, 24),
    ]


def test_absolute_monthly_clamps_to_month_end():
    """Day 31 falls on the last day of shorter months."""
    rec = Recurrence(
        pattern="AbsoluteMonthlyRecurrence",
        day_of_month=31,
        boundary="NumberedRecurrence",
        start_date=date(2026, 1, 31),
        count=3,
    )
    starts = series_starts(rec, datetime(2026, 1, 31, 9, tzinfo=UTC), "UTC")
    assert [s.date() for s in starts] == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]


@given(
    st.dictionaries(st.text(min_size=1, max_size=20), st.integers(min_value=0, max_value=10**6), max_size=30)
)
def test_sync_state_round_trips(known):
    """A state decodes to exactly what was encoded, for its own folder only."""
    state = encode_state("F1", known)
    assert decode_state(state, "F1") == known
    with pytest.raises(SyncStateError):
        decode_state(state, "F2")


@pytest.mark.parametrize("state", ["", "bm90", "H4sIxesync!!!", "H4sIxesyncAAAA"])
def test_garbage_sync_states_are_refused(state):
    """Corrupt states raise SyncStateError (answered as ErrorInvalidSyncStateData)."""
    with pytest.raises(SyncStateError):
        decode_state(state, "F1")


def test_outlook_uid_is_the_hex_of_the_global_object_id():
    """The UID is Outlook-style hex and its GlobalObjectId is its unhexlified bytes (ews.md §3.8)."""
    uid = new_uid(datetime(2026, 3, 1, tzinfo=UTC))
    assert uid.startswith("040000008200E00074C5B7101A82E008")
    assert global_object_id(uid) == bytes.fromhex(uid)
    assert uid != new_uid(datetime(2026, 3, 1, tzinfo=UTC))


def test_view_overlap_includes_an_item_ending_at_the_window_start():
    """An item ending exactly at the window start overlaps; one starting at the window end does not."""
    a, b, c = (datetime(2026, 3, 1, h, tzinfo=UTC) for h in (8, 9, 10))
    assert overlaps(a, b, b, c)
    assert not overlaps(c, c.replace(hour=11), a, c)


def test_room_policy_presets_and_overrides():
    """Exchange defaults munge; TMSXE-style does not; a room's own keys win; unknown keys are refused."""
    room = LabRoom(email="r@x", name="R", tms_system_id=1, settings={"processing": "exchange_defaults"})
    munging = room_policy(room, {})
    assert munging.add_organizer_to_subject
    assert munging.delete_comments
    plain = room_policy(
        LabRoom(email="r@x", name="R", tms_system_id=1, settings={"allow_conflicts": True}), {}
    )
    assert not plain.delete_subject
    assert plain.allow_conflicts
    with pytest.raises(FixtureError):
        room_policy(LabRoom(email="r@x", name="R", tms_system_id=1, settings={"bogus": 1}), {})
