"""Which licence a meeting's Cisco Meeting Server call will use, and which it did: pure rules over facts.

The CMS adapter (:mod:`xesync.adapters.cms`, the :class:`~xesync.ports.CallMonitor` port) gathers the
facts; this module only decides. No I/O, no clock, no logging: every time it compares is handed in.

The rule (cms-api.md §3.1): when a call **starts** in a space, CMS gives it a joined PMP+ member's
licence, else the **space owner's** personal licence if the owner's effective userProfile has
``hasLicense=true``, else a shared SMP+ licence. Room systems are never members, so for a meeting
TMS runs in its ``TMS_Scheduled_Meeting_<n>`` pool only the owner rule can give PMP+. No call field
names the licence; consumption is read from ``/system/multipartyLicensing/activePersonalLicenses``
(cms-api.md §3.4).

Terminology
-----------

organiser
    The meeting's organiser as the directory resolved them (:class:`~xesync.directory.Person`), or
    :class:`~xesync.directory.NotInDirectory`.
fix-up
    xesync's own ``PUT /coSpaces/<id> ownerJid=<organiser>`` (``cms.enforce_owner``), with when it
    landed (:class:`OwnerFixup`). It helps only if it precedes the call's start, or if CMS
    re-evaluates mid-call ([unconfirmed], §6.3).

*CMS user*, *space*, *call* and *personal-licence calls* are defined in :mod:`xesync.cms_facts`,
whose values this module judges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from xesync.cms_facts import CmsCall, CmsSpace, CmsUser, LicensingSnapshot, MeetingOnCms
from xesync.directory import NotInDirectory, Person
from xesync.model import LicenceVerdict, as_utc


class Licence(StrEnum):
    """The kind of multiparty licence a call holds (or is predicted to hold)."""

    PMP = "pmp"  # Personal Multiparty Plus: the owner's (or a joined member's) personal licence
    SMP = "smp"  # Shared Multiparty Plus: the pool licence for calls tied to no licensed user


# ---------------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerFixup:
    """xesync's owner fix-up: ``ownerJid`` it set on the space, and when the PUT was answered.

    :ivar jid: the JID xesync set.
    :ivar at: when CMS accepted it.
    """

    jid: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at, "at"))


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFacts:
    """Everything the verdict at start is decided from.

    :ivar organiser: the organiser as the directory resolved them.
    :ivar organiser_user: the organiser's CMS user (found by JID or e-mail), or ``None``.
    :ivar meeting: what was found on CMS (space and call), ``None`` when CMS could not be asked.
    :ivar owner_user: the space owner's CMS user (``ownerId``), when the space has an owner CMS resolved.
    :ivar licensing: the licence counters, ``None`` when they could not be read.
    :ivar fixup: xesync's fix-up on this space, if it made one.
    :ivar unavailable: why CMS could not be asked (the :class:`~xesync.errors.ServiceUnavailableError`
        text), which makes the verdict ``unverifiable``.
    """

    organiser: Person | NotInDirectory
    organiser_user: CmsUser | None = None
    meeting: MeetingOnCms | None = None
    owner_user: CmsUser | None = None
    licensing: LicensingSnapshot | None = None
    fixup: OwnerFixup | None = None
    unavailable: str | None = None


# ---------------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """The licence a meeting is expected to use, decided at booking.

    :ivar licence: PMP+ or SMP+.
    :ivar reason: why, in plain language.
    :ivar ask_it: what the organiser should ask IT for (``None`` when PMP+ is predicted).
    """

    licence: Licence
    reason: str
    ask_it: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The licence verdict for one meeting (or occurrence) at its start.

    :ivar verdict: one of :class:`~xesync.model.LicenceVerdict`.
    :ivar reason: why, in plain language, with the evidence.
    :ivar owner_found: the space's owner (``ownerJid``, else ``ownerAdGuid``), if any.
    :ivar fixup_in_time: whether xesync's fix-up landed before the call started; ``None`` without
        a fix-up or when the call's start is unknown.
    :ivar calls_on_licence: the organiser's personal-licence calls now, if read.
    """

    verdict: LicenceVerdict
    reason: str
    owner_found: str | None = None
    fixup_in_time: bool | None = None
    calls_on_licence: int | None = None


# ---------------------------------------------------------------------------------- prediction


def _groups(pmp_groups: Sequence[str]) -> str:
    return " or ".join(pmp_groups) if pmp_groups else "the PMP+ group"


