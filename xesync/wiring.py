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
from xesync.notify import Templates
from xesync.ports import BookingSink, CalendarSource
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
    """An engine and everything it holds open; close the stack to release them."""

    engine: Engine
    store: Store
    source: CalendarSource
    sink: BookingSink
    directory: Directory | None
    stack: ExitStack

    def close(self) -> None:
        """Close every adapter and the store."""
        self.stack.close()


def open_store(cfg: Config) -> Store:
    """The state store at ``sync.state_dir``."""
    return Store.open(cfg.sync.database)


def build(
    cfg: Config,
    *,
    dry_run: bool | None = None,
    force_cancel: bool = False,
    audit: bool = True,
    source: CalendarSource | None = None,
    sink: BookingSink | None = None,
    directory: Directory | None = None,
    clock: Callable[[], datetime] = now_utc,
) -> Wired:
    """Open the store and the adapters the configuration names, and build the engine over them.

    :param dry_run: override ``sync.dry_run``.
    :param audit: record decisions in the audit trail (``xesync plan`` writes nothing at all).
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
        engine = Engine(
            source=source,
            sink=sink,
            store=store,
            rooms=rooms_of(cfg),
            policy=policy_of(cfg, force_cancel=force_cancel),
            templates=Templates.load(cfg.sync.templates_dir),
            clock=clock,
            directory=directory,
            dry_run=cfg.sync.dry_run if dry_run is None else dry_run,
            max_workers=cfg.exchange.max_connections,
            audit=audit,
        )
    except BaseException:
        stack.close()
        raise
    return Wired(engine=engine, store=store, source=source, sink=sink, directory=directory, stack=stack)
