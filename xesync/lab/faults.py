"""Fault injection and request counting, shared by every simulator.

A fault is a plain record: which service, which kind, optionally which operation (SOAP operation name,
or CMS path prefix) and how many requests it hits. The HTTP core applies the generic kinds
(``latency``, ``http_status``, ``drop_connection``, and ``drop_answer``: the request is carried out,
then the connection is closed before the answer, as when a client times out after the server acted);
each simulator renders its own kinds (``server_busy`` for EWS, ``session_expired`` and ``soap_fault``
for TMS, ...) in its own wire format.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GENERIC_KINDS = frozenset({"latency", "http_status", "drop_connection", "drop_answer"})


@dataclass(slots=True, kw_only=True)
class Fault:
    """One injected fault.

    :param service: ``ews``, ``tms`` or ``cms``.
    :param kind: ``latency``, ``http_status``, ``drop_connection``, ``drop_answer`` or a simulator's own
        kind.
    :param operation: only requests of this operation (SOAP body element, CMS path prefix); ``None`` = all.
    :param count: how many more requests it hits; ``None`` = until cleared.
    :param params: the kind's extra fields (``ms``, ``status``, ``retry_after_s``, ``back_off_ms``, ...).
    """

    service: str
    kind: str
    operation: str | None = None
    count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, service: str, operation: str) -> bool:
        """Whether this fault applies to a request of ``operation`` on ``service``."""
        if self.service != service or self.count == 0:
            return False
        if self.operation is None:
            return True
        if service == "cms":
            # CMS faults match a path prefix, case-insensitively as CMS paths are, written with or
            # without the /api/v1 root.
            return _cms_path(operation).startswith(_cms_path(self.operation))
        return operation.lower() == self.operation.lower()

    def as_dict(self) -> dict[str, Any]:
        """The fault as the control API shows it."""
        out: dict[str, Any] = {"service": self.service, "kind": self.kind, **self.params}
        if self.operation is not None:
            out["operation"] = self.operation
        if self.count is not None:
            out["count"] = self.count
        return out


def _cms_path(path: str) -> str:
    path = path.lower()
    return path.removeprefix("/api/v1") if path.startswith("/api/v1/") else path


def parse_fault(spec: Mapping[str, Any], kinds: Mapping[str, frozenset[str]]) -> Fault:
    """Build a :class:`Fault` from a control-API body; ``kinds`` maps each service to its kinds.

    :raises ValueError: naming the bad field, for the control API to answer 400.
    """
    service = spec.get("service")
    if not isinstance(service, str) or service not in kinds:
        raise ValueError(f"service must be one of {sorted(kinds)}")
    kind = spec.get("kind")
    allowed = GENERIC_KINDS | kinds[service]
    if kind not in allowed:
        raise ValueError(f"kind for {service} must be one of {sorted(allowed)}")
    operation = spec.get("operation")
    if operation is not None and not isinstance(operation, str):
        raise ValueError("operation must be a string")
    count = spec.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer")
    params = {k: v for k, v in spec.items() if k not in {"service", "kind", "operation", "count"}}
    for key in ("ms", "status", "retry_after_s", "back_off_ms"):
        if key in params and (isinstance(params[key], bool) or not isinstance(params[key], int)):
            raise ValueError(f"{key} must be an integer")
    if kind == "http_status" and "status" not in params:
        raise ValueError("http_status needs a status")
    if kind == "latency" and "ms" not in params:
        raise ValueError("latency needs ms")
    return Fault(service=service, kind=kind, operation=operation, count=count, params=params)


class FaultBook:
    """The active faults of the lab, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Activate a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self, service: str | None = None) -> None:
        """Remove every fault (of one service, if given)."""
        with self._lock:
            self._faults = [f for f in self._faults if service is not None and f.service != service]

    def take(self, service: str, operation: str) -> list[Fault]:
        """The faults hitting this request, in order of injection; each one's count goes down."""
        hit: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, operation):
                    if fault.count is not None:
                        fault.count -= 1
                    hit.append(fault)
            self._faults = [f for f in self._faults if f.count != 0]
        return hit

    def active(self) -> list[dict[str, Any]]:
        """The faults still active, as the control API shows them."""
        with self._lock:
            return [f.as_dict() for f in self._faults]


LOG_LIMIT = 100_000  # the timestamped log keeps this many requests (oldest dropped first)


@dataclass(slots=True)
class LoggedRequest:
    """One request as it reached a simulator.

    :ivar at: ``time.monotonic()`` when it arrived: real seconds, not the lab clock, because a
        client's back-off (``Retry-After``, ``BackOffMilliseconds``) is measured in real time.
    :ivar faults: the injected faults it met (their control-API form), in order.
    :ivar answered_at: ``time.monotonic()`` when its answer was ready to leave (``None`` until then):
        a request of the same client that arrived before it was already on its way, and could not
        have known of a back-off the answer asks for.
    """

    at: float
    service: str
    operation: str
    faults: tuple[dict[str, Any], ...] = ()
    answered_at: float | None = None


class RequestCounter:
    """Counts requests per service and operation, and per mailbox where a simulator knows one.

    It also keeps a timestamped log (:meth:`timeline`), so that a test can check from the server's
    side that no request reached a throttled service inside the back-off it was told.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, Counter[str]] = {}
        self._mailboxes: dict[str, dict[str, Counter[str]]] = {}
        self._log: deque[LoggedRequest] = deque(maxlen=LOG_LIMIT)

    def record(
        self,
        service: str,
        operation: str,
        mailbox: str | None = None,
        faults: tuple[dict[str, Any], ...] = (),
    ) -> LoggedRequest:
        """Count one request (and log it with the time it arrived and the faults it met)."""
        entry = LoggedRequest(time.monotonic(), service, operation, faults)
        with self._lock:
            self._log.append(entry)
            self._ops.setdefault(service, Counter())[operation] += 1
            if mailbox:
                per = self._mailboxes.setdefault(service, {})
                per.setdefault(mailbox.lower(), Counter())[operation] += 1
        return entry

    def answered(self, entry: LoggedRequest) -> None:
        """Note that ``entry``'s answer is ready to leave."""
        with self._lock:
            entry.answered_at = time.monotonic()

    def snapshot(self, service: str | None = None) -> dict[str, Any]:
        """Counts since the last reset: ``{service: {"operations": {...}, "mailboxes": {...}}}``."""
        with self._lock:
            services = [service] if service else sorted(set(self._ops) | set(self._mailboxes))
            return {
                s: {
                    "operations": dict(self._ops.get(s, Counter())),
                    "mailboxes": {m: dict(c) for m, c in self._mailboxes.get(s, {}).items()},
                    "total": sum(self._ops.get(s, Counter()).values()),
                }
                for s in services
            }

    def count(self, service: str, operation: str) -> int:
        """How many requests of ``operation`` reached ``service`` since the last reset."""
        with self._lock:
            return self._ops.get(service, Counter())[operation]

    def timeline(self, service: str | None = None) -> list[LoggedRequest]:
        """The logged requests since the last reset (of one service, if given), oldest first."""
        with self._lock:
            return [r for r in self._log if service is None or r.service == service]

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._log.clear()
            self._ops.clear()
            self._mailboxes.clear()
