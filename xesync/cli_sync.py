"""``xesync sync`` and ``xesync plan``: one pass over the rooms, or what it would do.

Registered on the group in :mod:`xesync.cli`; errors go through the same boundary
(:func:`xesync.cli.catch_errors`). The engine and the adapters load inside the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from xesync.cli_common import AppContext, catch_errors, config_option

EXIT_ROOMS_FAILED = 1
P = ParamSpec("P")
R = TypeVar("R")


def _rooms_option() -> Callable[[Callable[P, R]], Callable[P, R]]:
    return click.option(
        "--room",
        "rooms",
        multiple=True,
        help="Only this room (e-mail address or name); repeat for several. Default: every room.",
    )


def _room_keys(cfg: Any, rooms: tuple[str, ...]) -> list[str] | None:
    return [cfg.room(r).email.lower() for r in rooms] or None


@click.command("sync")
@config_option("Configuration file (overrides the group option).")
@_rooms_option()
@click.option("--dry-run", is_flag=True, help="Plan and audit, write nothing to TMS or Exchange.")
@click.option("--force-cancel", is_flag=True, help="Apply cancellations the data-loss fuse refused.")
@click.pass_obj
@catch_errors
def sync_command(
    obj: AppContext, config_path: Path | None, rooms: tuple[str, ...], dry_run: bool, force_cancel: bool
) -> None:
    """Run one pass over every configured room (or --room ROOM) and exit.

    Exit status 0 when every room synced; 1 naming the rooms that did not.

    \b
    Examples:
        xesync sync
        xesync sync --room room-oslo@example.com --dry-run
        xesync sync --room Oslo --force-cancel
    """
    from xesync import wiring  # noqa: PLC0415 - the engine and adapters load on demand

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    keys = _room_keys(cfg, rooms)
    wired = wiring.build(cfg, dry_run=True if dry_run else None, force_cancel=force_cancel)
    try:
        report = wired.engine.sync(keys)
    finally:
        wired.close()
    for room in report.rooms:
        counts: dict[str, int] = {}
        for meeting in room.meetings:
            counts[meeting.outcome] = counts.get(meeting.outcome, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no change"
        state = "ok" if room.ok else f"FAILED: {room.error}"
        click.echo(f"{room.room}: {state} ({summary})")
    if report.failed_rooms:
        click.echo(f"xesync: rooms not synced: {', '.join(report.failed_rooms)}", err=True)
        sys.exit(EXIT_ROOMS_FAILED)


@click.command("plan")
@config_option("Configuration file (overrides the group option).")
@_rooms_option()
@click.pass_obj
@catch_errors
def plan_command(obj: AppContext, config_path: Path | None, rooms: tuple[str, ...]) -> None:
    """Print the actions the next pass would take, as a table; write nothing.

    Reads Exchange and the state store (the sync state is not advanced, nothing is audited).

    \b
    Example:
        xesync plan --room Oslo
    """
    from xesync import wiring  # noqa: PLC0415

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    wired = wiring.build(cfg, dry_run=True, audit=False)
    try:
        report = wired.engine.sync(_room_keys(cfg, rooms))
    finally:
        wired.close()
    rows = [("ROOM", "MEETING", "SUBJECT", "ACTION", "REASON")]
    for room in report.rooms:
        if not room.ok:
            rows.append((room.room, "-", "-", "room failed", room.error or ""))
        for meeting in room.meetings:
            item = meeting.facts.item
            subject = item.subject if item else ""
            actions = [*meeting.plan.actions, *meeting.planned_rooms]
            rows.extend(
                (room.room, meeting.facts.uid[:16], subject[:30], a.kind.value, _reason(a)) for a in actions
            )
            if meeting.plan.refusal is not None:
                refusal = meeting.plan.refusal
                rows.append(
                    (room.room, meeting.facts.uid[:16], subject[:30], refusal.kind.value, refusal.reason)
                )
    if len(rows) == 1:
        click.echo("Nothing to do.")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])


def _reason(action: Any) -> str:
    return str(getattr(action, "reason", "") or "")
