"""Logging: structlog for our events, the standard library's loggers through the same pipeline.

- Off a terminal every line is one JSON object (journald and log shippers read it); on a terminal a
  readable console renderer is used. ``[logging] format`` can force either.
- exchangelib, urllib3, requests, ldap3 and apscheduler log through the standard library; their records
  are rendered by the same processors, at ``[logging] library_level`` (WARNING by default).
- :func:`redact` runs last before rendering, on our events and on foreign records alike: it masks keys
  that name secrets, every secret value the configuration loaded, and credentials inside strings
  (``Authorization: Basic …``, ``Bearer …``, ``password=…``).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from xesync.config import LogFormat, LoggingConfig, registered_secrets

MASK = "[REDACTED]"
LIBRARY_LOGGERS = ("exchangelib", "urllib3", "requests", "requests_ntlm", "ldap3", "apscheduler")

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|authori[sz]ation|api[_-]?key|credential|cookie|client_secret)",
    re.IGNORECASE,
)
_SECRET_IN_TEXT = (
    re.compile(r"(?i)(authorization\s*[:=]\s*)(basic|bearer|ntlm|negotiate)?\s*[^\s,;'\"]+"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=._~-]{8,}"),
    re.compile(r"(?i)((?:password|passwd|secret|token)\s*[=:]\s*)[^\s,;&'\"]+"),
)

_extra_keys: tuple[str, ...] = ()


def _mask_text(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a secret that contains another is masked whole.
    for value in sorted(secrets, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, MASK)
    for pattern in _SECRET_IN_TEXT:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + MASK, text)
    return text


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) or key.lower() in _extra_keys


def _scrub(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if isinstance(value, dict):
        return {
            k: (MASK if isinstance(k, str) and _is_secret_key(k) else _scrub(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, secrets) for v in value)
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Mask secrets in keys, values and free text (a structlog processor)."""
    secrets = registered_secrets()
    for key in list(event_dict):
        value = event_dict[key]
        if _is_secret_key(key) and key != "event":
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub(value, secrets)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure(
    config: LoggingConfig | None = None,
    *,
    stream: TextIO | None = None,
    verbose: bool = False,
) -> None:
    """Configure structlog and the standard library's root logger.

    :param config: the ``[logging]`` section (defaults when ``None``).
    :param stream: where lines go; stderr by default, so that stdout carries only a command's output
        (``check-config``'s JSON, ``lab serve``'s line). deploy/README.md says the same.
    :param verbose: force DEBUG for our own loggers.
    """
    global _extra_keys  # noqa: PLW0603 - one process-wide redaction setting
    config = config or LoggingConfig()
    stream = stream or sys.stderr
    _extra_keys = tuple(k.lower() for k in config.redact_keys)

    fmt = config.format
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON
    renderer: Processor
    if fmt is LogFormat.CONSOLE:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        tracebacks: list[Processor] = []
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        tracebacks = [structlog.processors.dict_tracebacks]

    shared = _shared_processors()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tracebacks,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.DEBUG if verbose else _level(config.level)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(_level(config.library_level))
    # exchangelib's wire dumps would put whole SOAP bodies into the log: never below WARNING.
    logging.getLogger("exchangelib.util.xml").setLevel(max(logging.WARNING, _level(config.library_level)))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _level(name: str) -> int:
    return int(logging.getLevelNamesMapping()[name.upper()])
