"""A series' occurrences on save, and a live occurrence detached from its series (tms-booking-api.md §11).

§11: modifying a series during a live occurrence *detaches* the live occurrence, *skips* future
occurrences that conflict with it, *leaves* past ones and gives pending occurrences *new conference ids*;
deleting a series during a live occurrence *ends* that occurrence. The simulator models the detached
occurrence as a single conference that keeps its ``ConferenceId``, its CMS state and the series' settings
as they were, without the external key. spec: §8.1 says ``DetachedFromExternalSourceId``/``…PrimaryKey``
are "perhaps set when a TMS user edits an external booking" [unconfirmed]; the simulator sets them to the
series' key on the detached conference.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from xesync.lab.tms.model import Booking, Occurrence, TmsUser
from xesync.lab.tms.recurrence import Pattern
from xesync.lab.tms.store import TmsStore


def ongoing(booking: Booking | None, now: datetime) -> Occurrence | None:
    """The live (``Ongoing``) occurrence of a series, if any."""
    if booking is None or not booking.recurrent:
        return None
    return next((o for o in booking.live() if booking.status(o, now) == "Ongoing"), None)


def detach(store: TmsStore, series: Booking, occ: Occurrence, caller: TmsUser) -> Booking:
    """Take ``occ`` out of ``series`` as a single conference with the same id; record it as ``Updated``."""
    occ.recurrence_id, occ.modified = None, False
    texts = dict(series.texts)
    texts["DetachedFromExternalSourceId"] = series.external_source_id or ""
    texts["DetachedFromExternalPrimaryKey"] = series.external_primary_key or ""
    single = Booking(
        booking_id=occ.conference_id,
        title=occ.title or series.title,
        owner_id=series.owner_id,
        created_by=series.created_by,
        numeric_id=series.numeric_id,
        password=series.password,
        version=store.next_version(),
        enums=dict(series.enums),
        texts=texts,
        isdn_restrict=series.isdn_restrict,
        participants=list(series.participants),
        time_zone_rules=list(series.time_zone_rules),
        occurrences=[occ],
        defective=series.defective,
    )
    occ.title = None
    series.occurrences = [o for o in series.occurrences if o is not occ]
    store.register(single)
    store.record(single, "Updated", caller)
    return single


def occurrences(
    store: TmsStore,
    existing: Booking | None,
    *,
    pattern: Pattern | None,
    starts: list[datetime],
    duration: timedelta,
    now: datetime,
) -> list[Occurrence]:
    """The occurrences of a saved series (or the one of a single meeting), reusing ids where they stay.

    With a live occurrence (§11) only pending starts that do not overlap it are booked, all with new ids;
    the live one is left out (the caller detaches it) and past ones are kept as they were.
    """
    live = ongoing(existing, now)
    old = {o.recurrence_id or o.start: o for o in existing.occurrences} if existing else {}
    single_old = (
        existing.occurrences[0] if existing and not existing.recurrent and existing.occurrences else None
    )
    out: list[Occurrence] = []
    for start in starts:
        rid = start if pattern is not None else None
        prior = old.get(start) if pattern is not None else single_old
        if prior is not None and pattern is not None and existing is not None and not existing.recurrent:
            prior = None  # a single meeting turned series: its id stays the series' id
        if live is not None:
            if start < now or (start < live.end and live.start < start + duration):
                continue  # past, or conflicting with the live occurrence: skipped
            prior = None  # pending occurrences get new conference ids
        occ = Occurrence(
            conference_id=prior.conference_id if prior else store.next_conference_id(),
            start=start,
            end=start + duration,
            recurrence_id=rid,
        )
        if prior is not None:
            occ.cms, occ.ended_at = prior.cms, prior.ended_at
        out.append(occ)
    exceptions = pattern.exceptions if pattern is not None else []
    for exc in exceptions:
        target = next((o for o in out if o.recurrence_id == exc.recurrence_id), None)
        if exc.kind == "DELETE" and target is not None:
            target.deleted = True
        elif exc.kind == "MODIFY" and target is not None:
            target.start = exc.start or target.start
            target.end = exc.end or target.end
            target.title, target.modified = exc.title, True
        elif exc.kind == "ADD" and exc.start is not None:
            out.append(
                Occurrence(
                    conference_id=store.next_conference_id(),
                    start=exc.start,
                    end=exc.end or exc.start + duration,
                    recurrence_id=exc.recurrence_id,
                    title=exc.title,
                    modified=True,
                )
            )
    # Sittings that already happened stay as they were (§11: past ones are left alone).
    kept = {o.conference_id for o in out}
    if existing is not None and pattern is not None:
        out.extend(o for o in existing.occurrences if o.conference_id not in kept and o.effective_end <= now)
    out.sort(key=lambda o: o.start)
    return out
