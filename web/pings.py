"""Engine.IO pings on hub timers instead of one sleeping greenlet per socket.

python-engineio schedules each socket's next ping by starting a background task that sleeps
`ping_interval` and then sends the ping. Under gevent that parks a greenlet per connected socket
for its whole life, about 8 KiB each (the greenlet and its saved stack) — the largest single
per-client cost after the socket's own reader and writer. `install()` makes
`engineio.socket.Socket.schedule_ping` arm a libev timer instead (~0.3 KiB); when it fires, a
short-lived greenlet sends the ping exactly as engineio's own `_send_ping` does (same checks, same
`last_ping` bookkeeping, so ping timeouts are detected as before).

Only the sync server under gevent is changed; anywhere else `install()` does nothing.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("presence.sockets")

_installed = False


def install() -> bool:
    """Switch engineio's ping scheduling to hub timers (once per process); True if active."""
    global _installed
    if _installed:
        return True
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return False
    import gevent
    from engineio import packet
    from engineio import socket as engine_socket

    def send_ping(sock) -> None:
        try:
            if not sock.closing and not sock.closed:
                sock.last_ping = time.time()
                sock.send(packet.Packet(packet.PING))
        except Exception:
            log.exception("could not send a ping to %s", sock.sid)

    def ping_due(sock, timer) -> None:
        timer.close()
        sock._ping_timer = None
        gevent.spawn_raw(send_ping, sock)

    def schedule_ping(sock) -> None:
        # like engineio: only schedule a new ping once the previous ping cycle completed
        if sock.last_ping:
            sock.last_ping = None
            timer = gevent.get_hub().loop.timer(sock.server.ping_interval)
            sock._ping_timer = timer  # keeps the watcher alive until it fires
            timer.start(ping_due, sock, timer)

    engine_socket.Socket.schedule_ping = schedule_ping
    _installed = True
    return True
