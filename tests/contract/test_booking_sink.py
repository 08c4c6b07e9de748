"""The BookingSink contract: what every booking sink must do, whatever stands behind it.

:class:`BookingSinkContract` holds the tests; a subclass supplies the fixtures ``sink`` (a
:class:`~xesync.ports.BookingSink` in ``Strict`` mode on an empty calendar), ``rooms`` (two distinct
bookable system ids), ``owner`` (an :class:`~xesync.meetings.Owner` the backend knows) and ``now``
(the backend's current time). :class:`TestTmsBookingSink` runs it against the TMS adapter and the lab's
TMS simulator over the wire; an in-memory fake subclasses it the same way (vdirsyncer ``StorageTests``).
Nothing here may assume TMS beyond the port's own docstrings; wire checks live in ``test_tms_*.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fakes import FakeBookingSink

from xesync.adapters.tms import TmsBookingSink
from xesync.config.model import Config
from xesync.errors import TmsConflictError, TmsNotFoundError, TmsStaleVersionError
from xesync.lab import Lab
from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Owner, Recurrence
from xesync.ports import BookingSink


class BookingSinkContract:
    """Tests any :class:`~xesync.ports.BookingSink` must pass; subclasses provide the fixtures."""

    @pytest.fixture
    def start(self, now: datetime) -> datetime:
        """A whole hour two days ahead: inside any booking window, never in the past."""
        return now.replace(minute=0, second=0, microsecond=0) + timedelta(days=2)

    def single(
        self, key: str, start: datetime, rooms: tuple[int, ...], owner: Owner | None = None, **kw
    ) -> ConferenceRequest:
        """A one-hour single meeting request."""
        return ConferenceRequest(
            external_key=key,
            title=kw.pop("title", f"Meeting {key}"),
            start=start,
            end=start + timedelta(hours=1),
            time_zone="Europe/Oslo",
            owner=owner,
            system_ids=rooms,
            **kw,
        )

    def weekly(
        self, key: str, start: datetime, rooms: tuple[int, ...], count: int = 5, **kw
    ) -> ConferenceRequest:
        """A one-hour weekly series of ``count`` occurrences starting at ``start``."""
        recurrence = Recurrence(
            frequency=Frequency.WEEKLY,
            weekdays=(start.isoweekday(),),
            start_date=start.date(),
            count=count,
        )
        return self.single(key, start, rooms, recurrence=recurrence, **kw)

    def test_save_creates_one_conference(self, sink: BookingSink, rooms, start):
        """A first save books a conference with the key, times and rooms asked for."""
        saved = sink.save(self.single("c-1", start, rooms[:1]))
        assert saved.external_key == "c-1"
        assert (saved.start, saved.end) == (start, start + timedelta(hours=1))
        assert saved.system_ids == rooms[:1]
        assert saved.title == "Meeting c-1"
        assert not saved.defective

    def test_saving_the_same_key_again_updates_instead_of_duplicating(self, sink: BookingSink, rooms, start):
        """A second save with the same external key changes that conference; find sees one, the new one."""
        first = sink.save(self.single("c-2", start, rooms[:1]))
        moved = start + timedelta(hours=2)
        second = sink.save(
            self.single(
                "c-2",
                moved,
                rooms,
                title="Moved",
                conference_id=first.conference_id,
                version=first.version,
            )
        )
        assert second.conference_id == first.conference_id
        found = sink.find("c-2")
        assert found is not None
        assert found.conference_id == first.conference_id
        assert (found.title, found.start, found.system_ids) == ("Moved", moved, rooms)

    def test_saving_again_without_the_id_still_upserts_by_key(self, sink: BookingSink, rooms, start):
        """A save that forgot the conference id (crash before the store write) finds the first one by key."""
        first = sink.save(self.single("c-3", start, rooms[:1]))
        again = sink.save(self.single("c-3", start, rooms[:1], title="Again"))
        assert again.conference_id == first.conference_id
        # Had the first save left a second conference behind, it would hold the room in that hour.
        other = sink.save(self.single("c-3b", start + timedelta(hours=1), rooms[:1]))
        assert other.conference_id != first.conference_id

    def test_find_after_save_returns_the_conference(self, sink: BookingSink, rooms, owner, start):
        """find() returns what save() answered: id, version, key, times, owner and rooms."""
        saved = sink.save(self.single("c-4", start, rooms, owner))
        found = sink.find("c-4")
        assert found is not None
        assert (found.conference_id, found.version, found.external_key) == (
            saved.conference_id,
            saved.version,
            "c-4",
        )
        assert (found.start, found.end, found.system_ids) == (saved.start, saved.end, rooms)
        assert found.owner_username.casefold() == owner.username.casefold()

    def test_find_of_an_unknown_key_is_none(self, sink: BookingSink):
        """find() answers None for a key nothing was saved under."""
        assert sink.find("never-saved") is None

    def test_delete_then_find_is_none(self, sink: BookingSink, rooms, start):
        """delete() removes the conference: it reports True, and find() no longer sees it."""
        sink.save(self.single("c-5", start, rooms[:1]))
        assert sink.delete("c-5") is True
        assert sink.find("c-5") is None

    def test_delete_of_a_missing_key_is_false(self, sink: BookingSink, rooms, start):
        """Deleting what is not there (never saved, or already deleted) is False, not an error."""
        assert sink.delete("no-such-key") is False
        sink.save(self.single("c-6", start, rooms[:1]))
        assert sink.delete("c-6") is True
        assert sink.delete("c-6") is False

    def test_deleted_slot_is_free_again(self, sink: BookingSink, rooms, start):
        """After delete() the room can be booked in the same hour under another key."""
        sink.save(self.single("c-7", start, rooms[:1]))
        sink.delete("c-7")
        assert sink.save(self.single("c-7b", start, rooms[:1])).external_key == "c-7b"

    def test_owner_is_the_requested_owner(self, sink: BookingSink, rooms, owner, start):
        """The conference is owned by the owner named in the request, not by the service account."""
        saved = sink.save(self.single("c-8", start, rooms[:1], owner))
        assert saved.owner_username.casefold() == owner.username.casefold()

    def test_conflict_raises_in_strict_mode_and_books_nothing(self, sink: BookingSink, rooms, start):
        """A room already booked in the hour makes save() raise TmsConflictError, and nothing is saved."""
        sink.save(self.single("c-9", start, rooms[:1]))
        overlapping = start + timedelta(minutes=30)
        with pytest.raises(TmsConflictError):
            sink.save(self.single("c-9b", overlapping, rooms[:1]))
        assert sink.find("c-9b") is None

    def test_stale_version_raises_and_a_fresh_read_succeeds(self, sink: BookingSink, rooms, start):
        """Saving with a Version older than the sink's raises TmsStaleVersionError; re-reading fixes it."""
        first = sink.save(self.single("c-10", start, rooms[:1]))
        second = sink.save(
            self.single(
                "c-10",
                start,
                rooms[:1],
                title="Two",
                conference_id=first.conference_id,
                version=first.version,
            )
        )
        assert second.version != first.version
        stale = self.single(
            "c-10", start, rooms[:1], title="Three", conference_id=first.conference_id, version=first.version
        )
        with pytest.raises(TmsStaleVersionError):
            sink.save(stale)
        fresh = sink.find("c-10")
        assert fresh is not None
        third = sink.save(
            self.single(
                "c-10",
                start,
                rooms[:1],
                title="Three",
                conference_id=fresh.conference_id,
                version=fresh.version,
            )
        )
        assert third.title == "Three"

    def test_series_with_exceptions(self, sink: BookingSink, rooms, start):
        """A series saved with a cancelled and a moved occurrence has them as exceptions."""
        week = timedelta(weeks=1)
        cancelled, moved = start + week, start + 2 * week
        request = self.weekly(
            "s-1",
            start,
            rooms[:1],
            exceptions=(
                OccurrenceChange(recurrence_id=cancelled),
                OccurrenceChange(
                    recurrence_id=moved, start=moved + timedelta(hours=2), end=moved + timedelta(hours=3)
                ),
            ),
        )
        saved = sink.save(request)
        found = sink.find("s-1")
        assert found is not None
        assert found.conference_id == saved.conference_id
        assert found.start == start
        # The cancelled occurrence is gone already; the moved one left its slot free.
        assert sink.delete_occurrence("s-1", cancelled) is False
        assert sink.save(self.single("s-1-other", moved, rooms[:1])).external_key == "s-1-other"
        with pytest.raises(TmsConflictError):
            sink.save(self.single("s-1-clash", moved + timedelta(hours=2), rooms[:1]))

    def test_occurrence_delete_removes_only_that_occurrence(self, sink: BookingSink, rooms, start):
        """delete_occurrence() frees one occurrence's slot and leaves the series and its other occurrences."""
        third = start + timedelta(weeks=2)
        sink.save(self.weekly("s-2", start, rooms[:1]))
        assert sink.delete_occurrence("s-2", third) is True
        assert sink.delete_occurrence("s-2", third) is False
        assert sink.find("s-2") is not None
        assert sink.save(self.single("s-2-other", third, rooms[:1])).external_key == "s-2-other"
        with pytest.raises(TmsConflictError):
            sink.save(self.single("s-2-clash", start + timedelta(weeks=3), rooms[:1]))

    def test_occurrence_delete_of_a_missing_series_is_false(self, sink: BookingSink, start):
        """delete_occurrence() on a key nothing was saved under is False."""
        assert sink.delete_occurrence("no-such-series", start) is False

    def test_save_occurrence_moves_one_occurrence(self, sink: BookingSink, rooms, start):
        """save_occurrence() moves one occurrence: its old slot is free, its new slot is taken."""
        second = start + timedelta(weeks=1)
        sink.save(self.weekly("s-3", start, rooms[:1]))
        new_start = second + timedelta(hours=3)
        saved = sink.save_occurrence("s-3", second, new_start, new_start + timedelta(hours=1))
        assert (saved.start, saved.end) == (new_start, new_start + timedelta(hours=1))
        assert sink.save(self.single("s-3-other", second, rooms[:1])).external_key == "s-3-other"
        with pytest.raises(TmsConflictError):
            sink.save(self.single("s-3-clash", new_start, rooms[:1]))

    def test_save_occurrence_of_a_missing_occurrence_raises_not_found(self, sink: BookingSink, rooms, start):
        """save_occurrence() for a recurrence id that is not in the series raises TmsNotFoundError."""
        sink.save(self.weekly("s-4", start, rooms[:1]))
        stray = start + timedelta(days=1)
        with pytest.raises(TmsNotFoundError):
            sink.save_occurrence("s-4", stray, stray, stray + timedelta(hours=1))


