"""The Cisco Meeting Server adapter: spaces, calls, users and licence counters over the CMS REST API.

:class:`CmsCallMonitor` implements :class:`xesync.ports.CallMonitor`. Wire rules (cms-api.md §1):

- HTTP Basic on every request; GET answers are XML (parsed only through :mod:`xesync.xmlsafe`); PUT
  bodies are form-encoded, a parameter sent empty (``ownerJid=``) unsets it.
- Collections are paged with ``offset += len(items)`` until ``total``: the server caps a page below
  ``limit`` by its own, undocumented per-collection rule, so a page's length is never assumed.
- Errors arrive as ``<failureDetails><code …/></failureDetails>``; the first child is the code, and
  ``unrecognisedObject`` (what production clients see) and ``unrecognizedObject`` (the docs) are both
  reported as ``unrecognizedObject``. Every 4xx becomes :class:`~xesync.errors.CmsHttpError`.
- 503 (and any 5xx), timeouts and refused or dropped connections are retried with a bounded
  exponential back-off that honours ``Retry-After``; then :class:`~xesync.errors.ServiceUnavailableError`.
  Only GET and PUT are sent, and both are idempotent (a PUT of ``ownerJid`` sets the same value again),
  so retrying is safe.

**Several Call Bridges** (cms-api.md §1.5). Configuration objects (spaces, users, profiles) live in the
cluster's shared database, so they are read from the first bridge that answers. Runtime objects (calls)
and licence counters are per bridge, so they are read from **every** bridge and summed; one bridge that
cannot be asked makes the answer incomplete, hence :class:`~xesync.errors.ServiceUnavailableError`.
Pass the bridges' API URLs as ``urls``; they share ``cms.username``/``cms.password``.

.. note:: Configuration of several bridges is not in the config file yet (``[cms] url`` is one URL).
   The intended form is an optional ``urls = ["https://cb1:445/api/v1", "https://cb2:445/api/v1"]``
   beside ``url`` (``url`` stays the first and the default); the daemon would then construct
   ``CmsCallMonitor(config.cms, urls=config.cms.urls)``. Until then ``urls`` is for callers and tests.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import requests
import structlog
from lxml import etree

from xesync import events
from xesync.config.model import CmsConfig
from xesync.errors import CmsHttpError, ServiceUnavailableError
from xesync.licence import (
    CmsCall,
    CmsSpace,
    CmsUser,
    LicensingSnapshot,
    MeetingOnCms,
    PersonalLicenceUse,
    SpaceMatch,
    dial_in,
)
from xesync.xmlsafe import UnsafeXmlError, parse

log = structlog.get_logger(__name__)

PAGE_LIMIT = 50  # what we ask for; the server may give fewer (cms-api.md §1.3)
MAX_PAGES = 10_000  # a server whose total keeps growing must not keep us paging forever
UNRECOGNISED = "unrecognizedObject"
_SPELLINGS = {"unrecognisedObject": UNRECOGNISED, "unrecognizedObject": UNRECOGNISED}
_TRANSIENT_FLOOR = 500
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Bridge:
    url: str
    session: requests.Session


def _api_root(url: str) -> str:
    # cms-api.md §1.1: the API lives under /api/v1; a URL given without it gets it.
    root = url.rstrip("/")
    return root if root.lower().endswith("/api/v1") else f"{root}/api/v1"


def _text(element: etree._Element, name: str) -> str | None:
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return (child.text or "").strip() or None
    return None


def _items(root: etree._Element) -> list[etree._Element]:
    return [child for child in root if isinstance(child.tag, str)]


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
        self._timeout = config.timeout.total_seconds()
        self._attempts = max(1, attempts)
        self._backoff = backoff.total_seconds()
        self._max_wait = max_wait.total_seconds()
        self._sleep = sleep
        verify: bool | str = str(config.tls.ca_file) if config.tls.ca_file else config.tls.verify
        self._bridges: list[_Bridge] = []
        for url in urls or (config.url,):
            session = requests.Session()
            session.auth = (config.username, config.password.reveal())
            session.verify = verify
            session.headers["Accept"] = "text/xml"
            self._bridges.append(_Bridge(_api_root(url), session))

    @property
    def bridges(self) -> tuple[str, ...]:
        """The API root of every Call Bridge asked."""
        return tuple(b.url for b in self._bridges)

    def close(self) -> None:
        """Close every bridge's HTTP session."""
        for bridge in self._bridges:
            bridge.session.close()

    # ------------------------------------------------------------------------------ users

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """The CMS user with ``jid`` (tried first) or ``email``, with its effective licence.

        ``GET /users?filter=<jid>`` (then an exact ``userJid`` match), else
        ``GET /users?emailFilter=<email>`` (2.1+, exact), then ``GET /users/<id>`` and the profile chain.
        """
        if jid:
            for item in self._config_collection("/users", {"filter": jid}):
                if (_text(item, "userJid") or "").casefold() == jid.strip().casefold() and item.get("id"):
                    return self.user(str(item.get("id")))
        if email:
            for item in self._config_collection("/users", {"emailFilter": email}):
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
        found = self._config_get(f"/users/{user_id}", missing="userDoesNotExist")
        if found is None:
            return None
        profile, level = _text(found, "userProfile"), "user"
        tenant = _text(found, "tenant")
        if profile is None and tenant:
            tenant_doc = self._config_get(f"/tenants/{tenant}", missing="tenantDoesNotExist")
            profile, level = (_text(tenant_doc, "userProfile") if tenant_doc is not None else None), "tenant"
        if profile is None:
            profiles = self._config_get("/system/profiles")
            profile, level = (_text(profiles, "userProfile") if profiles is not None else None), "system"
        has_license = False
        if profile is not None:
            doc = self._config_get(f"/userProfiles/{profile}", missing="userProfileDoesNotExist")
            has_license = doc is not None and (_text(doc, "hasLicense") or "").lower() == "true"
        return CmsUser(
            id=user_id,
            jid=_text(found, "userJid") or "",
            name=_text(found, "name"),
            email=_text(found, "email"),
            user_profile=profile,
            profile_from=level if profile is not None else "none",
            has_license=has_license,
        )

    # ------------------------------------------------------------------------------ spaces and calls

    def space(self, space_id: str) -> CmsSpace | None:
        """``GET /coSpaces/<id>`` (the owner is read from the object; list items may lack it, §2.1)."""
        found = self._config_get(f"/coSpaces/{space_id}", missing="coSpaceDoesNotExist")
        if found is None:
            return None
        return CmsSpace(
            id=space_id,
            name=_text(found, "name"),
            uri=_text(found, "uri"),
            secondary_uri=_text(found, "secondaryUri"),
            call_id=_text(found, "callId"),
            owner_jid=_text(found, "ownerJid"),
            owner_id=_text(found, "ownerId"),
            owner_ad_guid=_text(found, "ownerAdGuid"),
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
                for item in self._config_collection("/coSpaces", {"filter": value}):
                    if any((_text(item, f) or "").casefold() == value for f in fields) and item.get("id"):
                        space = self.space(str(item.get("id")))
                        if space is not None:
                            return MeetingOnCms(
                                space=space, call=self.active_call(space.id), matched_by=how, candidates=1
                            )
        if not title or not title.strip():
            return MeetingOnCms()
        named = [
            str(item.get("id"))
            for item in self._config_collection("/coSpaces", {"filter": title.strip()})
            if (_text(item, "name") or "").strip().casefold() == title.strip().casefold() and item.get("id")
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
        for bridge in self._bridges:
            for item in self._collection(bridge, "/calls", {"coSpaceFilter": space_id}):
                call_id = item.get("id")
                # Some CMS releases ignore an unknown filter: the coSpace is compared here too.
                if not call_id or _text(item, "coSpace") not in (None, space_id):
                    continue
                detail = self._get(bridge, f"/calls/{call_id}", missing="callDoesNotExist")
                if detail is None:
                    continue  # ended between the list and the read
                return CmsCall(
                    id=str(call_id),
                    cospace_id=_text(detail, "coSpace"),
                    name=_text(detail, "name"),
                    correlator=_text(detail, "callCorrelator"),
                    owner_name=_text(detail, "ownerName"),
                    started_at=self._started(bridge, _number(_text(detail, "durationSeconds"))),
                    bridge=bridge.url,
                )
        return None

    def _started(self, bridge: _Bridge, duration: float | None) -> datetime | None:
        # The bridge's own clock (``cdrTime``) minus the duration, so that no local clock is involved.
        if duration is None:
            return None
        status = self._get(bridge, "/system/status")
        cdr_time = _text(status, "cdrTime") if status is not None else None
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
        self._put(f"/coSpaces/{space_id}", {"ownerJid": jid})
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
        self._put(f"/coSpaces/{space_id}", {"ownerJid": ""})
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
        for bridge in self._bridges:
            doc = self._get(bridge, "/system/multipartyLicensing")
            if doc is None:  # pragma: no cover - _get returns None only with ``missing``
                continue
            if personal is None:
                count = _number(_text(doc, "personalLicenses"))
                personal = int(count) if count is not None else None
            calls += _weighted(doc, "weightedCallsActive", "callsActive")
            without += _weighted(doc, "weightedCallsWithoutPersonalLicense", "callsWithoutPersonalLicense")
            for item in self._collection(bridge, "/system/multipartyLicensing/activePersonalLicenses"):
                key = (item.get("id"), item.get("jid"))
                active = _number(_text(item, "callsActive")) or 0.0
                weighted = _number(_text(item, "weightedCallsActive"))
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
            bridges=len(self._bridges),
        )

    # ------------------------------------------------------------------------------ HTTP

    def _config_get(self, path: str, *, missing: str | None = None) -> etree._Element | None:
        # Configuration lives in the shared database: the first bridge that answers will do.
        return self._first_bridge(lambda bridge: self._get(bridge, path, missing=missing))

    def _config_collection(self, path: str, params: dict[str, str]) -> list[etree._Element]:
        return self._first_bridge(lambda bridge: self._collection(bridge, path, params))

    def _first_bridge(self, read: Callable[[_Bridge], _T]) -> _T:
        last: ServiceUnavailableError | None = None
        for bridge in self._bridges:
            try:
                return read(bridge)
            except ServiceUnavailableError as exc:
                last = exc
        raise last if last is not None else ServiceUnavailableError("cms", "no Call Bridge configured")

    def _collection(
        self, bridge: _Bridge, path: str, params: dict[str, str] | None = None
    ) -> list[etree._Element]:
        """Every item of a collection, paged with ``offset += len(items)`` until ``total`` (§1.3)."""
        items: list[etree._Element] = []
        for _ in range(MAX_PAGES):
            root = self._get(
                bridge, path, {**(params or {}), "offset": str(len(items)), "limit": str(PAGE_LIMIT)}
            )
            if root is None:  # pragma: no cover - _get returns None only with ``missing``
                break
            page = _items(root)
            items.extend(page)
            total = _number(root.get("total"))
            if not page or total is None or len(items) >= total:
                break
        return items

    def _get(
        self, bridge: _Bridge, path: str, params: dict[str, str] | None = None, *, missing: str | None = None
    ) -> etree._Element | None:
        try:
            resp = self._send(bridge, "GET", path, params=params)
        except CmsHttpError as exc:
            if missing is not None and exc.status in (400, 404) and exc.failure == missing:
                return None
            raise
        try:
            return parse(resp.content)
        except UnsafeXmlError as exc:
            log.warning(events.CMS_REQUEST_FAILED, method="GET", path=path, bridge=bridge.url, error=str(exc))
            raise CmsHttpError(resp.status_code, "invalidXml", path) from None

    def _put(self, path: str, form: dict[str, str]) -> None:
        # PUTs go to the first bridge that answers: the objects they change live in the shared database.
        self._first_bridge(lambda bridge: self._send(bridge, "PUT", path, data=form))

    def _send(
        self,
        bridge: _Bridge,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> requests.Response:
        reason, retry_after = "no attempt", None
        for attempt in range(1, self._attempts + 1):
            try:
                resp = bridge.session.request(
                    method, bridge.url + path, params=params, data=data, timeout=self._timeout
                )
            except requests.RequestException as exc:
                reason, retry_after = f"{type(exc).__name__} ({_cause(exc)})", None
            else:
                if resp.status_code < 400:  # noqa: PLR2004 - CMS answers 200 to every success
                    return resp
                if resp.status_code < _TRANSIENT_FLOOR:
                    raise _http_error(resp, path)
                reason, retry_after = (
                    f"HTTP {resp.status_code}",
                    _retry_after(resp.headers.get("Retry-After")),
                )
            wait = self._wait(attempt, retry_after)
            if wait is None:
                break
            log.warning(
                events.RETRY_ATTEMPTED,
                service="cms",
                method=method,
                path=path,
                bridge=bridge.url,
                attempt=attempt,
                reason=reason,
                wait_s=wait,
            )
            self._sleep(wait)
        log.warning(events.CMS_REQUEST_FAILED, method=method, path=path, bridge=bridge.url, reason=reason)
        raise ServiceUnavailableError("cms", f"{method} {path} on {bridge.url}: {reason}", retry_after)

    def _wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up now."""
        if attempt >= self._attempts:
            return None
        if retry_after is not None:
            # The server said when; a wait longer than max_wait is left to the next scheduled check.
            return retry_after if retry_after <= self._max_wait else None
        return float(min(self._backoff * 2 ** (attempt - 1), self._max_wait))


def _distance(call: CmsCall | None, start: datetime) -> float:
    if call is None or call.started_at is None:
        return float("inf")
    return abs((call.started_at - start).total_seconds())


def _weighted(doc: etree._Element, weighted: str, plain: str) -> float:
    value = _number(_text(doc, weighted))
    if value is None:
        value = _number(_text(doc, plain))
    return value or 0.0


def _cause(exc: BaseException) -> str:
    # requests wraps urllib3's errors; the wrapped one names the cause (refused, reset, timed out).
    inner = exc.__cause__ or exc.__context__ or exc
    return type(inner).__name__


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _http_error(resp: requests.Response, path: str) -> CmsHttpError:
    """A 4xx as :class:`CmsHttpError` with the ``failureDetails`` code, both spellings unified."""
    code: str | None = None
    if resp.content.strip():
        try:
            root = parse(resp.content)
        except UnsafeXmlError:
            root = None
        if root is not None and etree.QName(root).localname == "failureDetails":
            first = next(iter(_items(root)), None)
            if first is not None:
                name = etree.QName(first).localname
                code = _SPELLINGS.get(name, name)
                if first.attrib:
                    # parameterError carries which parameter and why; keep it in the log.
                    log.warning(
                        events.CMS_REQUEST_FAILED,
                        path=path,
                        status=resp.status_code,
                        failure=code,
                        details={str(k): str(v) for k, v in first.attrib.items()},
                    )
    return CmsHttpError(resp.status_code, code, path)
