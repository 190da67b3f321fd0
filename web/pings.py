"""Engine.IO pings on hub timers instead of one sleeping greenlet per socket.

python-engineio schedules each socket's next ping by starting a background task that sleeps
`ping_interval` and then sends the ping. Under gevent that parks a greenlet per connected socket
for its whole life, about 8 KiB each (the greenlet and its saved stack) — the largest single
per-client cost after the socket's own reader and writer. `install()` makes
`engineio.socket.Socket.schedule_ping` arm a libev timer instead (~0.3 KiB); when it fires, a
short-lived greenlet sends the ping exactly as engineio's own `_send_ping` does (same checks, same
`last_ping` bookkeeping, so ping timeouts are detected as before).

Only the sync server under gevent is changed; anywhere else `install()` does nothing. The change
is the `pings` hook of web/hooks.py: outside the engineio versions it was tested with (4.14 made a
new ping wait for the previous cycle), engineio's own scheduling stays.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from engineio import packet
from engineio import socket as engine_socket

from . import hooks

log = logging.getLogger("presence.sockets")

HOOK = hooks.PINGS


def install(versions: dict[str, str | None] | None = None) -> bool:
    """Switch engineio's ping scheduling to hub timers (once per process); True if active.

    `versions` stands in for the installed library versions (tests of the guard).
    """
    if HOOK.status == hooks.ACTIVE:
        return True
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        HOOK.stock("not running under gevent")
        return False
    if not HOOK.allowed(versions):
        return False
    HOOK.patch(engine_socket.Socket, "schedule_ping", schedule_ping)
    return True


def send_ping(sock: Any) -> None:
    """engineio's `_send_ping` after its sleep: the same checks and `last_ping` bookkeeping."""
    try:
        if not sock.closing and not sock.closed:
            sock.last_ping = time.time()
            sock.send(packet.Packet(packet.PING))
    except Exception:
        log.exception("could not send a ping to %s", sock.sid)


def _ping_due(sock: Any, timer: Any) -> None:
    timer.close()
    sock._ping_timer = None
    gevent.spawn_raw(send_ping, sock)


def schedule_ping(sock: Any) -> None:
    """engineio's `Socket.schedule_ping`, arming a libev timer instead of a sleeping greenlet."""
    # like engineio: only schedule a new ping once the previous ping cycle completed
    if sock.last_ping:
        sock.last_ping = None
        timer = gevent.get_hub().loop.timer(sock.server.ping_interval)
        sock._ping_timer = timer  # keeps the watcher alive until it fires
        timer.start(_ping_due, sock, timer)
