"""Turns a validated configuration into a running engine: adapters, store, policy, templates.

The one place that knows which adapter implements which port for a configuration (STYLE.md §2: a
small registry, here a function per port), and that owns their lifecycle through an
:class:`contextlib.ExitStack`, so that the CLI, the daemon and the demo open and close them alike.
A caller may hand in its own implementation of a port (the demo passes the lab's directory; tests
pass fakes); the configuration then does not need to know it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from xesync.actions import Policy, RoomInfo
from xesync.config.model import Config
from xesync.directory import Directory
from xesync.engine import Engine
from xesync.licence_preflight import LicencePreflightService
from xesync.licence_service import LicenceChecker
from xesync.notify import Templates
from xesync.ports import BookingSink, CalendarSource, CallMonitor
from xesync.store import Store


def now_utc() -> datetime:
    """The wall clock, aware and in UTC."""
    return datetime.now(UTC)


def policy_of(cfg: Config, *, force_cancel: bool = False) -> Policy:
    """The planner's policy from ``[sync]`` and ``[tms]``."""
    sync = cfg.sync
    return Policy(
        booking_window=timedelta(days=cfg.tms.booking_window_days),
        lookahead=sync.lookahead,
        max_duration=sync.max_duration,
        unknown_organiser=sync.unknown_organiser,
        private_meetings=sync.private_meetings,
        private_title=sync.private_title,
        series_beyond_limits=sync.series_beyond_limits,
        notify_organiser=sync.notify_organiser,
        mass_cancel_guard=sync.mass_cancel_guard,
        mass_cancel_max_share=sync.mass_cancel_max_share,
        force_cancel=force_cancel,
    )


def rooms_of(cfg: Config) -> tuple[RoomInfo, ...]:
    """The configured rooms, keyed by their lower-case address."""
    return tuple(RoomInfo(r.email.lower(), r.name, r.tms_system_id) for r in cfg.rooms)


@dataclass(slots=True)
class Wired:
    """An engine and everything it holds open; close the stack to release them.

    With ``[cms]``, ``monitor`` is the CMS adapter and ``checker`` the licence checker: the daemon
    schedules ``checker.run_due(now)`` at ``checker.next_due(now)`` (stable API, see
    :class:`xesync.licence_service.LicenceChecker`); both are ``None`` without ``[cms]``.
    """

    engine: Engine
    store: Store
    source: CalendarSource
    sink: BookingSink
    directory: Directory | None
    stack: ExitStack
    monitor: CallMonitor | None = None
    checker: LicenceChecker | None = None

    @property
    def licence(self) -> LicenceChecker | None:
        """The licence checker under the name the daemon looks it up by (``xesync.daemon``)."""
        return self.checker

    def close(self) -> None:
        """Close every adapter and the store."""
        self.stack.close()


def open_store(cfg: Config) -> Store:
    """The state store at ``sync.state_dir``."""
    return Store.open(cfg.sync.database)


def cms_monitors(cfg: Config, stack: ExitStack) -> tuple[CallMonitor, CallMonitor] | None:
    """The CMS adapter for the checks, and one that never retries for the pre-flight (so that a CMS
    outage does not slow the sync); ``None`` without ``[cms]``."""
    if cfg.cms is None:
        return None
    from xesync.adapters.cms import CmsCallMonitor  # noqa: PLC0415 - only with [cms]

    urls = cfg.cms.urls or None
    checks = CmsCallMonitor(cfg.cms, urls=urls)
    stack.callback(checks.close)
    preflight = CmsCallMonitor(cfg.cms, urls=urls, attempts=1)
    stack.callback(preflight.close)
    return checks, preflight


def checker_of(
    cfg: Config, store: Store, monitor: CallMonitor, directory: Directory | None, *, dry_run: bool = False
) -> LicenceChecker:
    """The licence checker over ``monitor`` as ``[cms]`` configures it (no fix-up in a dry run)."""
    lead = cfg.cms.check_lead if cfg.cms is not None else timedelta(minutes=5)
    enforce = cfg.cms is not None and cfg.cms.enforce_owner and not dry_run
    return LicenceChecker(store=store, monitor=monitor, directory=directory, lead=lead, enforce_owner=enforce)


def build(
    cfg: Config,
    *,
    dry_run: bool | None = None,
    force_cancel: bool = False,
    audit: bool = True,
    source: CalendarSource | None = None,
    sink: BookingSink | None = None,
    directory: Directory | None = None,
    monitor: CallMonitor | None = None,
    clock: Callable[[], datetime] = now_utc,
) -> Wired:
    """Open the store and the adapters the configuration names, and build the engine over them.

    :param dry_run: override ``sync.dry_run``.
    :param audit: record decisions in the audit trail (``xesync plan`` writes nothing at all).
    :param monitor: CMS for both the pre-flight and the checks (default: from ``[cms]``, if any).
    """
    stack = ExitStack()
    try:
        store = stack.enter_context(open_store(cfg))
        if source is None:
            from xesync.adapters.exchange import ExchangeCalendarSource  # noqa: PLC0415 - exchangelib is heavy

            source = ExchangeCalendarSource(cfg.exchange, cfg.rooms, cfg.sync.lookahead)
            stack.callback(source.close)
        if sink is None:
            from xesync.adapters.tms import TmsBookingSink  # noqa: PLC0415

            sink = TmsBookingSink(cfg.tms)
            stack.callback(sink.close)
        if directory is None and cfg.ldap is not None:
            from xesync.adapters.ldap import LdapDirectory  # noqa: PLC0415 - ldap3

            directory = LdapDirectory(cfg.ldap)
            stack.callback(directory.close)
        dry = cfg.sync.dry_run if dry_run is None else dry_run
        preflight: LicencePreflightService | None = None
        checker: LicenceChecker | None = None
        monitors = (monitor, monitor) if monitor is not None else cms_monitors(cfg, stack)
        if monitors is not None:
            monitor = monitors[0]
            groups = cfg.ldap.pmp_groups if cfg.ldap is not None else ()
            preflight = LicencePreflightService(monitors[1], pmp_groups=groups, clock=clock)
            checker = checker_of(cfg, store, monitor, directory, dry_run=dry)
        engine = Engine(
            source=source,
            sink=sink,
            store=store,
            rooms=rooms_of(cfg),
            policy=policy_of(cfg, force_cancel=force_cancel),
            templates=Templates.load(cfg.sync.templates_dir),
            clock=clock,
            directory=directory,
            dry_run=dry,
            max_workers=cfg.exchange.max_connections,
            audit=audit,
            preflight=preflight,
        )
    except BaseException:
        stack.close()
        raise
    return Wired(
        engine=engine, store=store, source=source, sink=sink, directory=directory, stack=stack,
        monitor=monitor, checker=checker,
    )  # fmt: skip
