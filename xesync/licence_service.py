"""The licence proof at work: the pre-flight at booking, and the checks of each sitting on CMS.

The pre-flight at booking (:class:`LicencePreflightService`) lives in :mod:`xesync.licence_preflight`
and is re-exported here.

:class:`LicenceChecker` proves, sitting by sitting (:mod:`xesync.licence_schedule`), which licence
each booked call used (cms-api.md §3.4), stores every verdict and emits it as one
``cms.call_checked`` event. The daemon schedules :meth:`LicenceChecker.run_due` at
:meth:`LicenceChecker.next_due`; ``xesync verify`` calls the same methods.

The schedule of one sitting (start *S*, end *E*), each step kept in the store so that a restart
(or a one-shot ``xesync verify``) picks up where the last run stopped:

======================  =====================================================================
``S - cms.check_lead``  *before start*: look for the space early, so that the owner fix-up can
                        land before TMS posts the call (it rarely can: TMS renames its pool
                        space only at the start, cms-api.md §4.3)
``S + 1 min``           *at start*: the verdict
every 2 min until *E*   *retry*, while the last verdict is ``unverifiable``
*E*                     the owner fix-up is undone (only what xesync set; ``cms.enforce_owner``)
after *E*, unchecked    *missed*: ``unverifiable``, saying no check ran while the sitting did
======================  =====================================================================

Decisions:

- **The sync never waits for CMS.** The pre-flight uses a monitor that does not retry (wired in
  :mod:`xesync.wiring`); the checks run in their own job. A CMS that cannot be asked gives
  ``unverifiable`` and a retry, never an exception out of :meth:`LicenceChecker.run_due`.
- **Fix-ups are audit rows** (``set_cms_owner`` / ``clear_cms_owner``), so ``xesync explain`` shows
  them with their times and a restarted daemon knows what it still has to clear. Only the JID
  xesync set is cleared (``clear_owner(only_if=…)``); another owner found later is left alone.
- **A check's facts** are the organiser (directory, then CMS user by JID or e-mail), the space and
  call (:meth:`~xesync.ports.CallMonitor.find_meeting` from ``ConferenceInfoText`` and the title),
  the owner's CMS user and the licence counters; :func:`xesync.licence.decide` judges them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from xesync import events
from xesync.cms_facts import MeetingOnCms
from xesync.directory import Directory, NotInDirectory, Person
from xesync.errors import XesyncError
from xesync.licence import StartFacts, Verdict, decide
from xesync.licence_fixup import OpenFixup, OwnerFixer, iso
from xesync.licence_preflight import LicencePreflightService
from xesync.licence_schedule import Sitting, sittings
from xesync.model import Booking, CheckStage, LicenceCheck, LicenceVerdict
from xesync.ports import CallMonitor
from xesync.store import Store

log = structlog.get_logger("xesync.licence")

__all__ = ["LicenceChecker", "LicencePreflightService", "Step"]

START_DELAY = timedelta(minutes=1)  # the verdict a minute after the start, once TMS has posted the call
RETRY = timedelta(minutes=2)  # an unverifiable verdict (or a failed clear) is tried again after this
MISSED_HORIZON = timedelta(days=1)  # sittings that ended longer ago than this are not marked "missed"
LOOKAHEAD = timedelta(days=400)  # how far next_due looks for a booking's next sitting
_PMP = (LicenceVerdict.PMP_CONFIRMED, LicenceVerdict.PMP_LIKELY)


# ---------------------------------------------------------------------------------- checker


@dataclass(frozen=True, slots=True)
class Step:
    """One thing due for a sitting: a check at a stage, or undoing the owner fix-up (``stage=None``)."""

    booking: Booking
    sitting: Sitting
    stage: CheckStage | None
    at: datetime


class LicenceChecker:
    """Checks each sitting's licence on CMS at its due times; see the module docstring.

    :param store: where bookings are read and verdicts and fix-ups written.
    :param monitor: CMS.
    :param directory: resolves organisers (``None``: organisers are matched by e-mail on CMS only).
    :param lead: ``cms.check_lead``; ``0`` skips the look before the start.
    :param enforce_owner: ``cms.enforce_owner``: set (and later clear) the organiser as the space's owner.
    :param retry: how soon an unverifiable verdict or a failed clear is tried again.
    """

    def __init__(
        self,
        *,
        store: Store,
        monitor: CallMonitor,
        directory: Directory | None = None,
        lead: timedelta = timedelta(minutes=5),
        enforce_owner: bool = False,
        retry: timedelta = RETRY,
    ) -> None:
        self.store, self.monitor, self.directory = store, monitor, directory
        self.lead, self.enforce_owner, self.retry = lead, enforce_owner, retry
        self.fixer = OwnerFixer(store=store, monitor=monitor, retry=retry)
        # Clears put off (the meeting's call still runs, or CMS failed), by sitting key; in memory
        # only, because a restart may simply try again at once.
        self._not_before: dict[tuple[str, datetime | None], datetime] = {}

    # -- schedule (stable API: the daemon calls next_due and run_due) --------------------------------

    def due(self, now: datetime) -> list[Booking]:
        """The live bookings with a check (or a clear) due at ``now``."""
        seen: dict[tuple[str, datetime | None], Booking] = {}
        for step in self._steps(now):
            if step.at <= now:
                seen.setdefault(step.booking.key, step.booking)
        return list(seen.values())

    def next_due(self, now: datetime, bookings: Sequence[Booking] | None = None) -> datetime | None:
        """When :meth:`run_due` next has something to do (at or before ``now``: at once); ``None``: never.

        :param bookings: look at these only (the bookings a pass changed: the daemon brings its job
            forward by them without reading every live booking). The answer is never later than the
            full one for them; it may be earlier (a series occurrence booked on its own is not known
            here), which only makes the job run early and plan again.
        """
        times = [step.at for step in self._steps(now, bookings)]
        return min(times) if times else None

    def run_due(self, now: datetime) -> list[LicenceCheck]:
        """Run every step due at ``now``; return the checks made (clears make none). Never raises for CMS."""
        run_id = f"licence-{uuid.uuid4().hex[:12]}"
        made: list[LicenceCheck] = []
        for step in self._steps(now):
            if step.at > now:
                continue
            if step.stage is None:
                again = self.fixer.clear(run_id, step.booking, step.sitting, now)
                if again is None:
                    self._not_before.pop(step.sitting.key, None)
                else:
                    self._not_before[step.sitting.key] = again
            else:
                made.append(self._check(run_id, step.booking, step.sitting, step.stage, now))
        return made

    def check(self, uid: str, now: datetime) -> list[LicenceCheck]:
        """Check one meeting now: each sitting that starts within ``cms.check_lead`` or runs at ``now``.

        Before the start the check is a *before start* one (the verdict still follows at the start);
        during the sitting it is a *manual* verdict.
        """
        run_id = f"licence-{uuid.uuid4().hex[:12]}"
        made: list[LicenceCheck] = []
        for booking in self.store.bookings(live_only=True):
            if booking.uid != uid:
                continue
            for sitting in sittings(booking, since=now, until=now + self.lead):
                stage = CheckStage.BEFORE_START if now < sitting.start else CheckStage.MANUAL
                made.append(self._check(run_id, booking, sitting, stage, now))
        return made

    def _steps(self, now: datetime, only: Sequence[Booking] | None = None) -> list[Step]:
        since = now - MISSED_HORIZON
        bookings = self.store.bookings(live_only=True) if only is None else [b for b in only if b.live]
        alone = {b.key for b in bookings if b.occurrence is not None}
        # A sitting ending after ``since`` was checked at most a day (max duration) plus the lead before.
        after = since - timedelta(days=2) - self.lead
        if only is None:
            history = _by_sitting(self.store.licence_history(since=after))
        else:
            uids = sorted({b.uid for b in bookings})
            history = _by_sitting([c for u in uids for c in self.store.licence_history(uid=u, since=after)])
        steps: list[Step] = []
        for booking in bookings:
            fixups: dict[datetime | None, OpenFixup] | None = None
            for sitting in sittings(booking, since=since, until=now + LOOKAHEAD):
                if booking.occurrence is None and (booking.uid, sitting.occurrence) in alone:
                    continue  # this occurrence has a booking of its own, which is checked instead
                step = self._next_check(booking, sitting, history.get(sitting.key, []), now)
                if step is not None:
                    steps.append(step)
                if sitting.start - self.lead <= now:
                    # Cleared even when enforce_owner was turned off since: what we set, we undo.
                    if fixups is None:
                        fixups = self.fixer.open(booking.uid)
                    if sitting.occurrence in fixups:
                        at = max(sitting.end, self._not_before.get(sitting.key, sitting.end))
                        steps.append(Step(booking, sitting, None, at))
                if sitting.start - self.lead > now and step is not None:
                    break  # later sittings come after this one's first step
        return steps

    def _next_check(
        self, booking: Booking, sitting: Sitting, checks: list[LicenceCheck], now: datetime
    ) -> Step | None:
        start, end = sitting.start, sitting.end
        at_start = start + min(START_DELAY, (end - start) / 2)
        # A meeting moved since its checks is a new sitting at its new time: checked again.
        checks = [c for c in checks if c.start is None or c.start == start]
        verdicts = [c for c in checks if c.stage is not CheckStage.BEFORE_START]
        if verdicts:
            last = verdicts[-1]
            if last.verdict is LicenceVerdict.UNVERIFIABLE and last.stage is not CheckStage.MISSED:
                again = last.checked_at + self.retry
                return Step(booking, sitting, CheckStage.RETRY, again) if again < end else None
            return None
        if now >= end:
            return Step(booking, sitting, CheckStage.MISSED, end)
        looked = any(c.stage is CheckStage.BEFORE_START for c in checks)
        if self.lead > timedelta(0) and not looked and now < at_start:
            return Step(booking, sitting, CheckStage.BEFORE_START, start - self.lead)
        return Step(booking, sitting, CheckStage.AT_START, at_start)

    # -- one check ----------------------------------------------------------------------------------

    def _check(
        self, run_id: str, booking: Booking, sitting: Sitting, stage: CheckStage, now: datetime
    ) -> LicenceCheck:
        if stage is CheckStage.MISSED:
            facts: StartFacts | None = None
            verdict = Verdict(
                verdict=LicenceVerdict.UNVERIFIABLE,
                reason=f"no check ran while the sitting did ({sitting.start.isoformat()} to "
                f"{sitting.end.isoformat()}): xesync was not running or could not reach CMS",
            )
        else:
            facts = self._facts(run_id, booking, sitting, now)
            verdict = decide(facts)
        if stage is CheckStage.BEFORE_START and verdict.verdict is LicenceVerdict.CALL_NOT_FOUND:
            verdict = Verdict(
                verdict=verdict.verdict,
                reason=f"before the start: {verdict.reason}; the verdict follows at the start",
                owner_found=verdict.owner_found,
            )
        meeting = facts.meeting if facts is not None and facts.meeting is not None else MeetingOnCms()
        check = LicenceCheck(
            room=booking.rooms[0] if booking.rooms else "",
            uid=booking.uid,
            occurrence=sitting.occurrence,
            conference_id=booking.conference_id,
            call_id=meeting.call.id if meeting.call else None,
            cospace_id=meeting.space.id if meeting.space else None,
            owner_jid=verdict.owner_found or (meeting.space.owner if meeting.space else None),
            verdict=verdict.verdict,
            reason=verdict.reason,
            checked_at=now,
            organiser=booking.organiser,
            rooms=booking.rooms,
            subject=booking.subject,
            start=sitting.start,
            end=sitting.end,
            stage=stage,
            fixup_in_time=verdict.fixup_in_time,
            matched_by=meeting.matched_by.value if meeting.matched_by else None,
            calls_on_licence=verdict.calls_on_licence,
        )
        with self.store.transaction() as tx:
            tx.add_licence_check(check)
        _emit(check)
        return check

    def _facts(self, run_id: str, booking: Booking, sitting: Sitting, now: datetime) -> StartFacts:
        organiser: Person | NotInDirectory = NotInDirectory(booking.organiser)
        try:
            if self.directory is not None:
                organiser = self.directory.resolve(booking.organiser)
            if isinstance(organiser, Person):
                user = self.monitor.find_user(jid=organiser.jid, email=organiser.email)
            else:
                user = self.monitor.find_user(email=booking.organiser)
            meeting = self.monitor.find_meeting(
                info_text=booking.info_text, title=booking.subject, start=sitting.start
            )
            fixup = self.fixer.ensure(
                run_id, booking, sitting, meeting, organiser=organiser, user=user,
                enforce=self.enforce_owner, now=now,
            )  # fmt: skip
            if fixup is not None and meeting.space is not None:
                meeting = MeetingOnCms(
                    space=self.monitor.space(meeting.space.id) or meeting.space,
                    call=meeting.call,
                    matched_by=meeting.matched_by,
                    candidates=meeting.candidates,
                )
            space = meeting.space
            owner_user = self.monitor.user(space.owner_id) if space and space.owner_id else None
            licensing = self.monitor.licensing() if meeting.call is not None else None
        except XesyncError as exc:
            # Transient (CMS or the directory down) or refused (credentials): retried while it runs.
            return StartFacts(organiser=organiser, unavailable=f"{type(exc).__name__}: {exc}")
        return StartFacts(
            organiser=organiser, organiser_user=user, meeting=meeting, owner_user=owner_user,
            licensing=licensing, fixup=fixup,
        )  # fmt: skip


def _by_sitting(checks: list[LicenceCheck]) -> dict[tuple[str, datetime | None], list[LicenceCheck]]:
    out: dict[tuple[str, datetime | None], list[LicenceCheck]] = {}
    for check in checks:
        out.setdefault((check.uid, check.occurrence), []).append(check)
    return out


def _emit(check: LicenceCheck) -> None:
    """The one ``cms.call_checked`` event per verdict (a warning unless the call is on a PMP+ licence)."""
    fields = {
        "meeting": check.uid, "occurrence": iso(check.occurrence), "subject": check.subject,
        "organiser": check.organiser, "rooms": list(check.rooms), "conference_id": check.conference_id,
        "space_id": check.cospace_id, "call_id": check.call_id, "owner_found": check.owner_jid,
        "verdict": check.verdict.value, "reason": check.reason, "stage": check.stage.value,
        "fixup_in_time": check.fixup_in_time, "matched_by": check.matched_by,
    }  # fmt: skip
    if check.verdict in _PMP:
        log.info(events.CMS_CALL_CHECKED, **fields)
    else:
        log.warning(events.CMS_CALL_CHECKED, **fields)
