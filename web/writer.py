"""Engine.IO's websocket writer waits for its next packet without arming a timer each time.

python-engineio's `Socket.poll` waits with `queue.get(timeout=ping_interval + ping_timeout)`.
Under gevent every such wait builds a `Timeout`, starts and stops a libev timer and parks a
waiter: one set per packet sent, so one per heartbeat ack. In the capacity profile that wait was
the busiest frame of the whole process, and its objects were a third of what the young
collections scanned. For a websocket the timeout guards nothing: the writer ends when `None` is
queued, which every `Socket.close()` does, and the reader does when the socket closes; a socket
whose client stopped answering pings is closed by engineio's own monitor (`check_ping_timeout`,
within `ping_timeout`). Long-polling, where the timeout answers an idle poll, keeps engineio's
`poll` unchanged.

Only the server under gevent is changed; anywhere else `install()` does nothing. The change is
the `writer` hook of web/hooks.py: outside the engineio versions it was tested with, engineio's own
`poll` stays.
"""

from __future__ import annotations

from typing import Any

from engineio import socket as engine_socket

from . import hooks

HOOK = hooks.WRITER


def install(versions: dict[str, str | None] | None = None) -> bool:
    """Make websocket writers wait without a timeout (once per process); True if active.

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
    HOOK.patch(engine_socket.Socket, "poll", poll)
    return True


def poll(sock: Any) -> list[Any]:
    """engineio's `Socket.poll`, without the timeout once the socket is a websocket."""
    if not sock.upgraded:  # long-polling: engineio's poll, with its timeout
        return HOOK.original(engine_socket.Socket, "poll")(sock)
    # websocket: only the writer calls poll once upgraded (polling GETs get a NOOP)
    queue = sock.queue
    first = queue.get()
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    # the rest of what is queued, as engineio does, but without raising queue.Empty at the
    # end of every poll (the writer is the only reader of this queue)
    while queue.qsize():
        pkt = queue.get(block=False)
        queue.task_done()
        if pkt is None:
            queue.put(None)  # the writer ends at its next poll
            break
        packets.append(pkt)
    return packets