def predict(  # noqa: PLR0911 - one return per prediction branch
    organiser: Person | NotInDirectory,
    cms_user: CmsUser | None,
    *,
    cms_checked: bool = True,
    pmp_groups: Sequence[str] = (),
) -> Prediction:
    """The licence a meeting booked by ``organiser`` should use, if TMS (or the fix-up) names them as owner.

    CMS decides from the CMS user's effective profile, so that is what counts when CMS was asked;
    the directory's PMP+ group stands in only when it was not (``cms_checked=False``). A disagreement
    between the two is named in the reason, because it means the CMS LDAP source filter and
    ``ldap.pmp_groups`` select different people.

    :param organiser: the directory's answer for the organiser.
    :param cms_user: the organiser's CMS user, ``None`` if CMS has none (or was not asked).
    :param cms_checked: whether CMS was asked; ``False`` when it could not be.
    :param pmp_groups: ``ldap.pmp_groups``, named in the advice.
    """
    groups = _groups(pmp_groups)
    if isinstance(organiser, NotInDirectory):
        # No JID can be formed, so neither TMS nor the fix-up can name a CMS owner.
        return Prediction(
            licence=Licence.SMP,
            reason=f"{organiser.address} is not in the directory, so no CMS user can own the call",
            ask_it=f"an account in the directory for {organiser.address}, in {groups}",
        )
    who = organiser.email
    if not cms_checked:
        if organiser.pmp:
            return Prediction(
                licence=Licence.PMP,
                reason=f"{who} is in {organiser.pmp_group or groups} (CMS could not be asked to confirm)",
            )
        return Prediction(
            licence=Licence.SMP,
            reason=f"{who} is not in {groups} (CMS could not be asked)",
            ask_it=f"membership of {groups}, which grants a personal PMP+ licence on CMS",
        )
    if cms_user is None:
        if organiser.pmp:
            return Prediction(
                licence=Licence.SMP,
                reason=(
                    f"{who} is in {organiser.pmp_group or groups}, but CMS has no user {organiser.jid} "
                    "(not imported by its LDAP sync)"
                ),
                ask_it=f"an import of {organiser.jid} into CMS (an LDAP source covering {groups}, a sync)",
            )
        return Prediction(
            licence=Licence.SMP,
            reason=f"{who} is not in {groups} and CMS has no user {organiser.jid}",
            ask_it=f"membership of {groups} and a CMS LDAP sync, which grant a personal PMP+ licence",
        )
    if cms_user.has_license:
        note = "" if organiser.pmp else f"; note: the directory does not list them in {groups}"
        return Prediction(
            licence=Licence.PMP,
            reason=f"CMS user {cms_user.jid} has a licensed profile ({cms_user.profile_from} level){note}",
        )
    if organiser.pmp:
        return Prediction(
            licence=Licence.SMP,
            reason=(
                f"{who} is in {organiser.pmp_group or groups}, but the effective CMS profile of "
                f"{cms_user.jid} ({cms_user.profile_from} level) has no hasLicense"
            ),
            ask_it=(
                f"a userProfile with hasLicense=true on the CMS LDAP source for {groups}, then an LDAP sync"
            ),
        )
    return Prediction(
        licence=Licence.SMP,
        reason=f"{who} is not in {groups} and their CMS profile has no hasLicense",
        ask_it=f"membership of {groups}, which grants a personal PMP+ licence on CMS",
    )


# ---------------------------------------------------------------------------------- verdict


def _norm(value: str | None) -> str | None:
    return value.strip().casefold() if value else None


def owner_is_organiser(space: CmsSpace, organiser: Person | NotInDirectory, user: CmsUser | None) -> bool:
    """Whether the space's owner is the organiser, by ``ownerId``, ``ownerJid`` or ``ownerAdGuid``."""
    if user is not None and space.owner_id and space.owner_id == user.id:
        return True
    jids = {_norm(user.jid) if user else None}
    if isinstance(organiser, Person):
        jids.add(_norm(organiser.jid))
    jids.discard(None)
    if space.owner_jid and _norm(space.owner_jid) in jids:
        return True
    guid = organiser.guid if isinstance(organiser, Person) else None
    return bool(space.owner_ad_guid and guid and space.owner_ad_guid.strip().lower() == guid.strip().lower())


def _fixup_note(fixup: OwnerFixup | None, call: CmsCall) -> tuple[bool | None, str]:
    if fixup is None:
        return None, ""
    if call.started_at is None:
        return None, f"; xesync set the owner at {fixup.at.isoformat()} (the call's start is unknown)"
    if fixup.at <= call.started_at:
        return True, f"; xesync's fix-up set the owner at {fixup.at.isoformat()}, before the call started"
    return False, (
        f"; xesync's fix-up set the owner at {fixup.at.isoformat()}, after the call started at "
        f"{call.started_at.isoformat()}"
    )


