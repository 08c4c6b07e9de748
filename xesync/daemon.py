"""``xesync run``: the long-running service: scheduler, streaming wake-ups, signals, systemd, health.

Lifecycle (``RunState``): ``starting`` → ``running`` ⇄ ``reloading`` → ``stopping`` → ``stopped``.

1. **Start.** Load the configuration, open the store and the adapters (:func:`xesync.wiring.build`),
   bind the ``[metrics]`` listener, schedule the jobs, open the streams, then ``READY=1``. Any
   configuration error on the way exits 2 before ``READY`` (the CLI boundary), so systemd reports a
   failed start instead of a service that runs on nothing.
2. **Room passes** run on the dispatcher (:class:`xesync.daemon_jobs.Passes`): every room once at
   start (with streams: by the first connect's catch-up, or a minute later), then ``sync.interval``
   after its last pass (``sync.stream_safety_interval`` for a room its live stream covers),
   wake-ups first, ``exchange.max_connections`` at a time.
   **Jobs** (APScheduler 3.x; every job ``max_instances=1``, ``coalesce=True`` and a
   ``misfire_grace_time`` below its period): the full reconcile at ``sync.full_reconcile_at``
   (host local time, as an admin reads a clock); housekeeping half an hour later; licence checks at
   the next due time (:class:`xesync.daemon_tasks.Licences`), re-planned at the next tick after a
   pass that changed a booking.
3. **Wake-ups.** Streams (:mod:`xesync.adapters.exchange_stream`) wake rooms between intervals and,
   after a connect that subscribed anew (``exchange.stream_catch_up``), the whole group for a
   catch-up pass.
4. **SIGHUP** reloads: the new file is validated and wired first; an invalid one logs
   ``config.reload_refused`` naming every problem and the old configuration runs on. A valid one
   waits for the passes in hand, swaps engine, rooms, dispatcher, jobs and streams, and closes the
   old adapters; every room is passed over once under the new configuration.
5. **SIGTERM/SIGINT** stop: ``STOPPING=1``, no new pass begins, streams are cut, the passes in hand
   finish (each meeting commits alone, so "the unit of work in hand" is short), every connection
   and the store close, ``daemon.stopped``, exit 0.

Why ``BackgroundScheduler`` and a main loop rather than ``BlockingScheduler``: the main thread then
owns the signals (through :func:`signal.set_wakeup_fd`, so a handler never takes a lock a waiting
thread holds), the watchdog and the reload, none of which has to run inside a signal handler or the
scheduler's own loop. ``WATCHDOG=1`` is sent from that loop only while the scheduler's thread and
every pass worker are alive, so a wedged scheduler or a dead worker stops the pings and systemd
restarts the service.
"""

from __future__ import annotations

import dataclasses
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from xesync import config as config_mod
from xesync import events, logs, wiring
from xesync.config.model import Config
from xesync.daemon_jobs import Passes
from xesync.daemon_tasks import Licences, housekeeping, status_line
from xesync.errors import XesyncError
from xesync.health import HealthBook, HealthServer, stale_threshold, streamed_threshold
from xesync.metrics import Metrics
from xesync.systemd import Notifier

log = structlog.get_logger("xesync.daemon")

TICK = 5.0  # the main loop's longest sleep: STATUS= refresh, and the watchdog when it asks for less
FIRST_LICENCE_RUN = 5.0  # seconds after start: the first passes have booked something by then
# With streams, the first interval pass waits this long for the catch-up of the first connect, which
# passes every room it subscribed (subscribing 200 rooms takes 200 Subscribe requests, one by one).
STREAM_START_GRACE = 60.0
SCHEDULER_WORKERS = 3  # the reconcile, housekeeping and the licence checks: room passes have their own
HOUSEKEEPING_AFTER = timedelta(minutes=30)  # after the nightly reconcile
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunState(StrEnum):
    """Where the daemon is in its lifecycle."""

    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclasses.dataclass(slots=True)
