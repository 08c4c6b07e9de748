"""The pre-flight's memory of CMS users: fresh answers reused, stale ones and failures asked again.

The prediction rules themselves are tested in ``test_licence_service.py`` (over its fake CMS); here a
counting CMS shows how many lookups reach it. Times are handed in; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xesync.cms_facts import CmsUser
from xesync.directory import Person
from xesync.errors import ServiceUnavailableError
from xesync.licence_preflight import USER_TTL, LicencePreflightService, UserCache
from xesync.model import Booking, TmsState

ALICE = CmsUser(id="u-alice", jid="alice@lab.example", email="alice@lab.example", has_license=True,
                user_profile="p-pmp", profile_from="user")  # fmt: skip


class CountingCms:
    """Answers ``find_user`` for Alice only, counting every lookup; ``down`` makes lookups fail."""

    def __init__(self) -> None:
        self.lookups: list[tuple[str | None, str | None]] = []
        self.down = False

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """Alice by JID or e-mail, nobody else."""
        self.lookups.append((jid, email))
        if self.down:
            raise ServiceUnavailableError("cms", "HTTP 503")
        return ALICE if "alice@lab.example" in (jid, email) else None


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2027, 3, 10, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def alice() -> Person:
    """Alice as the directory resolves her (PMP+ group member)."""
    return Person(
        dn="uid=alice,ou=people,dc=lab,dc=example", username="alice", tms_username="LAB\\alice",
        display_name="Alice", first_name=None, last_name=None, email="alice@lab.example",
        addresses=frozenset({"alice@lab.example"}), jid="alice@lab.example", guid=None, pmp=True,
        pmp_group="cn=cms-pmp",
    )  # fmt: skip


def booking(uid: str) -> Booking:
    """A live single meeting of Alice's (only its uid and organiser matter to the pre-flight)."""
    start = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
    return Booking(
        uid=uid, external_key=f"key-{uid}", conference_id=4711, version=1, owner="LAB\\alice",
        organiser="alice@lab.example", rooms=("room-oslo@lab.example",), subject="Weekly", start=start,
        end=start + timedelta(hours=1), content_hash="h", state=TmsState.SAVED, updated_at=start,
    )  # fmt: skip


def test_the_same_organiser_is_looked_up_once_while_fresh() -> None:
    """Ten bookings of one organiser within the TTL ask CMS once, and all are predicted PMP+."""
    cms, clock = CountingCms(), Clock()
    users = UserCache(cms, clock=clock)
    answers = [users.find_user(jid="alice@lab.example", email="alice@lab.example") for _ in range(10)]
    assert answers == [ALICE] * 10
    assert len(cms.lookups) == 1


def test_an_unknown_user_is_remembered_too() -> None:
    """ "No such CMS user" is an answer: it is reused within the TTL like a found one."""
    cms, clock = CountingCms(), Clock()
    users = UserCache(cms, clock=clock)
    assert users.find_user(email="erin@partner.example") is None
    assert users.find_user(email="ERIN@partner.example ") is None
    assert len(cms.lookups) == 1


def test_a_stale_answer_is_asked_again() -> None:
    """Past the TTL the next lookup reaches CMS again (a profile may have changed)."""
    cms, clock = CountingCms(), Clock()
    users = UserCache(cms, clock=clock)
    users.find_user(jid="alice@lab.example")
    clock.now += USER_TTL - timedelta(seconds=1)
    users.find_user(jid="alice@lab.example")
    assert len(cms.lookups) == 1
    clock.now += timedelta(seconds=2)
    users.find_user(jid="alice@lab.example")
    assert len(cms.lookups) == 2


def test_a_clock_moved_back_does_not_make_an_answer_fresh() -> None:
    """An answer remembered "in the future" (the lab clock was moved back) is asked again."""
    cms, clock = CountingCms(), Clock()
    users = UserCache(cms, clock=clock)
    users.find_user(jid="alice@lab.example")
    clock.now -= timedelta(days=1)
    users.find_user(jid="alice@lab.example")
    assert len(cms.lookups) == 2


def test_a_failed_lookup_is_not_remembered() -> None:
    """CMS down: the error propagates and the next lookup, CMS back, asks again and is answered."""
    cms, clock = CountingCms(), Clock()
    users = UserCache(cms, clock=clock)
    cms.down = True
    with pytest.raises(ServiceUnavailableError):
        users.find_user(jid="alice@lab.example")
    cms.down = False
    assert users.find_user(jid="alice@lab.example") == ALICE
    assert len(cms.lookups) == 2


def test_the_preflight_reuses_the_lookup_across_bookings() -> None:
    """Two of Alice's bookings are both predicted PMP+ with one CMS lookup between them."""
    cms = CountingCms()
    service = LicencePreflightService(cms)  # type: ignore[arg-type] - only find_user is used
    assert [service.predict(booking(u), alice()).licence for u in ("uid-1", "uid-2")] == ["pmp", "pmp"]
    assert len(cms.lookups) == 1
