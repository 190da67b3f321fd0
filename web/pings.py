"""Engine.IO pings on hub timers instead of one sleeping greenlet per socket.

python-engineio schedules each socket's next ping by starting a background task that sleeps
`ping_interval` and then sends the ping. Under gevent that parks a greenlet per connected socket
for its whole life, about 8 KiB each (the greenlet and its saved stack) — the largest single
per-client cost after the socket's own reader and writer. `install()` makes
`engineio.socket.Socket.schedule_ping` arm a libev timer instead (~0.3 KiB); when it fires, a
short-lived greenlet sends the ping exactly as engineio's own `_send_ping` does (same checks, same
`last_ping` bookkeeping, so ping timeouts are detected as before).

`install()` also replaces `Socket.check_ping_timeout` (the `ping_timeout` hook), which engineio
calls from its monitor task and before every packet it sends, in two ways:

- a socket whose client stopped answering pings is closed like every close the server decides
  (web/transport.py): its transport ends with no goodbye packet, so its client reconnects by
  itself (stock asks for Engine.IO's CLOSE packet, which python-socketio takes as final; in
  4.14-4.15 the packet is dropped by a nested check, an accident this does not rely on);
- time this process did not run (stopped, or its event loop blocked) does not count against a
  client: a pong sent meanwhile waits unread on its socket, and the check that finds the ping
  "overdue" right after the pause would otherwise close a live socket. `LoopLag` measures how
  late a hub timer of 0.1 s fires; the lateness between a ping and the check is deducted from
  the ping's age (O(1): each ping keeps the total lateness at the time it was sent). The next
  ping after a pong read late comes that much sooner (`schedule_ping`): the client counts its
  own patience, `ping_interval + ping_timeout`, from the ping it got before the pause.

Only the sync server under gevent is changed; anywhere else `install()` does nothing. The changes
are the `pings` and `ping_timeout` hooks of web/hooks.py: outside the engineio versions they were
tested with (4.14 made a new ping wait for the previous cycle), engineio's own code stays.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from engineio import exceptions, packet
from engineio import socket as engine_socket

from . import hooks
from .transport import close_transport

log = logging.getLogger("presence.sockets")

HOOK = hooks.PINGS
TIMEOUT = hooks.PING_TIMEOUT


class LoopLag:
    """How long this process's event loop did not run, as the total lateness of a hub timer.

    A timer set to fire every `period` seconds that fires more than `slack` late was held up:
    the process was stopped or the loop blocked. `stalled()` is the total of those delays,
    including one still going on (the timer is due but has not fired yet).
    """

    def __init__(self, period: float = 0.1, slack: float = 0.1) -> None:
        self.period, self.slack = period, slack
        self.total = 0.0
        self.last_run = time.monotonic()
        self._timer: Any = None

    def start(self) -> None:
        """Start measuring (once per process, in the process that serves)."""
        if self._timer is None:
            self.last_run = time.monotonic()
            self._timer = gevent.get_hub().loop.timer(self.period, self.period, ref=False)
            self._timer.start(self._tick)

    def _late(self, now: float) -> float:
        late = now - self.last_run - self.period
        return late if late > self.slack else 0.0

    def _tick(self) -> None:
        now = time.monotonic()
        late = self._late(now)
        if late:
            self.total += late
            if late >= 1.0:
                log.warning("the event loop did not run for %.1fs (process stopped or blocked); "
                            "Engine.IO ping timeouts do not count it", late)
        self.last_run = now

    def stalled(self) -> float:
        """Seconds the loop has not run so far (only differences between two calls matter)."""
        if self._timer is None:
            self.start()
            return self.total
        return self.total + self._late(time.monotonic())


LAG = LoopLag()


def install(versions: dict[str, str | None] | None = None) -> bool:
    """Ping on hub timers, time out pings as described above (once per process); True if active.

    `versions` stands in for the installed library versions (tests of the guard).
    """
    from gevent import monkey

    changes = ((HOOK, "schedule_ping", schedule_ping),
               (TIMEOUT, "check_ping_timeout", check_ping_timeout))
    if all(hook.status == hooks.ACTIVE for hook, _, _ in changes):
        return True
    if not monkey.is_module_patched("threading"):
        for hook, _, _ in changes:
            hook.stock("not running under gevent")
        return False
    active = True
    for hook, attribute, replacement in changes:
        if hook.status != hooks.ACTIVE:
            if hook.allowed(versions):
                hook.patch(engine_socket.Socket, attribute, replacement)
            else:
                active = False
    return active


def send_ping(sock: Any) -> None:
    """engineio's `_send_ping` after its sleep: the same checks and `last_ping` bookkeeping."""
    try:
        if not sock.closing and not sock.closed:
            sock.last_ping = time.time()
            sock.stalled_at_ping = (sock.last_ping, LAG.stalled())
            sock.send(packet.Packet(packet.PING))
    except Exception:
        log.exception("could not send a ping to %s", sock.sid)


def _ping_due(sock: Any, timer: Any) -> None:
    timer.close()
    sock._ping_timer = None
    gevent.spawn_raw(send_ping, sock)


def schedule_ping(sock: Any) -> None:
    """engineio's `Socket.schedule_ping`, arming a libev timer instead of a sleeping greenlet.

    A pong read late because this process did not run brings the next ping forward by that
    stall: a client gives up on a server that sends nothing for `ping_interval + ping_timeout`
    after its last ping, and the stall already used part of that.
    """
    # like engineio: only schedule a new ping once the previous ping cycle completed
    last_ping = sock.last_ping
    if last_ping:
        sock.last_ping = None
        stalled = stalled_since(sock, last_ping)
        timer = gevent.get_hub().loop.timer(max(0.0, sock.server.ping_interval - stalled))
        sock._ping_timer = timer  # keeps the watcher alive until it fires
        if stalled > 0:  # the loop's cached time may be stale: count the wait from now
            timer.start(_ping_due, sock, timer, update=True)
        else:
            timer.start(_ping_due, sock, timer)


def stalled_since(sock: Any, last_ping: float) -> float:
    """Seconds this process did not run since our `send_ping` sent the ping of `last_ping`."""
    mark = getattr(sock, "stalled_at_ping", None)
    if mark is None or mark[0] != last_ping:
        return 0.0  # not a ping we sent (the stock scheduler's, or the one at connect)
    return LAG.stalled() - mark[1]


def overdue(sock: Any, last_ping: float) -> bool:
    """True when the ping sent at `last_ping` is older than `ping_timeout` in time this process
    ran: the loop's stalls since the ping (`LAG`) do not count."""
    return time.time() - last_ping - stalled_since(sock, last_ping) > sock.server.ping_timeout


def check_ping_timeout(sock: Any) -> bool:
    """engineio's `Socket.check_ping_timeout`; a timed-out socket's transport is closed with no
    goodbye, and time this process did not run does not count (see the module's docstring)."""
    if sock.closed:
        raise exceptions.SocketIsClosedError()
    last_ping = sock.last_ping
    # the hot path (every packet sent) is stock's: one comparison
    if last_ping and time.time() - last_ping > sock.server.ping_timeout:
        if not overdue(sock, last_ping):
            return True  # late only because this process was not running: the pong may be queued
        sock.server.logger.info("%s: Client is gone, closing socket", sock.sid)
        close_transport(sock, sock.server.reason.PING_TIMEOUT)
        return False
    return True
