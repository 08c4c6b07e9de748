"""``xesync run`` and ``xesync check``: the service, and the preflight an admin runs before it.

Registered on the group in :mod:`xesync.cli`; errors go through the same boundary
(:func:`xesync.cli_common.catch_errors`): a configuration problem exits 2 before anything starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from xesync.cli_common import AppContext, catch_errors, config_option


@click.command("run")
@config_option("Configuration file (overrides the group option).")
@click.pass_obj
@catch_errors
def run_command(obj: AppContext, config_path: Path | None) -> None:
    """Run as a service: sync every room on its interval, wake on EWS streaming notifications.

    Speaks the systemd notify protocol when $NOTIFY_SOCKET is set (READY, WATCHDOG, STATUS,
    STOPPING). SIGHUP reloads the configuration (an invalid file is refused and the old one runs on);
    SIGTERM finishes the work in hand and exits 0. A configuration error exits 2 before READY.

    \b
    Example:
        xesync run --config /etc/xesync/xesync.toml
    """
    from xesync import daemon  # noqa: PLC0415 - the scheduler and the adapters load on demand

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    sys.exit(daemon.run(cfg, verbose=obj.verbose))


@click.command("check")
@config_option("Configuration file (overrides the group option).")
@click.pass_obj
@catch_errors
def check_command(obj: AppContext, config_path: Path | None) -> None:
    """Check the configured services before a first start: one line per check, and the fix for each failure.

    Exchange (reachable, build, impersonation of every room), TMS (API version, booking on behalf of
    others, every room's system), CMS (reachable, version, multiparty licensing), LDAP (bind, a PMP+
    member), and the state directory. Exit status 1 when any check fails.

    \b
    Example:
        xesync check --config /etc/xesync/xesync.toml
    """
    from xesync.check import render, run_checks  # noqa: PLC0415

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    results = run_checks(cfg)
    for line in render(results):
        click.echo(line)
    if any(not r.ok for r in results):
        sys.exit(1)