def decide(facts: StartFacts) -> Verdict:  # noqa: PLR0911 - one return per verdict branch
    """The verdict for one meeting at start (cms-api.md §3.4 steps 1, 2 and 4)."""
    if facts.unavailable is not None or facts.meeting is None:
        why = facts.unavailable or "not asked"
        return Verdict(
            verdict=LicenceVerdict.UNVERIFIABLE, reason=f"CMS could not be asked ({why}); retried later"
        )
    space, call = facts.meeting.space, facts.meeting.call
    # Nothing on CMS looks like this meeting: not started, already ended, or run elsewhere.
    if space is None:
        return Verdict(
            verdict=LicenceVerdict.CALL_NOT_FOUND,
            reason="no CMS space matches the meeting's dial-in URI, call id or title",
        )
    if call is None:
        return Verdict(
            verdict=LicenceVerdict.CALL_NOT_FOUND,
            reason=f"space {space.id} ({space.name}) has no active call",
            owner_found=space.owner,
        )
    in_time, note = _fixup_note(facts.fixup, call)
    where = f"space {space.id} ({space.name}), call {call.id}"
    # No owner at all: TMS passed none (and no fix-up, or it was undone): shared licence.
    if space.owner is None:
        cause = "TMS passed no owner" if facts.fixup is None else "the owner xesync set is gone"
        return Verdict(
            verdict=LicenceVerdict.SMP_NO_OWNER,
            reason=f"{where} has no owner: {cause}, so CMS uses an SMP+ licence{note}",
            fixup_in_time=in_time,
        )
    # Someone else's owner, e.g. a stale owner left on a reused pool space (cms-api.md §4.1 item 8).
    if not owner_is_organiser(space, facts.organiser, facts.organiser_user):
        return Verdict(
            verdict=LicenceVerdict.OWNER_MISMATCH,
            reason=f"{where} is owned by {space.owner}, not the organiser{_organiser_label(facts)}{note}",
            owner_found=space.owner,
            fixup_in_time=in_time,
        )
    user = facts.owner_user or facts.organiser_user
    # The organiser owns it, but CMS grants them no personal licence.
    if user is None or not user.has_license:
        return Verdict(
            verdict=LicenceVerdict.SMP_OWNER_UNLICENSED,
            reason=f"{where} is owned by the organiser, but {_unlicensed(facts, user)}{note}",
            owner_found=space.owner,
            fixup_in_time=in_time,
        )
    return _consumption(facts, user, where, in_time, note)


def _consumption(facts: StartFacts, user: CmsUser, where: str, in_time: bool | None, note: str) -> Verdict:
    owner = facts.meeting.space.owner if facts.meeting and facts.meeting.space else None
    if facts.licensing is None:
        return Verdict(
            verdict=LicenceVerdict.PMP_LIKELY,
            reason=f"{where}: owner and licence are right; activePersonalLicenses could not be read{note}",
            owner_found=owner,
            fixup_in_time=in_time,
        )
    calls = facts.licensing.calls_on_licence(user_id=user.id, jid=user.jid)
    # Intent right, nothing counted: the licence was chosen at start, before the owner was there.
    if calls == 0:
        late = (
            "the owner came too late: CMS chose the licence when the call started, with no owner"
            if in_time is False
            else "the owner was set after the call started, so CMS chose an SMP+ licence"
        )
        return Verdict(
            verdict=LicenceVerdict.SMP_NO_OWNER,
            reason=f"{where} is owned by the organiser now, but no call counts against {user.jid}'s "
            f"personal licence: {late}{note}",
            owner_found=owner,
            fixup_in_time=in_time,
            calls_on_licence=0,
        )
    if calls == 1:
        return Verdict(
            verdict=LicenceVerdict.PMP_CONFIRMED,
            reason=f"{where} is owned by {user.jid}, whose personal licence carries one call{note}",
            owner_found=owner,
            fixup_in_time=in_time,
            calls_on_licence=1,
        )
    # Several calls on one licence: which is this one cannot be told (§3.4), unless no call runs on SMP+.
    if facts.licensing.calls_without_personal_licence == 0:
        return Verdict(
            verdict=LicenceVerdict.PMP_CONFIRMED,
            reason=f"{where} is owned by {user.jid}, whose licence carries {calls} calls, and no call in "
            f"the cluster runs on SMP+{note}",
            owner_found=owner,
            fixup_in_time=in_time,
            calls_on_licence=calls,
        )
    return Verdict(
        verdict=LicenceVerdict.PMP_LIKELY,
        reason=f"{where} is owned by {user.jid}, but their licence carries {calls} calls at once, so this "
        f"one cannot be told apart{note}",
        owner_found=owner,
        fixup_in_time=in_time,
        calls_on_licence=calls,
    )


def _organiser_label(facts: StartFacts) -> str:
    if facts.organiser_user is not None:
        return f" {facts.organiser_user.jid}"
    if isinstance(facts.organiser, Person):
        return f" {facts.organiser.jid}"
    return f" ({facts.organiser.address}, not in the directory)"


def _unlicensed(facts: StartFacts, user: CmsUser | None) -> str:
    outside = isinstance(facts.organiser, Person) and not facts.organiser.pmp
    group = "; they are outside the PMP+ group" if outside else ""
    if user is None:
        return f"they are not a CMS user{group}"
    return f"the effective profile of {user.jid} ({user.profile_from} level) has no hasLicense{group}"
