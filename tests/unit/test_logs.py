"""Logging: JSON off a terminal, stdlib loggers through the same pipeline, secrets redacted."""

from __future__ import annotations

import io
import json
import logging

import structlog

from xesync import config, events, logs
from xesync.config import LogFormat, LoggingConfig


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_off_a_terminal():
    """Off a terminal every event is one JSON object with event, level and timestamp."""
    out = io.StringIO()
    logs.configure(LoggingConfig(), stream=out)
    structlog.get_logger("xesync.test").info("booking.created", room="oslo", conference_id=7)
    (line,) = lines(out)
    assert line["event"] == "booking.created"
    assert line["room"] == "oslo"
    assert line["conference_id"] == 7
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_console_renderer_when_forced():
    """format=console renders a readable line, not JSON."""
    out = io.StringIO()
    logs.configure(LoggingConfig(format=LogFormat.CONSOLE), stream=out)
    structlog.get_logger().warning("guard.mass_cancel_refused", room="oslo")
    text = out.getvalue()
    assert "guard.mass_cancel_refused" in text
    assert not text.lstrip().startswith("{")


def test_library_loggers_share_the_pipeline_at_warning():
    """exchangelib's stdlib records are rendered as JSON and filtered at WARNING by default."""
    out = io.StringIO()
    logs.configure(LoggingConfig(), stream=out)
    logging.getLogger("exchangelib.services").info("chatty detail")
    logging.getLogger("exchangelib.services").warning("server busy, backing off %s s", 5)
    (line,) = lines(out)
    assert line["event"] == "server busy, backing off 5 s"
    assert line["logger"] == "exchangelib.services"
    assert line["level"] == "warning"


def test_secret_keys_and_values_are_redacted():
    """Keys naming secrets, loaded secret values and Authorization headers never reach a line."""
    secret = config.Secret("hunter2-very-secret", "env:X")
    out = io.StringIO()
    logs.configure(LoggingConfig(redact_keys=("pin",)), stream=out)
    log = structlog.get_logger()
    log.info(
        "tms.request_failed",
        password="plain-pw",
        pin="1234",
        detail=f"bind failed for {secret.reveal()}",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "X-Other": "ok"},
    )
    logging.getLogger("urllib3").warning("sent Authorization: Bearer abcdefghijklmnop to host")
    text = out.getvalue()
    for leaked in ("plain-pw", "1234", "hunter2-very-secret", "dXNlcjpwYXNz", "abcdefghijklmnop"):
        assert leaked not in text
    first, second = lines(out)
    assert first["password"] == logs.MASK
    assert first["pin"] == logs.MASK
    assert first["headers"]["X-Other"] == "ok"
    assert logs.MASK in second["event"]


def test_exception_tracebacks_are_structured_and_redacted():
    """An exception is rendered as structured data, and secrets in its message are masked."""
    secret = config.Secret("tb-secret-value-42")
    out = io.StringIO()
    logs.configure(LoggingConfig(), stream=out)

    def fail():
        raise RuntimeError(f"login with {secret.reveal()} failed")

    try:
        fail()
    except RuntimeError:
        structlog.get_logger().exception("error.unexpected")
    text = out.getvalue()
    assert "tb-secret-value-42" not in text
    (line,) = lines(out)
    assert isinstance(line["exception"], list)


def test_default_stream_is_stderr(capsys):
    """Without a stream, log lines go to stderr; stdout stays free for command output (deploy/README.md)."""
    logs.configure(LoggingConfig())
    structlog.get_logger("xesync.test").info(events.CONFIG_LOADED, path="/etc/xesync/xesync.toml")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err.strip().splitlines()[-1])["event"] == events.CONFIG_LOADED
