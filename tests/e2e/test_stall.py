"""A server paused longer than the silence limit does not mark live clients offline (bug 7).

Clients heartbeat every 0.4 s; the server process is stopped (SIGSTOP) for longer than the
silence limit, then continued (SIGCONT). The heartbeats sent meanwhile wait, unread, on the
sockets; the clients' deadline timers are due at once. A due deadline must not be decided
before what is already queued has been read.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.client_process import ClientProcess
from tests.support.server import wait_for

from .helpers import SHORT, changes, seconds, wait_record

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

SILENCE = 3.0
STALL = {
    # silence limit max(1 s × 3, 1 s) = 3 s
    "monitoring": {"heartbeat_interval": "1s", "max_missed_heartbeats": 3,
                   "heartbeat_grace_period": "1s", "connection_check_interval": "30s"},
    # Engine.IO's ping timeout (1 s) is shorter than the pause: time the server did not run does
    # not count (web/pings.py). The clients give up on a server silent for ping_interval +
    # ping_timeout after the last packet they got: 7 s, longer than the pause.
    "socket": {"ping_interval": "6s", "ping_timeout": "1s"},
}


def test_a_pause_longer_than_the_silence_limit_marks_nobody_offline(
        make_server, connect, unique):
    server = make_server(STALL)
    clients = {}
    for transport in ("websocket", "polling"):
        name = unique(transport[:4])
        clients[name] = ClientProcess(server.url, name, transport, interval=0.4).start()
    try:
        for name in clients:
            wait_record(server, name, "online", "connected", connections=1)
        watcher = connect(server.url, "websocket", watch=True)

        server.signal(signal.SIGSTOP)
        try:
            time.sleep(SILENCE + 2.0)  # the pause itself (no synchronisation: nothing runs)
        finally:
            server.signal(signal.SIGCONT)
        resumed = time.time()

        # heartbeats flow again, for longer than any re-check after the pause would take
        def settled(name: str) -> bool:
            record = server.client(name)
            return record["status"] != "online" or seconds(record["last_seen"]) > resumed + 2.0

        for name in clients:
            wait_for(lambda name=name: settled(name), SHORT, 0.1,
                     f"{name} heartbeating after the pause")
        for name, client in clients.items():
            record = server.client(name)
            assert (record["status"], record["reason"], record["connections"]) == (
                "online", "connected", 1), record["transitions"]
            assert [t["status"] for t in record["transitions"]] == ["online"]
            assert changes(watcher, name) == []
            assert not [line for line in client.lines if line.get("event") == "disconnect"]
    finally:
        for client in clients.values():
            client.kill()
