"""Where the demo's licence verdict column comes from.

INTERIM: xesync's licence checker (``xesync.licence_service.LicenceChecker``) is not in this tree
yet. Until it is, :func:`licence_verdicts` returns :class:`CmsFactsVerdicts`, which gathers the
start facts through xesync's own CMS adapter and judges them with :func:`xesync.licence.decide`,
the same pure rules. It makes no owner fix-up, so ``cms.enforce_owner`` has no effect through it.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Protocol

from xesync import wiring
from xesync.adapters.cms import CmsCallMonitor
from xesync.config.model import Config
from xesync.directory import Directory, Person
from xesync.licence import StartFacts, decide
from xesync.model import Booking, LicenceVerdict


class VerdictSource(Protocol):
    """Gives the licence verdict of a booking whose call has started."""

    name: str

    def verdict(self, booking: Booking, now: datetime) -> tuple[LicenceVerdict, str | None]:
        """The verdict, and the space owner CMS showed (``None``: no owner, or no space found)."""
        ...


class CmsFactsVerdicts:
    """INTERIM verdicts: xesync's CMS adapter gathers the facts, :func:`xesync.licence.decide` judges."""

    name = "interim: CMS facts judged by xesync.licence.decide (no licence checker yet)"

    def __init__(self, monitor: CmsCallMonitor, directory: Directory) -> None:
        self.monitor, self.directory = monitor, directory

    def verdict(self, booking: Booking, now: datetime) -> tuple[LicenceVerdict, str | None]:
        """Find the booking's space and call on CMS, then decide."""
        organiser = self.directory.resolve(booking.organiser)
        user = None
        if isinstance(organiser, Person):
            user = self.monitor.find_user(jid=organiser.jid, email=organiser.email)
        meeting = self.monitor.find_meeting(info_text=booking.info_text, title=booking.subject, start=now)
        space = meeting.space
        owner_user = self.monitor.user(space.owner_id) if space is not None and space.owner_id else None
        facts = StartFacts(
            organiser=organiser,
            organiser_user=user,
            meeting=meeting,
            owner_user=owner_user,
            licensing=self.monitor.licensing(),
        )
        return decide(facts).verdict, space.owner if space is not None else None


def licence_verdicts(
    cfg: Config, wired: wiring.Wired, directory: Directory, stack: ExitStack
) -> VerdictSource:
    """The demo's verdict source over ``wired`` (closed with ``stack``)."""
    del wired  # the licence checker will read the bookings from the store
    if cfg.cms is None:
        raise ValueError("the demo's configuration has no [cms]")
    monitor = CmsCallMonitor(cfg.cms)
    stack.callback(monitor.close)
    return CmsFactsVerdicts(monitor, directory)
