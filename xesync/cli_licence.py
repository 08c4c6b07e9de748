"""``xesync verify``, ``xesync explain`` and ``xesync report``: the licence proof on the command line.

Registered on the group in :mod:`xesync.cli`; errors go through the same boundary
(:func:`xesync.cli_common.catch_errors`). ``verify`` runs the code the daemon schedules
(:class:`xesync.licence_service.LicenceChecker`); ``explain`` and ``report`` only read the store.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xesync.cli_common import AppContext, catch_errors, config_option
from xesync.errors import ConfigError, UserError
from xesync.model import AuditEntry, Booking, LicenceCheck, SyncRecord

if TYPE_CHECKING:
    from xesync.store import Store

EXIT_AMBIGUOUS = 2


def _at(value: str | None, hint: str = "--at") -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=hint) from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give a UTC offset, e.g. 2027-03-04T09:01:00Z", param_hint=hint)
    return parsed.astimezone(UTC)


def _ts(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# ---------------------------------------------------------------------------------- verify


@click.command("verify")
@config_option("Configuration file (overrides the group option).")
@click.option("--meeting", "uid", default=None, help="Check this meeting (UID) now, due or not.")
@click.option("--at", "at", default=None, help="Act as if it were this time (ISO 8601 with offset).")
@click.pass_obj
@catch_errors
def verify_command(obj: AppContext, config_path: Path | None, uid: str | None, at: str | None) -> None:
    """Run the licence checks due now (or one meeting's) on Cisco Meeting Server; print the verdicts.

    The daemon schedules the same checks; this runs them once. A meeting is checked while it starts
    within cms.check_lead or runs.

    \b
    Examples:
        xesync verify
        xesync verify --meeting 040000008200E00074C5B7101A82E008...
        xesync verify --at 2027-03-04T09:01:00Z
    """
    from xesync import wiring  # noqa: PLC0415 - adapters load on demand

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    if cfg.cms is None:
        raise ConfigError(["cms: xesync verify needs a [cms] section (the Cisco Meeting Server API user)"])
    now = _at(at)
    with ExitStack() as stack:
        store = stack.enter_context(wiring.open_store(cfg))
        directory = None
        if cfg.ldap is not None:
            from xesync.adapters.ldap import LdapDirectory  # noqa: PLC0415 - ldap3

            directory = LdapDirectory(cfg.ldap)
            stack.callback(directory.close)
        monitors = wiring.cms_monitors(cfg, stack)
        if monitors is None:  # pragma: no cover - cfg.cms is set
            return
        checker = wiring.checker_of(cfg, store, monitors[0], directory, dry_run=cfg.sync.dry_run)
        checks = checker.check(uid, now) if uid else checker.run_due(now)
        upcoming = None if checks else checker.next_due(now)
    if not checks:
        what = f"meeting {uid} has no sitting starting within the lead or running" if uid else "nothing due"
        nxt = f"; next check due {_ts(upcoming)}" if upcoming is not None and not uid else ""
        click.echo(f"{what} at {_ts(now)}{nxt}")
        return
    for check in checks:
        click.echo(_verdict_line(check))
        click.echo(f"    {check.reason}")


def _verdict_line(check: LicenceCheck) -> str:
    return (
        f"{_ts(check.start)}  {check.verdict.value:<21} {check.subject!r} by {check.organiser} "
        f"(meeting {check.uid[:24]}, TMS {check.conference_id or '-'}, space {check.cospace_id or '-'}, "
        f"call {check.call_id or '-'}, owner {check.owner_jid or 'none'}, {check.stage.value})"
    )


# ---------------------------------------------------------------------------------- explain


@click.command("explain")
@config_option("Configuration file (overrides the group option).")
@click.argument("query")
@click.pass_obj
@catch_errors
def explain_command(obj: AppContext, config_path: Path | None, query: str) -> None:
    """Show one meeting's whole chain from the store: rooms, TMS, owner, licence, every decision.

    QUERY is the meeting's UID, its TMS conference id, or its subject (exact, else a part of it).

    \b
    Examples:
        xesync explain 040000008200E00074C5B7101A82E008...
        xesync explain 4711
        xesync explain "Quarterly review"
    """
    from xesync import wiring  # noqa: PLC0415

    if config_path is not None:
        obj.config_path = config_path
    cfg = obj.load_config()
    with wiring.open_store(cfg) as store:
        uid = _find(store, query)
        click.echo(explain(store, uid), nl=False)


def _find(store: Store, query: str) -> str:
    """The one UID ``query`` names; a :class:`UserError` listing the candidates otherwise."""
    bookings: list[Booking] = store.bookings()
    records: list[SyncRecord] = [r for s in store.room_states() for r in store.records(s.room)]
    uids = {b.uid for b in bookings} | {r.uid for r in records}
    if query in uids:
        return query
    if query.strip().isdigit():
        number = int(query)
        found = {b.uid for b in bookings if b.conference_id == number}
        found |= {r.uid for r in records if r.conference_id == number}
        if found:
            return _one(found, query, bookings, records)
    subjects = {b.uid: b.subject for b in bookings} | {r.uid: r.subject for r in records}
    wanted = query.strip().casefold()
    exact = {uid for uid, subject in subjects.items() if subject.casefold() == wanted}
    found = exact or {uid for uid, subject in subjects.items() if wanted in subject.casefold()}
    return _one(found, query, bookings, records)


def _one(found: set[str], query: str, bookings: list[Booking], records: list[SyncRecord]) -> str:
    if len(found) == 1:
        return next(iter(found))
    if not found:
        raise UserError(f"no meeting matches {query!r} (give a UID, a TMS conference id or a subject)")
    starts = {b.uid: (b.start, b.subject) for b in bookings} | {
        r.uid: (r.start, r.subject) for r in records if r.uid not in {b.uid for b in bookings}
    }
    lines = [f"{len(found)} meetings match {query!r}; give one UID:"]
    lines += [
        f"  {uid}  {_ts(starts[uid][0])}  {starts[uid][1]}" for uid in sorted(found, key=lambda u: starts[u])
    ]
    raise UserError("\n".join(lines))


def explain(store: Store, uid: str) -> str:
    """The meeting's chain as terminal text: room records, booking, licence checks and audit trail."""
    records: list[SyncRecord] = store.records_for_uid(uid)
    bookings: list[Booking] = [b for b in store.bookings() if b.uid == uid]
    checks: list[LicenceCheck] = store.licence_history(uid=uid)
    audit: list[AuditEntry] = store.audit(uid=uid, limit=10_000)
    subject = bookings[0].subject if bookings else (records[0].subject if records else "")
    organiser = bookings[0].organiser if bookings else (records[0].organiser if records else "")
    out = [f"Meeting {uid}", f"  subject    {subject!r}", f"  organiser  {organiser}", "", "Room records"]
    for r in records:
        occ = f" occurrence {_ts(r.occurrence)}" if r.occurrence else ""
        out.append(
            f"  {r.room}{occ}: {r.status.value}, room response {r.response.value}, TMS conference "
            f"{r.conference_id or '-'} version {r.version if r.version is not None else '-'}, "
            f"{_ts(r.start)} to {_ts(r.end)}, updated {_ts(r.updated_at)}"
        )
        out.append(f"    item {r.item_id or '-'} changekey {r.change_key or '-'}")
        if r.last_error:
            out.append(f"    last error: {r.last_error}")
    out += ["" if records else "  (none)", "Booking in TMS"]
    for b in bookings:
        out += _booking_lines(b)
    if not bookings:
        out.append("  (none: never saved in TMS)")
    out += ["", "Licence checks on Cisco Meeting Server"]
    for c in checks:
        fix = "" if c.fixup_in_time is None else f", fix-up {'in time' if c.fixup_in_time else 'too late'}"
        out.append(
            f"  {_ts(c.checked_at)}  {c.stage.value:<12} {c.verdict.value}  sitting {_ts(c.start)}; space "
            f"{c.cospace_id or '-'} (by {c.matched_by or '-'}), call {c.call_id or '-'}, owner "
            f"{c.owner_jid or 'none'}{fix}"
        )
        out.append(f"      {c.reason}")
    if not checks:
        out.append("  (none yet)")
    out += ["", "Decisions (audit trail)"]
    for e in audit:
        room = e.room or "-"
        details = json.dumps(dict(e.details), sort_keys=True) if e.details else ""
        out.append(f"  {_ts(e.at)}  {room}  {e.action} {e.outcome.value}: {e.reason} {details}".rstrip())
    if not audit:
        out.append("  (none)")
    return "\n".join(out) + "\n"


def _booking_lines(b: Booking) -> list[str]:
    occ = f" (occurrence {_ts(b.occurrence)})" if b.occurrence else ""
    series = b.request is not None and b.request.recurrence is not None
    rec = b.request.recurrence if b.request is not None else None
    pattern = f", series {rec.frequency.value} every {rec.interval}" if series and rec is not None else ""
    predicted = (b.predicted_licence or "unknown").upper() + ("+" if b.predicted_licence else "")
    lines = [
        (
            f"  conference {b.conference_id or '-'} version {b.version if b.version is not None else '-'}"
            f"{occ}, state {b.state.value}, external key {b.external_key}"
        ),
        f"  owner {b.owner or 'the TMS service user'}; rooms {', '.join(b.rooms) or '-'}",
        f"  {_ts(b.start)} to {_ts(b.end)}{pattern}; updated {_ts(b.updated_at)}",
        f"  predicted licence {predicted}: {b.predicted_reason or '-'}",
    ]
    if b.info_text:
        lines.append(
            "  dial-in: " + " | ".join(line.strip() for line in b.info_text.splitlines() if line.strip())
        )
    if b.last_error:
        lines.append(f"  last error: {b.last_error}")
    return lines


# ---------------------------------------------------------------------------------- report


@click.command("report")
@config_option("Configuration file (overrides the group option).")
@click.option("--since", "since", default="7d", show_default=True, help="How far back, e.g. 24h, 7d, 30d.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "html"]), default="table", show_default=True
)
@click.option("--output", "output", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--until", "until_at", default=None, help="End of the period (ISO 8601; default now).")
@click.pass_obj
@catch_errors
def report_command(  # noqa: PLR0917 - click passes one parameter per option
    obj: AppContext, config_path: Path | None, since: str, fmt: str, output: Path | None, until_at: str | None
) -> None:
    """Bookings, failures and licence verdicts per organiser and per room; PMP+ versus SMP+.

    Counts the sittings that started in the period, and the SMP+ minutes of meetings whose organiser
    was predicted PMP+ at booking. HTML is one self-contained file with an inline SVG chart.

    \b
    Examples:
        xesync report
        xesync report --since 30d --format csv --output licences.csv
        xesync report --format html --output /tmp/licences.html
    """
    from xesync import report as report_mod  # noqa: PLC0415
    from xesync import wiring  # noqa: PLC0415
    from xesync.config.reader import as_duration  # noqa: PLC0415

    if config_path is not None:
        obj.config_path = config_path
    try:
        window = as_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    cfg = obj.load_config()
    until = _at(until_at, "--until")
    with wiring.open_store(cfg) as store:
        built = report_mod.build_report(store, since=until - window, until=until)
    render = {"table": report_mod.render_table, "csv": report_mod.render_csv, "html": report_mod.render_html}
    text = render[fmt](built)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"report written to {output}", err=True)
