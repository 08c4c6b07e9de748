"""The licence pre-flight at booking: PMP+ or SMP+ predicted from the directory and CMS.

:class:`LicencePreflightService` is the engine's :class:`~xesync.ports.LicencePreflight`: after a
TMS save it asks CMS whether the organiser is a licensed CMS user and predicts PMP+ or SMP+
(:func:`xesync.licence.predict`). It never raises; a CMS that cannot be asked gives ``licence=None``.

Decisions:

- **CMS users are remembered for a few minutes** (:class:`UserCache`, :data:`USER_TTL`). A CMS user
  lookup is two to five requests, and an import books many meetings of the same organisers (the
  benchmark: 1,000 meetings of 20 organisers). The prediction only words the confirmation mail; the
  proof (:mod:`xesync.licence_service`) always reads CMS afresh. A failed lookup is not remembered.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from xesync import events
from xesync.actions import MeetingFacts
from xesync.cms_facts import CmsUser
from xesync.directory import NotInDirectory, Person
from xesync.errors import XesyncError
from xesync.licence import Licence, predict
from xesync.model import Booking
from xesync.ports import CallMonitor, LicencePrediction, LicencePreflight

log = structlog.get_logger("xesync.licence")

USER_TTL = timedelta(minutes=5)  # how long a CMS user (or its absence) is remembered for the prediction


def _now() -> datetime:
    return datetime.now(UTC)


class UserCache:
    """CMS users by JID and e-mail, each remembered for ``ttl``; safe across threads.

    :param clock: the engine's clock (the lab's in a dry run, so that moving it ages the answers).
    """

    def __init__(
        self, monitor: CallMonitor, *, ttl: timedelta = USER_TTL, clock: Callable[[], datetime] = _now
    ) -> None:
        self._monitor, self._ttl, self._clock = monitor, ttl, clock
        self._users: dict[tuple[str, str], tuple[datetime, CmsUser | None]] = {}
        self._lock = threading.Lock()

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """:meth:`~xesync.ports.CallMonitor.find_user`, answered from memory while it is fresh."""
        key = ((jid or "").strip().casefold(), (email or "").strip().casefold())
        now = self._clock()
        with self._lock:
            known = self._users.get(key)
            if known is not None and timedelta(0) <= now - known[0] < self._ttl:
                return known[1]
        user = self._monitor.find_user(jid=jid, email=email)  # raises: nothing is remembered
        with self._lock:
            self._users[key] = (now, user)
            if len(self._users) > 4 * 1024:  # an organiser population's worth; drop the stale ones
                self._users = {k: v for k, v in self._users.items() if timedelta(0) <= now - v[0] < self._ttl}
        return user


class LicencePreflightService:
    """Predicts a booking's licence from the directory and CMS (:class:`~xesync.ports.LicencePreflight`).

    :param monitor: CMS; give it no retries, so that a CMS outage does not slow the sync.
    :param pmp_groups: ``ldap.pmp_groups``, named in the advice.
    :param advise_organiser: put what to ask IT for in the organiser's confirmation on SMP+.
    :param clock: the engine's clock, which ages the remembered CMS users.
    """

    def __init__(
        self,
        monitor: CallMonitor,
        *,
        pmp_groups: Sequence[str] = (),
        advise_organiser: bool = True,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.monitor = monitor
        self._users = UserCache(monitor, clock=clock)
        self.pmp_groups = tuple(pmp_groups)
        self.advise_organiser = advise_organiser

    def predict(self, booking: Booking, organiser: Person | NotInDirectory | None) -> LicencePrediction:
        """Predict PMP+ or SMP+ with the reason; never raises (CMS unreachable: ``licence=None``)."""
        try:
            return self._predict(booking, organiser)
        except XesyncError as exc:
            guess = "" if organiser is None else self._directory_guess(organiser)
            log.warning(
                events.LICENCE_PREDICTION_FAILED, uid=booking.uid, organiser=booking.organiser,
                conference_id=booking.conference_id, error=str(exc), error_type=type(exc).__name__,
            )  # fmt: skip
            return LicencePrediction(licence=None, reason=f"CMS could not be asked ({exc}){guess}")
        except Exception as exc:  # the port promises never to raise into the sync
            log.exception(
                events.LICENCE_PREDICTION_FAILED, uid=booking.uid, error_type=type(exc).__name__,
                exc_info=exc,
            )  # fmt: skip
            return LicencePrediction(licence=None, reason=f"the prediction failed ({type(exc).__name__})")

    def _directory_guess(self, organiser: Person | NotInDirectory) -> str:
        guess = predict(organiser, None, cms_checked=False, pmp_groups=self.pmp_groups)
        return f"; the directory alone suggests {guess.licence.value.upper()}+: {guess.reason}"

    def _predict(self, booking: Booking, organiser: Person | NotInDirectory | None) -> LicencePrediction:
        if organiser is None:
            # No directory configured: CMS alone can say, by the organiser's e-mail address.
            user = self._users.find_user(email=booking.organiser)
            if user is not None and user.has_license:
                why = f"CMS user {user.jid} has a licensed profile ({user.profile_from} level)"
                return LicencePrediction(licence=Licence.PMP.value, reason=why)
            why = (
                f"CMS has no user with the address {booking.organiser}"
                if user is None
                else f"the effective CMS profile of {user.jid} ({user.profile_from} level) has no hasLicense"
            )
            return self._answer(Licence.SMP, why, "a CMS user with a personal PMP+ licence (hasLicense)")
        user = None
        if isinstance(organiser, Person):
            user = self._users.find_user(jid=organiser.jid, email=organiser.email)
        guess = predict(organiser, user, pmp_groups=self.pmp_groups)
        return self._answer(guess.licence, guess.reason, guess.ask_it)

    def _answer(self, licence: Licence, reason: str, ask_it: str | None) -> LicencePrediction:
        note = ""
        if licence is Licence.SMP and self.advise_organiser:
            note = (
                f"This meeting is expected to use a shared SMP+ licence, not your personal PMP+ licence: "
                f"{reason}."
            )
            if ask_it:
                note += f" To have your meetings use your own licence, ask IT for {ask_it}."
        return LicencePrediction(licence=licence.value, reason=reason, note=note)


def predict_licence(
    preflight: LicencePreflight | None, facts: MeetingFacts, booking: Booking | None, *, saved: bool
) -> tuple[Booking | None, str]:
    """The engine's pre-flight after a save: the prediction stored with the booking, a note for the organiser.

    Through the :class:`~xesync.ports.LicencePreflight` port (``None``: no CMS configured).
    """
    if preflight is None or booking is None or not booking.live or not saved:
        return booking, ""
    prediction = preflight.predict(booking, facts.organiser)
    if prediction.licence == "smp":
        log.warning(
            events.LICENCE_SMP_PREDICTED, room=facts.room, uid=facts.uid,
            conference_id=booking.conference_id, organiser=booking.organiser, reason=prediction.reason,
        )  # fmt: skip
    booking = dataclasses.replace(
        booking, predicted_licence=prediction.licence, predicted_reason=prediction.reason
    )
    return booking, prediction.note