class Runtime:
    """What one configuration runs on: the wired engine, its passes, its streams, its licence runner."""

    cfg: Config
    wired: wiring.Wired
    passes: Passes
    streams: Any  # exchange_stream.StreamSet, or None when the source cannot stream
    licences: Licences | None = None

    def close(self) -> None:
        """Stop the streams, then close every adapter and the store."""
        if self.streams is not None:
            self.streams.close()
        self.wired.close()


class Daemon:
    """``xesync run`` (see the module docstring). :meth:`run` returns the exit code."""

    def __init__(self, cfg: Config, *, verbose: bool = False, notifier: Notifier | None = None) -> None:
        self.cfg, self.verbose = cfg, verbose
        self.notifier = notifier or Notifier()
        self.state = RunState.STARTING
        self.stopping = threading.Event()
        rooms = [r.email.lower() for r in cfg.rooms]
        self.book = HealthBook(
            rooms, threshold=stale_threshold(cfg.metrics, cfg.sync.interval),
            streamed_threshold=streamed_threshold(cfg.metrics, cfg.sync),
        )  # fmt: skip
        self.metrics = Metrics(self.book)
        self.health: HealthServer | None = None
        self.scheduler = BackgroundScheduler(
            executors={"default": {"type": "threadpool", "max_workers": SCHEDULER_WORKERS}},
            job_defaults={"max_instances": 1, "coalesce": True},
        )
        self.runtime: Runtime | None = None

    # ---------------------------------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop; return the exit code (0)."""
        wake_r, wake_w = socket.socketpair()
        previous = self._install_signals(wake_w)
        try:
            self._start()
            self._loop(wake_r)
            self._stop()
        finally:
            signal.set_wakeup_fd(previous)
            wake_r.close()
            wake_w.close()
        return 0

    def _start(self) -> None:
        self.runtime = self._build(self.cfg)
        try:
            self.health = self._listener(self.cfg)
            self.scheduler.start()
            self._schedule(self.runtime)
            self._start_passes(self.runtime)
            if self.runtime.streams is not None:
                self.runtime.streams.start()
        except BaseException:
            self.runtime.passes.close()
            self.scheduler.shutdown(wait=False) if self.scheduler.running else None
            if self.health is not None:
                self.health.close()
            self.runtime.close()
            raise
        self.state = RunState.RUNNING
        log.info(
            events.DAEMON_STARTED, rooms=len(self.cfg.rooms),
            interval_s=self.cfg.sync.interval.total_seconds(),
            streams=len(self.runtime.streams.groups) if self.runtime.streams is not None else 0,
            metrics=self.health.address if self.health is not None else None,
        )  # fmt: skip
        self.notifier.ready(self._status())
        log.info(events.DAEMON_READIED)

    def _loop(self, wake_r: socket.socket) -> None:
        watchdog = self.notifier.watchdog_interval()
        tick = min(TICK, watchdog.total_seconds()) if watchdog is not None else TICK
        last_ping = 0.0
        while True:
            ready, _, _ = select.select([wake_r], [], [], tick)
            signals = list(wake_r.recv(64)) if ready else []
            if any(s in STOP_SIGNALS for s in signals):
                return
            if signal.SIGHUP in signals:
                self._reload()
            if self.runtime is not None and self.runtime.licences is not None:
                self.runtime.licences.plan_if_asked()
            due = watchdog is not None and time.monotonic() - last_ping >= watchdog.total_seconds() * 0.9
            if due and self._alive():
                self.notifier.watchdog()
                last_ping = time.monotonic()
            self.notifier.status(self._status())

    def _stop(self) -> None:
        self.state = RunState.STOPPING
        log.info(events.DAEMON_STOPPING)
        self.notifier.stopping(self._status())
        self.stopping.set()
        runtime = self.runtime
        if runtime is not None and runtime.streams is not None:
            runtime.streams.close()
        # Waits for the work in hand: a room pass ends after its current meeting's commit and its
        # room's final transaction; the reconcile ends after its current batch.
        if runtime is not None:
            runtime.passes.close()
        self.scheduler.shutdown(wait=True)
        if self.health is not None:
            self.health.close()
        if runtime is not None:
            runtime.wired.close()
        self.state = RunState.STOPPED
        log.info(events.DAEMON_STOPPED)

    # ---------------------------------------------------------------------------------- building

    def _build(self, cfg: Config) -> Runtime:
        wired = wiring.build(cfg)
        try:
            rooms = [r.email.lower() for r in cfg.rooms]
            passes = Passes(
                wired.engine, rooms, book=self.book, metrics=self.metrics, stopping=self.stopping,
                interval=cfg.sync.interval, safety_interval=cfg.sync.stream_safety_interval,
                workers=cfg.exchange.max_connections, batch=cfg.exchange.max_connections,
            )  # fmt: skip
            streams = self._streams(wired, cfg, passes)
            if streams is not None:
                passes.covered_since = streams.covered_since
            runtime = Runtime(cfg=cfg, wired=wired, passes=passes, streams=streams)
            checker = getattr(wired, "licence", None)
            if checker is not None:
                runtime.licences = Licences(
                    checker, metrics=self.metrics, clock=wired.engine.clock, reschedule=self._licence_at
                )
                passes.after_pass = runtime.licences.plan_soon
        except BaseException:
            wired.close()
            raise
        return runtime

    def _streams(self, wired: wiring.Wired, cfg: Config, passes: Passes) -> Any:
        source = wired.source
        if not (hasattr(source, "streaming_account") and hasattr(source, "reserve_sessions")):
            return None  # a source that cannot stream (a test fake): the interval passes alone
        from xesync.adapters.exchange_stream import StreamSet, StreamSource  # noqa: PLC0415 - exchangelib is heavy

        return StreamSet(
            passes.rooms, cast("StreamSource", source), _Hooks(passes, self.metrics),
            catch_up=cfg.exchange.stream_catch_up,
        )  # fmt: skip

    def _listener(self, cfg: Config) -> HealthServer | None:
        if not cfg.metrics.enabled:
            return None
        server = HealthServer.from_config(cfg.metrics, self.metrics, self.book)
        server.start()
        return server

    def _schedule(self, runtime: Runtime) -> None:
        sync = runtime.cfg.sync
        now = datetime.now(UTC)
        hour, minute = (int(part) for part in sync.full_reconcile_at.split(":"))
        later = (hour * 60 + minute + int(HOUSEKEEPING_AFTER.total_seconds() // 60)) % (24 * 60)
        self.scheduler.add_job(
            runtime.passes.full, CronTrigger(hour=hour, minute=minute), id="reconcile",
            name="full reconcile", misfire_grace_time=3600, replace_existing=True,
        )  # fmt: skip
        self.scheduler.add_job(
            _housekeeping_now, CronTrigger(hour=later // 60, minute=later % 60), id="housekeeping",
            kwargs={"store": runtime.wired.store}, name="housekeeping", misfire_grace_time=3600,
            replace_existing=True,
        )  # fmt: skip
        if runtime.licences is not None:
            self.scheduler.add_job(
                runtime.licences.run, DateTrigger(run_date=now + timedelta(seconds=FIRST_LICENCE_RUN)),
                id="licence", name="licence checks", misfire_grace_time=300, replace_existing=True,
            )  # fmt: skip
        # With [cms], ``Wired.licence`` is the LicenceChecker; without it no licence job exists.

    @staticmethod
    def _start_passes(runtime: Runtime) -> None:
        streams = runtime.streams is not None and bool(runtime.streams.groups)
        runtime.passes.start(first_after=STREAM_START_GRACE if streams else 0.0)

    def _licence_at(self, when: datetime) -> None:
        runtime = self.runtime
        if runtime is None or runtime.licences is None or self.stopping.is_set():
            return
        self.scheduler.add_job(
            runtime.licences.run, DateTrigger(run_date=when), id="licence", name="licence checks",
            misfire_grace_time=300, replace_existing=True,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- reload

    def _reload(self) -> None:
        self.state = RunState.RELOADING
        self.notifier.reloading()
        old = self.runtime
        path = self.cfg.source
        try:
            cfg = config_mod.load(path)
            if cfg.metrics != self.cfg.metrics and self.health is not None:
                self.health.close()
                self.health = None
            new = self._build(cfg)
        except XesyncError as exc:
            problems = getattr(exc, "problems", None) or [str(exc)]
            # Expected and fully explained by the problems: no traceback in the journal.
            log.error(events.CONFIG_RELOAD_REFUSED, path=str(path), problems=problems, kept="previous")  # noqa: TRY400
            if self.health is None and self.cfg.metrics.enabled:
                self.health = self._listener(self.cfg)
            self.state = RunState.RUNNING
            self.notifier.ready(self._status())
            return
        if old is not None:
            if old.streams is not None:
                old.streams.close()
            for job in self.scheduler.get_jobs():
                job.remove()
            old.passes.close()  # the passes in hand end; then the reconcile's batch in hand
            with old.passes.holding_all():
                self.runtime, self.cfg = new, cfg
            old.wired.close()
        logs.configure(cfg.logging, stream=sys.stderr, verbose=self.verbose)
        self.book.set_rooms(
            new.passes.rooms, threshold=stale_threshold(cfg.metrics, cfg.sync.interval),
            streamed_threshold=streamed_threshold(cfg.metrics, cfg.sync),
        )  # fmt: skip
        if self.health is None and cfg.metrics.enabled:
            self.health = self._listener(cfg)
        self._schedule(new)
        self._start_passes(new)
        if new.streams is not None:
            new.streams.start()
        self.state = RunState.RUNNING
        log.info(events.DAEMON_RELOADED, path=str(path), rooms=len(cfg.rooms))
        self.notifier.ready(self._status())

    # ---------------------------------------------------------------------------------- helpers

    def _status(self) -> str:
        runtime = self.runtime
        if runtime is None:
            return self.state.value
        streams = (0, 0)
        if runtime.streams is not None:
            streams = (runtime.streams.open_count(), len(runtime.streams.groups))
        return f"{self.state.value}: " + status_line(
            self.book, backlog=runtime.passes.backlog(), streams=streams
        )

    def _alive(self) -> bool:
        thread = getattr(self.scheduler, "_thread", None)
        scheduler = bool(self.scheduler.running and thread is not None and thread.is_alive())
        return scheduler and (self.runtime is None or self.runtime.passes.alive())

    @staticmethod
    def _install_signals(wake_w: socket.socket) -> int:
        wake_w.setblocking(False)  # noqa: FBT003 - the stdlib's signature
        for signum in (*STOP_SIGNALS, signal.SIGHUP):
            # The handler does nothing: the C-level handler writes the signal number to the wake-up
            # socket, and the main loop acts on it outside any handler.
            signal.signal(signum, _ignore)
        return signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)


class _Hooks:
    """What the streams report, turned into wake-ups and stream gauges."""

    def __init__(self, passes: Passes, metrics: Metrics) -> None:
        self._passes, self._metrics = passes, metrics

    def wake(self, rooms: Sequence[str], *, reason: str) -> None:
        self._passes.wake(rooms, reason=reason)

    def stream_opened(self, *, reconnect: bool) -> None:
        self._metrics.streaming_opened(reconnect=reconnect)

    def stream_closed(self) -> None:
        self._metrics.streaming_closed()

    def stream_lost(self, rooms: Sequence[str]) -> None:
        self._passes.unstream(rooms)


def _ignore(signum: int, frame: object) -> None:
    """Signal handler that leaves the work to the main loop (see :meth:`Daemon._install_signals`)."""


def _housekeeping_now(store: Any) -> None:
    housekeeping(store, now=datetime.now(UTC))


def run(cfg: Config, *, verbose: bool = False) -> int:
    """Run the daemon on a loaded configuration until it is told to stop; return the exit code."""
    return Daemon(cfg, verbose=verbose).run()
