"""The Cisco Meeting Server adapter: spaces, calls, users and licence counters (the CallMonitor port).

:class:`CmsCallMonitor` implements :class:`xesync.ports.CallMonitor` with one method per question the
engine asks, each naming the CMS requests it makes (cms-api.md §2-§4). The wire rules (paging to
``total``, ``failureDetails``, retries, several bridges) are :mod:`xesync.adapters.cms_http`'s.

**Several Call Bridges** (cms-api.md §1.5). Spaces, users and profiles are read from the first bridge
that answers (one shared database); calls and licence counters are read from **every** bridge and
summed, and one bridge that cannot be asked makes that answer a
:class:`~xesync.errors.ServiceUnavailableError` (an incomplete count would be a wrong verdict).

``[cms] urls`` lists every bridge's API URL (sharing ``username``/``password``; ``url`` alone stays
valid); :func:`xesync.wiring.cms_monitors` passes it as ``CmsCallMonitor(config.cms, urls=…)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from lxml import etree

from xesync.adapters.cms_http import Bridge, CmsHttp, number, text
from xesync.cms_facts import (
    CmsCall,
    CmsSpace,
    CmsUser,
    LicensingSnapshot,
    MeetingOnCms,
    PersonalLicenceUse,
    SpaceMatch,
    dial_in,
)
from xesync.config.model import CmsConfig
from xesync.errors import CmsHttpError


class CmsCallMonitor:
    """Reads (and, for the owner fix-up, writes) one CMS cluster; see the module docstring.

    :param config: ``[cms]``: URL, API user, password, timeout and TLS.
    :param urls: the API URL of every Call Bridge (default: ``config.url`` only).
    :param attempts: tries per request before giving up on a transient failure (at least 1).
    :param backoff: the first wait; it doubles per attempt.
    :param max_wait: the longest single wait; a ``Retry-After`` beyond it is not waited for.
    :param sleep: how to wait (tests pass a recorder).
    """

    def __init__(
        self,
        config: CmsConfig,
        *,
        urls: Sequence[str] | None = None,
        attempts: int = 4,
        backoff: timedelta = timedelta(seconds=0.5),
        max_wait: timedelta = timedelta(seconds=30),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = CmsHttp(
            config, urls=urls, attempts=attempts, backoff=backoff, max_wait=max_wait, sleep=sleep
        )

    @property
    def bridges(self) -> tuple[str, ...]:
        """The API root of every Call Bridge asked."""
        return tuple(b.url for b in self._http.bridges)

    def close(self) -> None:
        """Close every bridge's HTTP session."""
        self._http.close()

    # ------------------------------------------------------------------------------ users

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """The CMS user with ``jid`` (tried first) or ``email``, with its effective licence.

        ``GET /users?filter=<jid>`` (then an exact ``userJid`` match), else
        ``GET /users?emailFilter=<email>`` (2.1+, exact), then ``GET /users/<id>`` and the profile chain.
        """
        if jid:
            for item in self._http.config_collection("/users", {"filter": jid}):
                if (text(item, "userJid") or "").casefold() == jid.strip().casefold() and item.get("id"):
                    return self.user(str(item.get("id")))
        if email:
            for item in self._http.config_collection("/users", {"emailFilter": email}):
                user = self.user(str(item.get("id")))
                # A CMS before 2.1 ignores emailFilter; the detail's email decides.
                if user is not None and (user.email or "").casefold() == email.strip().casefold():
                    return user
        return None

    def user(self, user_id: str) -> CmsUser | None:
        """``GET /users/<id>`` with its effective userProfile (cms-api.md §3.2); ``None`` if unknown.

        spec: cms-api.md §3.2: the chain user → tenant → ``/system/profiles`` is [unconfirmed], and so
        is whether ``/users/<id>`` shows an inherited profile; each level is read explicitly.
        """
        found = self._http.config_get(f"/users/{user_id}", missing="userDoesNotExist")
        if found is None:
            return None
        profile, level = text(found, "userProfile"), "user"
        tenant = text(found, "tenant")
        if profile is None and tenant:
            tenant_doc = self._http.config_get(f"/tenants/{tenant}", missing="tenantDoesNotExist")
            profile, level = (text(tenant_doc, "userProfile") if tenant_doc is not None else None), "tenant"
        if profile is None:
            profiles = self._http.config_get("/system/profiles")
            profile, level = (text(profiles, "userProfile") if profiles is not None else None), "system"
        has_license = False
        if profile is not None:
            doc = self._http.config_get(f"/userProfiles/{profile}", missing="userProfileDoesNotExist")
            has_license = doc is not None and (text(doc, "hasLicense") or "").lower() == "true"
        return CmsUser(
            id=user_id,
            jid=text(found, "userJid") or "",
            name=text(found, "name"),
            email=text(found, "email"),
            user_profile=profile,
            profile_from=level if profile is not None else "none",
            has_license=has_license,
        )

    # ------------------------------------------------------------------------------ spaces and calls

    def space(self, space_id: str) -> CmsSpace | None:
        """``GET /coSpaces/<id>`` (the owner is read from the object; list items may lack it, §2.1)."""
        found = self._http.config_get(f"/coSpaces/{space_id}", missing="coSpaceDoesNotExist")
        if found is None:
            return None
        return CmsSpace(
            id=space_id,
            name=text(found, "name"),
            uri=text(found, "uri"),
            secondary_uri=text(found, "secondaryUri"),
            call_id=text(found, "callId"),
            owner_jid=text(found, "ownerJid"),
            owner_id=text(found, "ownerId"),
            owner_ad_guid=text(found, "ownerAdGuid"),
        )

    def find_meeting(
        self, *, info_text: str | None, title: str | None, start: datetime | None = None
    ) -> MeetingOnCms:
        """The space and active call TMS uses for a meeting (cms-api.md §4.3 "Find the space").

        First a dial-in URI or numeric id from ``ConferenceInfoText`` against the spaces' ``uri``,
        ``secondaryUri`` and ``callId``; then the space TMS renamed to ``title`` at start. Among several
        spaces with that title, one with an active call wins, the one whose call started nearest to
        ``start`` when given.

        spec: cms-api.md §1.3 and §6.7: which fields ``filter=`` matches is [unconfirmed]; every
        candidate the filter returns is compared exactly, so a broader filter costs only paging.
        """
        wanted = dial_in(info_text)
        for how, values, fields in (
            (SpaceMatch.URI, wanted.uris, ("uri", "secondaryUri")),
            (SpaceMatch.CALL_ID, wanted.call_ids, ("callId",)),
        ):
            for value in values:
                for item in self._http.config_collection("/coSpaces", {"filter": value}):
                    if any((text(item, f) or "").casefold() == value for f in fields) and item.get("id"):
                        space = self.space(str(item.get("id")))
                        if space is not None:
                            return MeetingOnCms(
                                space=space, call=self.active_call(space.id), matched_by=how, candidates=1
                            )
        if not title or not title.strip():
            return MeetingOnCms()
        named = [
            str(item.get("id"))
            for item in self._http.config_collection("/coSpaces", {"filter": title.strip()})
            if (text(item, "name") or "").strip().casefold() == title.strip().casefold() and item.get("id")
        ]
        if not named:
            return MeetingOnCms()
        found = [(space_id, self.active_call(space_id)) for space_id in named]
        running = [(space_id, call) for space_id, call in found if call is not None]
        pick_id, pick_call = (running or found)[0]
        if start is not None and len(running) > 1:
            pick_id, pick_call = min(running, key=lambda pair: _distance(pair[1], start))
        return MeetingOnCms(
            space=self.space(pick_id), call=pick_call, matched_by=SpaceMatch.TITLE, candidates=len(named)
        )

    def active_call(self, space_id: str) -> CmsCall | None:
        """The active call of a space: ``GET /calls?coSpaceFilter=<id>`` on every bridge, then its detail."""
        for bridge in self._http.bridges:
            for item in self._http.collection(bridge, "/calls", {"coSpaceFilter": space_id}):
                call_id = item.get("id")
                # Compared here too, so that a bridge ignoring coSpaceFilter cannot hand over another call.
                if not call_id or text(item, "coSpace") not in (None, space_id):
                    continue
                detail = self._http.get(bridge, f"/calls/{call_id}", missing="callDoesNotExist")
                if detail is None:
                    continue  # ended between the list and the read
                return CmsCall(
                    id=str(call_id),
                    cospace_id=text(detail, "coSpace"),
                    name=text(detail, "name"),
                    correlator=text(detail, "callCorrelator"),
                    owner_name=text(detail, "ownerName"),
                    started_at=self._started(bridge, number(text(detail, "durationSeconds"))),
                    bridge=bridge.url,
                )
        return None

    def _started(self, bridge: Bridge, duration: float | None) -> datetime | None:
        # The bridge's own clock (``cdrTime``) minus the duration, so that no local clock is involved.
        if duration is None:
            return None
        status = self._http.get(bridge, "/system/status")
        cdr_time = text(status, "cdrTime") if status is not None else None
        if cdr_time is None:
            return None
        try:
            now = datetime.fromisoformat(cdr_time)
        except ValueError:
            return None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)  # cms-api.md §2.9: cdrTime is RFC 3339 UTC
        return now - timedelta(seconds=duration)

    # ------------------------------------------------------------------------------ owner fix-up

    def set_owner(self, space_id: str, jid: str) -> CmsSpace:
        """``PUT /coSpaces/<id> ownerJid=<jid>``, then read the space back.

        :raises CmsHttpError: e.g. ``userDoesNotExist`` when no CMS user has ``jid`` (the status and
            element are [unconfirmed], cms-api.md §6.2), or ``coSpaceDoesNotExist``.
        """
        self._http.put(f"/coSpaces/{space_id}", {"ownerJid": jid})
        space = self.space(space_id)
        if space is None:
            raise CmsHttpError(404, "coSpaceDoesNotExist", f"/coSpaces/{space_id}")
        return space

    def clear_owner(self, space_id: str, *, only_if: str | None = None) -> bool:
        """``PUT /coSpaces/<id> ownerJid=`` (empty unsets it); with ``only_if``, only while that JID owns it.

        :returns: whether the owner was cleared (``False``: the space is gone, has no owner, or now
            has another owner, which is left alone).
        """
        space = self.space(space_id)
        if space is None or space.owner_jid is None:
            return False
        if only_if is not None and space.owner_jid.casefold() != only_if.casefold():
            return False
        self._http.put(f"/coSpaces/{space_id}", {"ownerJid": ""})
        return True

    # ------------------------------------------------------------------------------ licensing

    def licensing(self) -> LicensingSnapshot:
        """``GET /system/multipartyLicensing`` and its ``activePersonalLicenses`` on every bridge, summed.

        Weighted counts are summed where given, because their sum over the bridges counts each
        distributed call once (cms-api.md §2.9).
        """
        personal: int | None = None
        calls = without = 0.0
        uses: dict[tuple[str | None, str | None], list[float | None]] = {}
        for bridge in self._http.bridges:
            doc = self._http.get(bridge, "/system/multipartyLicensing")
            if doc is None:  # pragma: no cover - get returns None only with ``missing``
                continue
            if personal is None:
                count = number(text(doc, "personalLicenses"))
                personal = int(count) if count is not None else None
            calls += _weighted(doc, "weightedCallsActive", "callsActive")
            without += _weighted(doc, "weightedCallsWithoutPersonalLicense", "callsWithoutPersonalLicense")
            for item in self._http.collection(bridge, "/system/multipartyLicensing/activePersonalLicenses"):
                key = (item.get("id"), item.get("jid"))
                active = number(text(item, "callsActive")) or 0.0
                weighted = number(text(item, "weightedCallsActive"))
                total = uses.setdefault(key, [0.0, None])
                total[0] = (total[0] or 0.0) + active
                if weighted is not None:
                    total[1] = (total[1] or 0.0) + weighted
        return LicensingSnapshot(
            personal_licenses=personal,
            calls_active=calls,
            calls_without_personal_licence=without,
            active=tuple(
                PersonalLicenceUse(
                    user_id=key[0], user_jid=key[1], calls_active=round(v[0] or 0), weighted_calls_active=v[1]
                )
                for key, v in uses.items()
            ),
            bridges=len(self._http.bridges),
        )


def _distance(call: CmsCall | None, start: datetime) -> float:
    if call is None or call.started_at is None:
        return float("inf")
    return abs((call.started_at - start).total_seconds())


def _weighted(doc: etree._Element, weighted: str, plain: str) -> float:
    value = number(text(doc, weighted))
    if value is None:
        value = number(text(doc, plain))
    return value or 0.0
