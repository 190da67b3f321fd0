"""The runtime: builds the store, the presence core (`presence.Presence`: actors, supervisor,
feed) and, last, the web app that talks to the core through its port; starts them, and runs the
graceful shutdown (CONTRACT §5). Both entry points (`presence-server` and the Procfile's gunicorn
worker) drive one `Runtime`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pykka

from presence_server.actors.clock import Clock, RealScheduler, Scheduler, SystemClock
from presence_server.actors.messages import Recover, ShutdownAll
from presence_server.actors.ondemand import Mailbox
from presence_server.actors.state import Timing
from presence_server.actors.supervisor import Intervals
from presence_server.store import open_store
from presence_server.store.records import iso
from presence_server.web import frames, hooks
from presence_server.web.identity import Identities

from . import gctuning
from .config import Config
from .presence import Presence
from .webhooks import SHUTDOWN_RESERVE, WebhookSender

log = logging.getLogger("presence.runtime")


def _store_runner() -> Callable[[Callable[[], Any]], Any] | None:
    """Under gevent: one real thread for every store call, so the hub never waits on disk."""
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return None
    from gevent.threadpool import ThreadPool

    pool = ThreadPool(1)
    return pool.apply


def timing_from(config: Config) -> Timing:
    monitoring = config.monitoring
    return Timing(
        heartbeat_interval=monitoring["heartbeat_interval"],
        max_missed_heartbeats=monitoring["max_missed_heartbeats"],
        heartbeat_grace_period=monitoring["heartbeat_grace_period"],
        reconnection_grace_period=monitoring["reconnection_grace_period"],
        guest_grace_period=config.guests["connection_timeout"],
        offline_timeout=monitoring["offline_timeout"],
    )


def intervals_from(config: Config) -> Intervals:
    return Intervals(
        connection_check=config.monitoring["connection_check_interval"],
        guest_cleanup=config.guests["cleanup_interval"],
        stats_log=config.monitoring["stats_log_interval"],
        purge_guests_on_startup=config.guests["purge_on_startup"],
        offline_retention=config.store.get("offline_retention"),
    )


class Runtime:
    """One node of the presence server, wired and ready to serve."""

    def __init__(self, config: Config, clock: Clock | None = None,
                 scheduler: Scheduler | None = None) -> None:
        from presence_server.web.app import create_app

        self.config = config
        self.node = config.node_id
        self.clock = clock or SystemClock()
        self.scheduler = scheduler or RealScheduler()
        self.stopped = False
        self.store_lost_changes = False  # the final flush failed: exit non-zero (set by close)
        self.stop_accepting: Callable[[], None] = lambda: None  # set by the server that runs us
        self.store = open_store(config.store["url"], runner=_store_runner(),
                                backlog=config.events["backlog"], node=self.node,
                                node_timeout=config.cluster["node_timeout"])
        self.presence = Presence(
            node=self.node, store=self.store, clock=self.clock, scheduler=self.scheduler,
            timing=timing_from(config), intervals=intervals_from(config),
            identities=Identities.for_store(config.security["secret"], self.store),
            internals=self.internals)
        # The app last: it knows presence only through its port, and is attached to it.
        self.app, self.socketio, self.events = create_app(self.presence, config)
        self.server = self.socketio.server
        self.presence.attach(self.events, emit=self.server.emit, close=self.events.close)
        self.directory = self.presence.directory
        self.webhooks = WebhookSender.from_config(self.presence, config)  # None: webhooks off
        self.supervisor = self.presence.supervisor
        self.gc = gctuning.GcMonitor()
        self.gc_pacer = gctuning.GcPacer(self.scheduler,
                                         thaw_every=config.server["gc_thaw_interval"])

    @property
    def shutting_down(self) -> bool:
        return self.presence.shutting_down

    def start(self) -> None:
        """Start flushing the store and run start-up recovery."""
        self.store.start(self.scheduler)
        if self.webhooks is not None:  # before recovery: its changes are posted too
            self.webhooks.start()
        self.supervisor.ask(Recover(self.clock.now()), timeout=60)
        self.gc.frozen_at_start = gctuning.tune()
        self.gc.install()
        self.gc_pacer.start()
        log.info("node %s ready (store: %s)", self.node, self.store.kind)

    def internals(self) -> dict[str, Any]:
        """Actor count, mail waiting in client mailboxes, garbage-collector work, the status of
        each third-party hook (web/hooks.py); all O(1)."""
        gc_work = self.gc.snapshot()
        pacer = self.gc_pacer
        gc_work.update(young_every_s=pacer.young_every, freezes=pacer.freezes,
                       thaws=pacer.thaws, thaw_every_s=pacer.thaw_every)
        return {"actors": len(self.directory), "mailbox": Mailbox.waiting(), "gc": gc_work,
                "websocket_accelerated": frames.accelerated(), "hooks": hooks.status(),
                "webhooks": self.webhooks.status() if self.webhooks is not None else None}

    def shutdown(self) -> None:
        """Graceful shutdown (CONTRACT §5); safe to call more than once."""
        if self.shutting_down:
            return
        self.presence.shutting_down = True
        shutdown = self.config.shutdown
        began = time.monotonic()
        log.info("graceful shutdown: telling %d sockets to reconnect in %gs",
                 len(self.events.sessions), shutdown["reconnect_after"])
        try:
            self.stop_accepting()
        except Exception:
            log.exception("could not stop accepting connections")
        notice = {
            "message": "The server is shutting down. Please reconnect shortly.",
            "timestamp": iso(self.clock.now()),
            "reconnectAfter": int(shutdown["reconnect_after"] * 1000),
        }
        started = time.monotonic()
        sockets = list(self.events.sessions)
        for sid in sockets:
            self.server.emit("server_shutdown", notice, to=sid)
        log.info("graceful shutdown: server_shutdown sent to %d sockets in %.2fs", len(sockets),
                 time.monotonic() - started)
        self._sleep(shutdown["notice_delay"])
        started = time.monotonic()
        try:
            stopped = self.supervisor.ask(ShutdownAll(self.clock.now()),
                                          timeout=max(1.0, shutdown["timeout"] / 2))
            log.info("graceful shutdown: %s client actors stored as reconnecting in %.2fs",
                     stopped, time.monotonic() - started)
        except Exception:
            log.exception("graceful shutdown: the supervisor did not finish in time")
        self.app.extensions["event_streams"].close_all()  # after the changes just made
        if self.webhooks is not None:  # those changes too, within the shutdown's budget
            self.webhooks.flush(began + shutdown["timeout"] - SHUTDOWN_RESERVE - time.monotonic())
        started = time.monotonic()
        sockets = list(self.events.sessions)
        for sid in sockets:
            try:
                self.events.close(sid)
            except Exception:
                log.debug("socket %s was already closed", sid)
        log.info("graceful shutdown: %d sockets closed in %.2fs", len(sockets),
                 time.monotonic() - started)
        self.close()

    def close(self) -> None:
        """Stop every actor and close the store (the last step of any shutdown)."""
        if self.stopped:
            return
        self.stopped = True
        if self.webhooks is not None:
            self.webhooks.stop()
        try:
            self.supervisor.stop(timeout=5)
        except Exception:
            log.debug("supervisor already stopped")
        for entry in list(self.directory.values()):  # client actors are not in pykka's registry
            entry.ref.stop(block=False)
        pykka.ActorRegistry.stop_all(block=False)
        try:
            self.store_lost_changes = self.store.close() is False
        except Exception:
            log.exception("could not close the store cleanly")
            self.store_lost_changes = True
        self.gc_pacer.stop()
        self.gc.uninstall()
        log.info("shutdown complete")

    @staticmethod
    def _sleep(seconds: float) -> None:
        from gevent import sleep

        sleep(seconds)
