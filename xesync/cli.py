"""The command line: ``xesync``. The single boundary that turns errors into messages and exit codes.

Heavy imports (exchangelib, ldap3, the lab) happen inside the commands, so ``xesync --help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from xesync import __version__
from xesync.cli_common import AppContext, catch_errors, config_option, handle_error
from xesync.cli_licence import explain_command, report_command, verify_command
from xesync.cli_service import check_command, run_command
from xesync.cli_sync import plan_command, sync_command

__all__ = ["AppContext", "app", "catch_errors", "config_option", "handle_error"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option("Configuration file (default: $XESYNC_CONFIG, then /etc/xesync/xesync.toml).")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG.")
@click.version_option(__version__, prog_name="xesync")
@click.pass_context
def app(ctx: click.Context, config_path: Path | None, verbose: bool) -> None:
    """Book Exchange room meetings into Cisco TMS with the organiser as owner, and prove on Cisco
    Meeting Server that each call used the organiser's PMP+ licence.
    """
    ctx.obj = AppContext(config_path, verbose)


@app.command("check-config")
@config_option("Configuration file (overrides the group option).")
@click.pass_obj
@catch_errors
def check_config(obj: AppContext, config_path: Path | None) -> None:
    """Validate the configuration and print it, effective values, secrets masked.

    Every problem is listed with its key path; the exit code is 2 when there is any. Keys that are
    accepted but not yet in effect are listed on stderr.

    \b
    Example:
        xesync check-config --config /etc/xesync/xesync.toml
    """
    from xesync import config as config_mod  # noqa: PLC0415

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    click.echo(json.dumps(config_mod.effective(cfg), indent=2))
    # stderr, so that stdout stays the effective configuration as JSON.
    pending = config_mod.not_yet_in_effect()
    if pending:
        click.echo("xesync: accepted, but not yet in effect in this release:", err=True)
        for key in pending:
            click.echo(f"  - {key}", err=True)


@app.group("lab")
def lab_group() -> None:
    """The built-in lab: EWS, TMS and CMS simulators (and a directory) on 127.0.0.1."""


@lab_group.command("serve")
@click.option(
    # Not --config: that is the group's -c/--config, the xesync configuration.
    "--fixture",
    "fixture_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Lab fixture (default: the shipped config/lab.toml).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address.")
@click.option(
    "--only",
    default="ews,tms,cms",
    show_default=True,
    help="Comma-separated simulators to run.",
)
@click.option(
    "--write-config",
    "write_config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write an xesync configuration pointing at this lab (secrets in files beside it).",
)
@click.option(
    "--auth-type",
    "auth_type",
    type=click.Choice(["basic", "ntlm"]),
    default=None,
    help="How the written config authenticates to EWS and TMS (default: basic while the lab accepts it).",
)
@click.pass_obj
@catch_errors
def lab_serve(  # noqa: PLR0917 - click passes one parameter per option
    obj: AppContext,
    fixture_path: Path | None,
    host: str,
    only: str,
    write_config: Path | None,
    auth_type: str | None,
) -> None:
    """Start the lab, print one JSON line describing it on stdout, serve until SIGTERM/SIGINT.

    \b
    Example:
        xesync lab serve --write-config /tmp/lab/xesync.toml
        xesync lab serve --write-config /tmp/lab/xesync.toml --auth-type ntlm
    """
    from xesync.lab.serve import serve  # noqa: PLC0415

    serve(
        fixture_path=fixture_path,
        host=host,
        only=[s.strip() for s in only.split(",") if s.strip()],
        write_config=write_config,
        verbose=obj.verbose,
        auth_type=auth_type,
    )


@app.command("demo")
@click.pass_obj
@catch_errors
def demo(obj: AppContext) -> None:
    """Run the whole job on the built-in lab and print one table (needs no configuration).

    Outlook users book through exchangelib; xesync books TMS, answers the rooms and checks the
    licence each call used on CMS. Progress goes to stderr (add -v for the logs); exit 1 when a
    meeting does not get its expected verdict.

    \b
    Example:
        xesync demo
        make demo
    """
    # Here, not in a module of its own: cli.py is the one core module whose commands may load the lab.
    from xesync.lab.demo_table import command  # noqa: PLC0415

    command(verbose=obj.verbose)


app.add_command(sync_command)
app.add_command(plan_command)
app.add_command(run_command)
app.add_command(check_command)
app.add_command(verify_command)
app.add_command(explain_command)
app.add_command(report_command)