class TestTmsBookingSink(BookingSinkContract):
    """The contract against :class:`TmsBookingSink` and the lab's TMS simulator, over the wire."""

    @pytest.fixture
    def sink(self, lab_config: Config) -> Iterator[TmsBookingSink]:
        """The adapter as the daemon builds it from ``lab serve``'s config."""
        sink = TmsBookingSink(lab_config.tms)
        yield sink
        sink.close()

    @pytest.fixture
    def rooms(self, lab_config: Config) -> tuple[int, ...]:
        """The first two rooms' TMS system ids."""
        return tuple(room.tms_system_id for room in lab_config.rooms[:2])

    @pytest.fixture
    def owner(self) -> Owner:
        """A directory user TMS knows (the lab imports the directory's users)."""
        return Owner(
            username="LAB\\alice", first_name="Alice", last_name="Example", email="alice@lab.example"
        )

    @pytest.fixture
    def now(self, lab: Lab) -> datetime:
        """The lab's clock."""
        return lab.clock.now()


class TestFakeBookingSink(BookingSinkContract):
    """The same contract against the in-memory fake the engine tests use, so the fake stays honest."""

    @pytest.fixture
    def sink(self) -> FakeBookingSink:
        """A fresh fake TMS."""
        return FakeBookingSink()

    @pytest.fixture
    def rooms(self) -> tuple[int, ...]:
        """Two system ids."""
        return (11, 12)

    @pytest.fixture
    def owner(self) -> Owner:
        """Any owner: the fake takes the name as given."""
        return Owner(
            username="LAB\\alice", first_name="Alice", last_name="Example", email="alice@lab.example"
        )

    @pytest.fixture
    def now(self) -> datetime:
        """A fixed now."""
        return datetime(2026, 12, 1, 8, tzinfo=UTC)
