"""Booking rules: save (upsert), save one instance, delete, end (tms-booking-api.md §7, §11).

Every rule raises :class:`TmsFault` with the documented code, or the knob's code where the spec marks
the code [unconfirmed]. The caller holds the store's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from xesync.lab.tms import series
from xesync.lab.tms.model import Booking, ConferenceInput, Occurrence, Participant, TmsUser
from xesync.lab.tms.recurrence import Pattern, PatternException, RecurrenceError
from xesync.lab.tms.soap import Code, TmsFault
from xesync.lab.tms.store import TmsStore
from xesync.lab.tms.timezones import (
    ConferenceZone,
    TimeZoneError,
    TimeZoneRule,
    conference_zone,
    server_rules,
)
from xesync.lab.tms.values import default_title, fmt_time

STRICT = "Strict"
TZ_RULES_API = 11  # tms-booking-api.md §4: ConferenceTimeZoneRules from API 11
BEST_EFFORT = "BestEffortForced"


def save(
    store: TmsStore, inp: ConferenceInput, mode: str, caller: TmsUser, now: datetime, *, api: int = 22
) -> Booking:
    """``SaveConference(WithMode)``: upsert by external key, then by ``ConferenceId`` (§7.1).

    A client at ``api`` >= 11 has its series expanded by its ``ConferenceTimeZoneRules`` (§4, §8.5).
    """
    existing = _existing(store, inp)
    if existing is not None:
        _check_version(store, existing, inp.version)
        if existing.deleted:
            raise TmsFault(Code.MEETINGISDELETED, "The conference is deleted.")
        if all(store_end(o) <= now for o in existing.live()):
            raise TmsFault(Code.CANNOTBOOKINTHEPAST, "Conferences in the past cannot be changed.")
    first_occ = existing.occurrences[0] if existing and existing.occurrences else None
    start = inp.start or (first_occ.recurrence_id or first_occ.start if first_occ else None)
    end = inp.end or (first_occ.end if first_occ else None)
    if start is None or end is None:
        raise TmsFault(store.knobs.code("invalid_request"), "StartTimeUTC and EndTimeUTC are required.")
    if end <= start:
        raise TmsFault(store.knobs.code("invalid_request"), "The end time must be after the start time.")
    pattern = inp.pattern if inp.pattern is not None or existing is None else existing.pattern
    zone_rules = inp.time_zone_rules
    if zone_rules is None:
        zone_rules = existing.time_zone_rules if existing is not None else []
    # §4: below API 11 (and, per the server_time_zone knob, for a save without rules) the series is
    # expanded in the TMS server's own zone.
    own_rules = zone_rules if api >= TZ_RULES_API else []
    zone = _zone(store, own_rules or server_rules(store.knobs.server_time_zone))
    starts = _expand(store, pattern, start, zone)
    duration = end - start
    if starts[-1] + duration <= now:
        raise TmsFault(Code.CANNOTBOOKINTHEPAST, "The conference ends in the past.")
    if existing is not None and not existing.recurrent and pattern is None:
        occ = existing.occurrences[0]
        if existing.status(occ, now) == "Ongoing" and start != occ.start:
            raise TmsFault(Code.MEETINGACTIVE, "The start time of an ongoing conference cannot change.")
    participants = (
        inp.participants if inp.participants is not None else (existing.participants if existing else [])
    )
    # ASMX leniency (§5, CAP): a participant without ParticipantId (0) still booked; it names no system.
    participants = [p for p in participants if not (p.is_system and p.participant_id == 0)]
    _assign_participant_ids(participants)
    _check_systems(store, [p.participant_id for p in participants if p.is_system])
    owner = _owner(store, inp, caller, existing)
    occurrences = series.occurrences(
        store, existing, pattern=pattern, starts=starts, duration=duration, now=now
    )
    _check_window(store, [o for o in occurrences if not o.deleted and o.ended_at is None], now)
    systems = [p.participant_id for p in participants if p.is_system]
    conflict = _conflict(store, existing, systems=systems, occurrences=occurrences, now=now)
    if conflict and mode != BEST_EFFORT:
        raise TmsFault(Code.SYSTEM_ALREADY_BOOKED, conflict)
    old_live = existing.live() if existing is not None else []
    live = series.ongoing(existing, now)
    if existing is not None and live is not None:
        series.detach(store, existing, live, caller)
    booking = existing or Booking(
        booking_id=occurrences[0].conference_id if pattern is None else store.next_conference_id(),
        title="",
        owner_id=owner.user_id,
        created_by=caller.user_id,
        numeric_id=store.next_numeric_id(),
        password=inp.password or store.new_password(),
        version=0,
    )
    booking.title = inp.title if inp.title is not None else booking.title or default_title(start)
    booking.owner_id = owner.user_id
    booking.enums.update(inp.enums)
    booking.texts.update(inp.texts)
    if inp.password:
        booking.password = inp.password
    if inp.isdn_restrict is not None:
        booking.isdn_restrict = inp.isdn_restrict
    booking.external_source_id = inp.external_source_id or booking.external_source_id
    booking.external_primary_key = inp.external_primary_key or booking.external_primary_key
    booking.participants = list(participants)
    booking.pattern = pattern
    booking.time_zone_rules = list(zone_rules)
    booking.occurrences = occurrences
    booking.defective = bool(conflict)
    booking.version = store.next_version()
    store.register(booking)
    store.record(booking, "Updated" if existing else "New", caller)
    if existing is not None and live is not None:  # §11: the renumbered pending occurrences are gone
        new_ids = {o.conference_id for o in occurrences}
        gone_ids = [o.conference_id for o in old_live if o is not live and o.effective_end > now]
        for gone in [cid for cid in gone_ids if cid not in new_ids]:
            store.record(booking, "Deleted", caller, gone)
    return booking


def save_instance(
    store: TmsStore, inp: ConferenceInput, mode: str, caller: TmsUser, now: datetime
) -> tuple[Booking, Occurrence]:
    """``SaveConferenceRecInstance(WithMode)``: change one occurrence of a series."""
    booking, occ = _instance(store, inp)
    _check_version(store, booking, inp.version)
    if booking.deleted or occ.deleted:
        raise TmsFault(Code.MEETINGISDELETED, "The conference is deleted.")
    status = booking.status(occ, now)
    if status == "Finished":
        raise TmsFault(Code.CANNOTBOOKINTHEPAST, "Conferences in the past cannot be changed.")
    start, end = inp.start or occ.start, inp.end or occ.end
    if end <= start:
        raise TmsFault(store.knobs.code("invalid_request"), "The end time must be after the start time.")
    if end <= now:
        raise TmsFault(Code.CANNOTBOOKINTHEPAST, "The conference ends in the past.")
    if status == "Ongoing" and start != occ.start:
        raise TmsFault(Code.MEETINGACTIVE, "The start time of an ongoing conference cannot change.")
    candidate = Occurrence(
        conference_id=occ.conference_id, start=start, end=end, recurrence_id=occ.recurrence_id
    )
    _check_window(store, [candidate], now)
    conflict = _conflict(
        store, booking, systems=booking.systems(), occurrences=[candidate], now=now, only=occ
    )
    if conflict and mode != BEST_EFFORT:
        raise TmsFault(Code.SYSTEM_ALREADY_BOOKED, conflict)
    occ.start, occ.end, occ.modified = start, end, True
    if inp.title is not None:
        occ.title = inp.title
    if booking.pattern is not None and occ.recurrence_id is not None:
        rid = occ.recurrence_id
        booking.pattern.exceptions = [e for e in booking.pattern.exceptions if e.recurrence_id != rid]
        booking.pattern.exceptions.append(
            PatternException(kind="MODIFY", recurrence_id=rid, start=start, end=end, title=occ.title)
        )
    booking.defective = booking.defective or bool(conflict)
    booking.version = store.next_version()
    store.record(booking, "Updated", caller, occ.conference_id)
    return booking, occ


def delete(store: TmsStore, conference_id: int, caller: TmsUser, now: datetime) -> Booking:
    """``DeleteConferenceById``: the whole series when recurrent (§7.6); an ongoing sitting ends."""
    booking, _ = store.find(conference_id)
    return delete_booking(store, booking, caller, now)


def delete_booking(store: TmsStore, booking: Booking, caller: TmsUser, now: datetime) -> Booking:
    """Delete a booking; past conferences cannot be deleted (§11)."""
    if booking.deleted:
        raise TmsFault(Code.MEETINGISDELETED, "The conference is already deleted.")
    if all(store_end(o) <= now for o in booking.live()):
        raise TmsFault(Code.CANNOTBOOKINTHEPAST, "Conferences in the past cannot be deleted.")
    live = series.ongoing(booking, now)
    if live is not None:  # §11: deleting a series during a live occurrence ends that occurrence
        series.detach(store, booking, live, caller).occurrences[0].ended_at = now
    for occ in booking.live():
        if booking.status(occ, now) == "Ongoing":
            occ.ended_at = now
    booking.deleted = True
    booking.version = store.next_version()
    store.record(booking, "Deleted", caller)
    return booking


def delete_instance(store: TmsStore, conference_id: int, caller: TmsUser, now: datetime) -> Booking:
    """``DeleteConferenceRecInstanceById``: one occurrence (a single meeting: the meeting)."""
    booking, occ = store.find(conference_id)
    if occ is None or not booking.recurrent:
        return delete_booking(store, booking, caller, now)
    return delete_occurrence(store, booking, occ, caller, now)


def delete_occurrence(
    store: TmsStore, booking: Booking, occ: Occurrence, caller: TmsUser, now: datetime
) -> Booking:
    """Remove one sitting of a series, recording a ``DELETE`` exception."""
    if booking.deleted or occ.deleted:
        raise TmsFault(Code.MEETINGISDELETED, "The conference is already deleted.")
    status = booking.status(occ, now)
    if status == "Finished":
        raise TmsFault(Code.CANNOTBOOKINTHEPAST, "Conferences in the past cannot be deleted.")
    if status == "Ongoing":
        occ.ended_at = now
    else:
        occ.deleted = True
    if booking.pattern is not None and occ.recurrence_id is not None:
        rid = occ.recurrence_id
        booking.pattern.exceptions = [e for e in booking.pattern.exceptions if e.recurrence_id != rid]
        booking.pattern.exceptions.append(PatternException(kind="DELETE", recurrence_id=rid))
    booking.version = store.next_version()
    store.record(booking, "Deleted", caller, occ.conference_id)
    return booking


def end(store: TmsStore, conference_id: int, caller: TmsUser, now: datetime) -> Booking:
    """``EndConferenceById``: Finished with end = now, only while ongoing (§7.6)."""
    booking, occ = store.find(conference_id)
    if occ is None:
        occ = next((o for o in booking.live() if booking.status(o, now) == "Ongoing"), None)
    if booking.deleted or (occ is not None and occ.deleted):
        raise TmsFault(Code.MEETINGISDELETED, "The conference is deleted.")
    if occ is None or booking.status(occ, now) != "Ongoing":
        raise TmsFault(Code.MEETINGNOTACTIVE, "The conference is not active.")
    occ.ended_at = now
    booking.version = store.next_version()
    store.record(booking, "Updated", caller, occ.conference_id)
    return booking


# ---------------------------------------------------------------------------------- helpers


def store_end(occ: Occurrence) -> datetime:
    """When an occurrence ends (or ended)."""
    return occ.effective_end


def _existing(store: TmsStore, inp: ConferenceInput) -> Booking | None:
    found = store.find_external(inp.external_source_id, inp.external_primary_key)
    if found is not None:
        return found
    if inp.conference_id > 0:
        booking, _ = store.find(inp.conference_id)
        return booking
    return None


def _instance(store: TmsStore, inp: ConferenceInput) -> tuple[Booking, Occurrence]:
    booking = store.find_external(inp.external_source_id, inp.external_primary_key)
    if booking is not None and inp.recurrence_instance_id is not None:
        occ = next((o for o in booking.occurrences if o.recurrence_id == inp.recurrence_instance_id), None)
        if occ is None:
            raise TmsFault(Code.INSTANCE_NOT_FOUND_WITHIN_PATTERN, "The occurrence is not in the series.")
        return booking, occ
    booking, maybe = store.find(inp.conference_id)
    if maybe is None:
        raise TmsFault(
            Code.INSTANCE_NOT_FOUND_WITHIN_PATTERN, "ConferenceId names a series, not an occurrence."
        )
    return booking, maybe


def _check_version(store: TmsStore, booking: Booking, version: int | None) -> None:
    # spec: tms-booking-api.md §7.3: the fault code for a stale Version is [unconfirmed] (a knob).
    if version is None or version == 0:
        if store.knobs.version_required:
            raise TmsFault(store.knobs.code("stale_version"), "The conference Version is required.")
        return
    if version != booking.version:
        raise TmsFault(
            store.knobs.code("stale_version"),
            f"The conference has been modified (Version {version} is out of date); read it again.",
        )


def _assign_participant_ids(participants: list[Participant]) -> None:
    """Number the participants saved without ``ParticipantId`` 1, 2, … as TMS does (§8.2).

    spec: tms-booking-api.md §8.2: the guides disagree on negative or positive ids for external
    participants; ``1`` was observed for a dial-in, so the simulator counts up from 1, skipping ids
    the other external participants already carry.
    """
    taken = {p.participant_id for p in participants if not p.is_system}
    next_id = 1
    for part in participants:
        if part.is_system or part.participant_id != 0:
            continue
        while next_id in taken:
            next_id += 1
        part.participant_id = next_id
        taken.add(next_id)


def _zone(store: TmsStore, rules: list[TimeZoneRule]) -> ConferenceZone | None:
    try:
        return conference_zone(rules)
    except TimeZoneError as exc:
        raise TmsFault(store.knobs.code("time_zone_rule"), str(exc)) from None


def _expand(
    store: TmsStore, pattern: Pattern | None, start: datetime, zone: ConferenceZone | None
) -> list[datetime]:
    if pattern is None:
        return [start]
    try:
        starts = pattern.starts(start, zone)
    except RecurrenceError as exc:
        code = {
            "never_ending": Code.NEVER_ENDING_RECURRENCE_NOT_SUPPORTED,
            "too_many": store.knobs.code("too_many_occurrences"),
            "unsupported": store.knobs.code("yearly_recurrence"),
        }.get(exc.kind, store.knobs.code("invalid_request"))
        raise TmsFault(code, str(exc)) from None
    if not starts:
        raise TmsFault(store.knobs.code("invalid_request"), "The recurrence pattern has no occurrences.")
    return starts


def _check_systems(store: TmsStore, system_ids: list[int]) -> None:
    for system_id in system_ids:
        system = store.systems.get(system_id)
        if system is None:
            raise TmsFault(Code.SYSTEMNOTFOUND, f"System {system_id} does not exist.")
        if not system.allow_bookings:
            raise TmsFault(
                Code.SYSTEM_NOT_ALLOWED_IN_BOOKING, f"System {system.name} does not allow bookings."
            )


def _check_window(store: TmsStore, occurrences: list[Occurrence], now: datetime) -> None:
    limit = now + timedelta(days=store.knobs.booking_window_days)
    for occ in occurrences:
        if occ.start > limit:
            raise TmsFault(
                Code.START_TIME_AFTER_MAX_NUMBER_OF_DAYS_IN_FUTURE,
                f"The start time {fmt_time(occ.start)} is after the booking window "
                f"({store.knobs.booking_window_days} days).",
            )


def _owner(store: TmsStore, inp: ConferenceInput, caller: TmsUser, existing: Booking | None) -> TmsUser:
    named = inp.owner_username or inp.owner_email or (inp.owner_id is not None and inp.owner_id > 0)
    if not named and existing is not None:
        return store.users.get(existing.owner_id, caller)
    return store.resolve_owner(
        owner_id=inp.owner_id,
        username=inp.owner_username,
        email=inp.owner_email,
        first_name=inp.owner_first_name,
        last_name=inp.owner_last_name,
        caller=caller,
    )


def _conflict(
    store: TmsStore,
    booking: Booking | None,
    *,
    systems: list[int],
    occurrences: list[Occurrence],
    now: datetime,
    only: Occurrence | None = None,
) -> str | None:
    """A reason when a system is already booked in one of the occurrences' slots, across all series."""
    wanted = set(systems)
    for occ in occurrences:
        if occ.deleted or occ.effective_end <= now:
            continue
        for other in store.bookings.values():
            if other.deleted or other.defective or not wanted & set(other.systems()):
                continue
            for sitting in other.live():
                if other is booking and (
                    only is None or sitting is only or sitting.conference_id == occ.conference_id
                ):
                    continue
                if sitting.ended_at is not None or sitting.effective_end <= now:
                    continue
                if sitting.start < occ.end and occ.start < sitting.effective_end:
                    clash = sorted(wanted & set(other.systems()))
                    names = ", ".join(store.systems[s].name for s in clash if s in store.systems)
                    return (
                        f"System {names} is already booked from {fmt_time(sitting.start)} to "
                        f"{fmt_time(sitting.end)} (conference {sitting.conference_id})."
                    )
    return None
