"""Conference lifecycle on the lab clock: Pending → Ongoing → Finished, and the CMS calls that go with it.

Every tick (once a second, and at once after every clock move) the simulator looks for sittings that
have started or ended. With a CMS simulator, a start opens a pool space and posts the call and its
legs; a later end of a running sitting (an extension) PUTs the start's space fields again; an end resets
the space and deletes the call (cms-api.md §4.1). HTTP to CMS happens outside the store's lock, so SOAP
requests are not held up by CMS.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from xesync import events
from xesync.lab.tms.cms_driver import CmsDriveError, MeetingStart
from xesync.lab.tms.model import Booking, Occurrence

if TYPE_CHECKING:
    from xesync.lab.tms.server import TmsSimulator

log = structlog.get_logger(__name__)
Due = tuple[Occurrence, dict[str, Any]]


class Lifecycle:
    """Starts and ends sittings as the lab clock passes them."""

    def __init__(self, sim: TmsSimulator) -> None:
        self.sim = sim
        self._lock = threading.Lock()  # one tick at a time (the ticker and clock moves race)

    def on_tick(self, now: datetime) -> None:
        """The clock listener."""
        with self._lock:
            starts, extends, ends = self._due(now)
            for occ, meeting in starts:
                self._start(occ, meeting)
            for occ, record in extends:
                self._extend(occ, record)
            for occ, record in ends:
                self._end(occ, record)

    def _due(self, now: datetime) -> tuple[list[tuple[Occurrence, MeetingStart]], list[Due], list[Due]]:
        store = self.sim.store
        starts: list[tuple[Occurrence, MeetingStart]] = []
        extends: list[Due] = []
        ends: list[Due] = []
        with store.lock:
            for booking in store.bookings.values():
                for occ in booking.occurrences:
                    state = occ.cms.get("state")
                    status = booking.status(occ, now)
                    if state is None and status == "Ongoing":
                        occ.cms["state"] = "starting"
                        starts.append((occ, self._meeting(booking, occ)))
                    elif state == "started" and status in ("Finished", "Deleted", "Defective"):
                        occ.cms["state"] = "ending"
                        ends.append((occ, dict(occ.cms)))
                    elif (
                        state == "started"
                        and status == "Ongoing"
                        and occ.end.isoformat() > occ.cms.get("end", "")
                    ):
                        occ.cms["end"] = occ.end.isoformat()
                        extends.append((occ, dict(occ.cms)))
        return starts, extends, ends

    def _meeting(self, booking: Booking, occ: Occurrence) -> MeetingStart:
        store, knobs = self.sim.store, self.sim.knobs
        owner = store.users.get(booking.owner_id)
        owner_fields: dict[str, str] = {}
        if owner is not None and knobs.owner_to_cms == "ownerJid":
            owner_fields["ownerJid"] = knobs.owner_jid_template.format(
                username=owner.short_name, email=owner.email, domain=self.sim.fixture.domain
            )
        elif owner is not None and knobs.owner_to_cms == "ownerAdGuid":
            if owner.ad_guid:
                owner_fields["ownerAdGuid"] = owner.ad_guid
            else:
                log.warning(
                    events.LAB_TMS_CMS_FAILED, step="owner", reason="no directory GUID", user_id=owner.user_id
                )
        if knobs.meeting_scheduler and owner is not None:
            owner_fields["meetingScheduler"] = owner.display_name
        uri_fields = (
            {"uri": str(booking.numeric_id), "callId": str(booking.numeric_id)}
            if knobs.set_uri_at_start
            else {}
        )
        # One leg per room (TMS systems), plus dial-out participants given by number or URI.
        parties = [
            store.systems[s].sip_uri
            for s in booking.systems()
            if s in store.systems and store.systems[s].sip_uri
        ]
        parties += [
            p.name_or_number for p in booking.participants if p.call_type.endswith("->") and p.name_or_number
        ]
        return MeetingStart(
            conference_id=occ.conference_id,
            title=occ.title or booking.title,
            passcode=booking.password,
            numeric_id=booking.numeric_id,
            remote_parties=tuple(parties),
            owner_fields=owner_fields,
            uri_fields=uri_fields,
        )

    def _start(self, occ: Occurrence, meeting: MeetingStart) -> None:
        driver = self.sim.driver
        record: dict[str, Any] = {"state": "started"}
        if driver is not None:
            try:
                record.update(driver.start(meeting))
            except CmsDriveError as exc:
                log.warning(
                    events.LAB_TMS_CMS_FAILED,
                    step="start",
                    conference_id=meeting.conference_id,
                    error=str(exc),
                )
                record = {"state": "failed", "error": str(exc)}
        with self.sim.store.lock:
            record["end"] = occ.end.isoformat()
            occ.cms = record
        log.info(
            events.LAB_CONFERENCE_STARTED,
            conference_id=meeting.conference_id,
            cms_call=record.get("call_id"),
            cms_space=record.get("space_id"),
            owner=record.get("owner"),
        )

    def _extend(self, occ: Occurrence, record: dict[str, Any]) -> None:
        driver = self.sim.driver
        if driver is not None and "space_id" in record:
            try:
                driver.extend(record)
            except CmsDriveError as exc:
                log.warning(
                    events.LAB_TMS_CMS_FAILED, step="extend", conference_id=occ.conference_id, error=str(exc)
                )
        log.info(events.LAB_CONFERENCE_EXTENDED, conference_id=occ.conference_id, end=record["end"])

    def _end(self, occ: Occurrence, record: dict[str, Any]) -> None:
        driver = self.sim.driver
        if driver is not None and "call_id" in record:
            try:
                driver.end(record, clear_owner=self.sim.knobs.reset_clears_owner)
            except CmsDriveError as exc:
                log.warning(
                    events.LAB_TMS_CMS_FAILED, step="end", conference_id=occ.conference_id, error=str(exc)
                )
        with self.sim.store.lock:
            occ.cms = {**record, "state": "ended"}
        log.info(events.LAB_CONFERENCE_ENDED, conference_id=occ.conference_id, cms_call=record.get("call_id"))
