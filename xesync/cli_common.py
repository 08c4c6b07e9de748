"""What every ``xesync`` command shares: the error boundary, the app context, the ``-c`` option.

Kept apart from :mod:`xesync.cli` so that commands in their own modules (:mod:`xesync.cli_sync`)
can use them without importing the group that registers them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import structlog

from xesync import events
from xesync.errors import UserError, XesyncError

P = ParamSpec("P")
R = TypeVar("R")

log = structlog.get_logger("xesync.cli")


def handle_error(exc: BaseException) -> int:
    """Turn an error into advice on stderr and an exit code (STYLE.md §5).

    Exit codes: 2 a configuration or usage problem (:class:`UserError`, and nothing else), 75 try
    again later (:class:`TransientError`), 74 the state store cannot be used, 3 a safety guard
    refused, 1 anything else, including bugs (logged with their traceback).
    """
    if isinstance(exc, UserError):
        click.echo(f"xesync: {exc}", err=True)
        return exc.exit_code
    if isinstance(exc, XesyncError):
        log.error(events.COMMAND_FAILED, error=str(exc), error_type=type(exc).__name__)
        click.echo(f"xesync: {exc}", err=True)
        return exc.exit_code
    log.error(events.ERROR_UNEXPECTED, error_type=type(exc).__name__, exc_info=exc)
    click.echo(f"xesync: unexpected error ({type(exc).__name__}: {exc}); see the log", err=True)
    return 1


def catch_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Route a command's errors through :func:`handle_error` and exit non-zero."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - this is the boundary
            sys.exit(handle_error(exc))

    return wrapper


class AppContext:
    """What the group's options give every command."""

    def __init__(self, config_path: Path | None, verbose: bool) -> None:
        self.config_path = config_path
        self.verbose = verbose

    def load_config(self) -> Any:
        """Load and validate the configuration, and configure logging from it."""
        from xesync import config as config_mod  # noqa: PLC0415
        from xesync import logs  # noqa: PLC0415

        cfg = config_mod.load(self.config_path)
        logs.configure(cfg.logging, stream=sys.stderr, verbose=self.verbose)
        log.debug(events.CONFIG_LOADED, path=str(cfg.source))
        return cfg


def config_option(help_text: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``-c/--config``: on the group, and again on each command so it may follow the command name."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help=help_text,
    )
