"""The opt-in owner fix-up (``cms.enforce_owner``): set the organiser as the space's owner, undo it after.

cms-api.md §4.3: TMS runs a meeting in a reused ``TMS_Scheduled_Meeting_<n>`` pool space and may pass
no owner, so CMS uses an SMP+ licence. xesync may ``PUT ownerJid=<organiser>`` on that space as soon as
it identifies it. The licence is chosen when the call starts, so the PUT helps only if it precedes the
call (TMS picks the space at the start: practically never) or if CMS re-evaluates mid-call
([unconfirmed], §6.3); the verdict says which (:attr:`xesync.licence.Verdict.fixup_in_time`).

TMS's reset at the end does not clear ``ownerJid`` (§4.1 item 8), so what xesync set would credit the
next meeting in that slot to the wrong owner: after the sitting, xesync clears it, **only** while the
space still carries the JID it set.

Every change is an event (``cms.owner_set``, ``cms.owner_cleared``, ``cms.owner_fixup_failed``) and an
audit row (``set_cms_owner`` / ``clear_cms_owner``). The audit rows are also the fix-up's memory: a
restarted daemon, or a one-shot ``xesync verify``, knows from them what it still has to clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from xesync import events
from xesync.cms_facts import CmsUser, MeetingOnCms
from xesync.directory import NotInDirectory, Person
from xesync.errors import XesyncError
from xesync.licence import OwnerFixup, owner_is_organiser
from xesync.licence_schedule import Sitting
from xesync.model import AuditEntry, AuditOutcome, Booking
from xesync.ports import CallMonitor
from xesync.store import Store

log = structlog.get_logger("xesync.licence")

SET_OWNER = "set_cms_owner"
CLEAR_OWNER = "clear_cms_owner"


@dataclass(frozen=True, slots=True)
class OpenFixup:
    """An owner fix-up still in place: the space, the JID xesync set, and when."""

    space_id: str
    jid: str
    at: datetime


class OwnerFixer:
    """Sets and clears the organiser as a space's owner, remembering both in the audit trail.

    :param store: where the audit rows go.
    :param monitor: CMS.
    :param retry: how soon a clear that could not be made is tried again.
    """

    def __init__(self, *, store: Store, monitor: CallMonitor, retry: timedelta) -> None:
        self.store, self.monitor, self.retry = store, monitor, retry

    def open(self, uid: str) -> dict[datetime | None, OpenFixup]:
        """Per sitting (occurrence key) of meeting ``uid``: the fix-up set and not yet cleared."""
        found: dict[datetime | None, OpenFixup] = {}
        for entry in self.store.audit(uid=uid, limit=10_000):
            if entry.action == SET_OWNER and entry.outcome is AuditOutcome.APPLIED:
                found[entry.occurrence] = OpenFixup(
                    space_id=str(entry.details["space_id"]), jid=str(entry.details["jid"]), at=entry.at
                )
            elif entry.action == CLEAR_OWNER and entry.outcome is not AuditOutcome.FAILED:
                found.pop(entry.occurrence, None)
        return found

    def ensure(
        self,
        run_id: str,
        booking: Booking,
        sitting: Sitting,
        meeting: MeetingOnCms,
        *,
        organiser: Person | NotInDirectory,
        user: CmsUser | None,
        enforce: bool,
        now: datetime,
    ) -> OwnerFixup | None:
        """The fix-up on this sitting's space: one made earlier and still in place, or (``enforce``) one
        made now when the space's owner is not the organiser's CMS ``user``; ``None`` for neither."""
        space = meeting.space
        if space is None:
            return None
        earlier = self.open(booking.uid).get(sitting.occurrence)
        ours = earlier is not None and earlier.space_id == space.id
        if ours and earlier and space.owner_jid and space.owner_jid.casefold() == earlier.jid.casefold():
            return OwnerFixup(jid=earlier.jid, at=earlier.at)
        if not enforce or user is None or owner_is_organiser(space, organiser, user):
            return None
        details: dict[str, object] = {
            "space_id": space.id, "jid": user.jid, "previous_owner": space.owner,
            "call_id": meeting.call.id if meeting.call else None,
        }  # fmt: skip
        try:
            self.monitor.set_owner(space.id, user.jid)
        except XesyncError as exc:
            log.warning(
                events.CMS_OWNER_FIXUP_FAILED, meeting=booking.uid, space_id=space.id, jid=user.jid,
                action=SET_OWNER, error=str(exc),
            )  # fmt: skip
            self._audit(run_id, booking, sitting, (SET_OWNER, AuditOutcome.FAILED, str(exc)), details, now)
            return None
        log.info(
            events.CMS_OWNER_SET, meeting=booking.uid, occurrence=iso(sitting.occurrence), space_id=space.id,
            jid=user.jid, previous_owner=space.owner, call_running=meeting.call is not None,
        )  # fmt: skip
        when = "after the call had started" if meeting.call is not None else "before the call started"
        why = f"ownerJid set to the organiser {user.jid} on space {space.id} ({when})"
        self._audit(run_id, booking, sitting, (SET_OWNER, AuditOutcome.APPLIED, why), details, now)
        return OwnerFixup(jid=user.jid, at=now)

    def clear(self, run_id: str, booking: Booking, sitting: Sitting, now: datetime) -> datetime | None:
        """Undo this sitting's fix-up if the space still carries our JID.

        :returns: when to try again (the meeting's call still runs, or CMS failed), else ``None``.
        """
        fixup = self.open(booking.uid).get(sitting.occurrence)
        if fixup is None:
            return None
        details: dict[str, object] = {"space_id": fixup.space_id, "jid": fixup.jid}
        try:
            call = self.monitor.active_call(fixup.space_id)
            if call is not None and (call.name or "").strip() == booking.subject.strip():
                return now + self.retry  # TMS extended the meeting: the owner stays until it ends
            cleared = self.monitor.clear_owner(fixup.space_id, only_if=fixup.jid)
        except XesyncError as exc:
            log.warning(
                events.CMS_OWNER_FIXUP_FAILED, meeting=booking.uid, space_id=fixup.space_id, jid=fixup.jid,
                action=CLEAR_OWNER, error=str(exc),
            )  # fmt: skip
            self._audit(run_id, booking, sitting, (CLEAR_OWNER, AuditOutcome.FAILED, str(exc)), details, now)
            return now + self.retry
        log.info(
            events.CMS_OWNER_CLEARED, meeting=booking.uid, occurrence=iso(sitting.occurrence),
            space_id=fixup.space_id, jid=fixup.jid, cleared=cleared,
        )  # fmt: skip
        decision = (
            (CLEAR_OWNER, AuditOutcome.APPLIED, f"ownerJid {fixup.jid} cleared from space {fixup.space_id}")
            if cleared
            else (CLEAR_OWNER, AuditOutcome.SKIPPED, "the space no longer carries the owner xesync set")
        )
        self._audit(run_id, booking, sitting, decision, details, now)
        return None

    def _audit(  # noqa: PLR0917 - one audit row's parts
        self,
        run_id: str,
        booking: Booking,
        sitting: Sitting,
        decision: tuple[str, AuditOutcome, str],
        details: Mapping[str, object],
        now: datetime,
    ) -> None:
        action, outcome, reason = decision
        entry = AuditEntry(
            at=now, run_id=run_id, room=booking.rooms[0] if booking.rooms else None, uid=booking.uid,
            occurrence=sitting.occurrence, action=action, outcome=outcome, reason=reason,
            details={**details, "conference_id": booking.conference_id},
        )  # fmt: skip
        with self.store.transaction() as tx:
            tx.add_audit(entry)


def iso(value: datetime | None) -> str | None:
    """An optional timestamp as ISO text (for log fields)."""
    return None if value is None else value.isoformat()
