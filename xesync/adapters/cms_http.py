"""HTTP to the Cisco Meeting Server API: Basic auth, XML answers, paging, failureDetails, bounded retries.

The wire rules of cms-api.md §1, once, for :class:`~xesync.adapters.cms.CmsCallMonitor`:

- HTTP Basic on every request; GET answers are XML, parsed only through :mod:`xesync.xmlsafe`; PUT
  bodies are form-encoded, and a parameter sent empty (``ownerJid=``) unsets it (§1.2).
- Collections are paged with ``offset += len(items)`` until ``total`` (§1.3): the server caps a page
  below ``limit`` by its own, undocumented per-collection rule, so a page's length is never assumed.
- Errors arrive as ``<failureDetails><code …/></failureDetails>`` (§1.4); the first child is the code.
  ``unrecognisedObject`` (what production clients see) and ``unrecognizedObject`` (the docs) both
  become ``unrecognizedObject``. Every 4xx is a :class:`~xesync.errors.CmsHttpError`.
- 503 (and any 5xx), timeouts and refused or dropped connections are retried with a bounded
  exponential back-off that honours ``Retry-After``, each attempt logged (``retry.attempted``); then
  :class:`~xesync.errors.ServiceUnavailableError`. Only GET and PUT are sent, both idempotent (a PUT of
  ``ownerJid`` sets the same value again), so a retry cannot do anything twice.
- Several Call Bridges (§1.5): configuration objects live in the cluster's shared database and are
  read from the first bridge that answers (:meth:`CmsHttp.first`); runtime objects are per bridge and
  the caller asks each one.
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
from xesync.xmlsafe import UnsafeXmlError, parse

log = structlog.get_logger(__name__)

PAGE_LIMIT = 50  # what we ask for; the server may give fewer (cms-api.md §1.3)
MAX_PAGES = 10_000  # a server whose total keeps growing must not keep us paging forever
UNRECOGNISED = "unrecognizedObject"
_SPELLINGS = {"unrecognisedObject": UNRECOGNISED, "unrecognizedObject": UNRECOGNISED}
_TRANSIENT_FLOOR = 500
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Bridge:
    """One Call Bridge's API root and its HTTP session."""

    url: str
    session: requests.Session


def api_root(url: str) -> str:
    """The API root of a bridge URL, with ``/api/v1`` added when missing."""
    # cms-api.md §1.1: the API lives under /api/v1; a URL given without it gets it.
    root = url.rstrip("/")
    return root if root.lower().endswith("/api/v1") else f"{root}/api/v1"


def text(element: etree._Element, name: str) -> str | None:
    """The stripped text of ``element``'s child ``name`` (any namespace); ``None`` if absent or empty."""
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return (child.text or "").strip() or None
    return None


def items(root: etree._Element) -> list[etree._Element]:
    """The element children of a collection (or a ``failureDetails``)."""
    return [child for child in root if isinstance(child.tag, str)]


def number(value: str | None) -> float | None:
    """A decimal number, or ``None`` for a missing or malformed value."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class CmsHttp:
    """Requests to one CMS cluster's Call Bridges (see the module docstring).

    :param config: ``[cms]``: API user, password, timeout and TLS (and ``url`` when ``urls`` is not given).
    :param urls: the API URL of every Call Bridge, sharing the one API user.
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
        self.bridges: tuple[Bridge, ...] = ()
        for url in urls or (config.url,):
            session = requests.Session()
            session.auth = (config.username, config.password.reveal())
            session.verify = verify
            session.headers["Accept"] = "text/xml"
            self.bridges = (*self.bridges, Bridge(api_root(url), session))

    def close(self) -> None:
        """Close every bridge's HTTP session."""
        for bridge in self.bridges:
            bridge.session.close()

    def config_get(self, path: str, *, missing: str | None = None) -> etree._Element | None:
        """A configuration object from the first bridge that answers (the database is shared)."""
        return self.first(lambda bridge: self.get(bridge, path, missing=missing))

    def config_collection(self, path: str, params: dict[str, str]) -> list[etree._Element]:
        """Every item of a configuration collection, from the first bridge that answers."""
        return self.first(lambda bridge: self.collection(bridge, path, params))

    def first(self, read: Callable[[Bridge], _T]) -> _T:
        """``read`` on the first bridge that can be asked; the last failure if none can."""
        last: ServiceUnavailableError | None = None
        for bridge in self.bridges:
            try:
                return read(bridge)
            except ServiceUnavailableError as exc:
                last = exc
        raise last if last is not None else ServiceUnavailableError("cms", "no Call Bridge configured")

    def collection(
        self, bridge: Bridge, path: str, params: dict[str, str] | None = None
    ) -> list[etree._Element]:
        """Every item of a collection, paged with ``offset += len(items)`` until ``total`` (§1.3)."""
        found: list[etree._Element] = []
        for _ in range(MAX_PAGES):
            root = self.get(
                bridge, path, {**(params or {}), "offset": str(len(found)), "limit": str(PAGE_LIMIT)}
            )
            if root is None:  # pragma: no cover - get returns None only with ``missing``
                break
            page = items(root)
            found.extend(page)
            total = number(root.get("total"))
            if not page or total is None or len(found) >= total:
                break
        return found

    def get(
        self, bridge: Bridge, path: str, params: dict[str, str] | None = None, *, missing: str | None = None
    ) -> etree._Element | None:
        """A GET's XML; ``None`` when CMS answers the failure ``missing`` (an unknown id)."""
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

    def put(self, path: str, form: dict[str, str]) -> None:
        """A form-encoded PUT on the first bridge that answers (the objects live in the shared database)."""
        self.first(lambda bridge: self._send(bridge, "PUT", path, data=form))

    def _send(
        self,
        bridge: Bridge,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> requests.Response:
        reason, retry_after = "no attempt", None
        for attempt in range(1, self._attempts + 1):
            try:
                # verify per request: REQUESTS_CA_BUNDLE would override the session's (psf/requests#3829).
                resp = bridge.session.request(
                    method, bridge.url + path, params=params, data=data, timeout=self._timeout,
                    verify=bridge.session.verify,
                )  # fmt: skip
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
            first = next(iter(items(root)), None)
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
