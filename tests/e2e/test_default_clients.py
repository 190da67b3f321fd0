"""Clients with their library's DEFAULT settings come back by themselves (issue 10, bug 1).

python-socketio's `socketio.Client()` and the official socket.io-client (node), neither with a
`server_shutdown` handler nor any reconnection option, each once with its default transports
(long-polling upgraded to websocket) and once over long-polling only. They must reconnect on
their own after a graceful restart (SIGTERM, then a new process on the same port and store),
after `heartbeat_timeout` and after a kick — which they do only when the server closes the
transport instead of sending a Socket.IO DISCONNECT (`io server disconnect` is final to both
libraries). Back within grace after the restart, nobody is ever shown offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support.server import REPO

from .helpers import LONG, SHORT, changes, path_of, stored, wait_record

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

JS_DIR = REPO / "tests" / "client" / "js"
ADMIN = "default-clients-admin"
HEARTBEAT_EVERY = 0.4
CONFIG = {
    # silence limit 3 s; a restart is well within the grace
    "monitoring": {"heartbeat_interval": "1s", "max_missed_heartbeats": 3,
                   "heartbeat_grace_period": "1s", "reconnection_grace_period": "30s",
                   "connection_check_interval": "30s"},
    "socket": {"ping_interval": "1s", "ping_timeout": "5s"},
    "shutdown": {"notice_delay": "0.3s", "timeout": "8s"},
    "security": {"admin_token": ADMIN},
}
TRANSPORTS = {"default": None, "polling": ["polling"]}


class DefaultClient:
    """What the tests see of either library's client: its connects and disconnects, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def _say(self, line: dict[str, Any]) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def of(self, event: str) -> list[dict[str, Any]]:
        with self._changed:
            return [line for line in self.lines if line.get("event") == event]

    def wait_connects(self, count: int, timeout: float = LONG) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for line in self.lines if line.get("event") == "connect") < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: not connected {count} times within "
                                         f"{timeout}s; got {self.lines}")
                self._changed.wait(left)

    def close(self) -> None:
        raise NotImplementedError


class PythonClient(DefaultClient):
    """`socketio.Client()` as it comes: reconnects forever with its own backoff."""

    def __init__(self, url: str, name: str, transports: list[str] | None,
                 heartbeat_from: int) -> None:
        super().__init__(name)
        self.sio = socketio.Client()
        self.sio.on("connect", lambda: self._say({"event": "connect", "sid": self.sio.sid}))
        self.sio.on("disconnect", lambda *reason: self._say(
            {"event": "disconnect", "reason": str(reason[0]) if reason else None}))
        self._stop = threading.Event()
        self.sio.connect(url, auth={"clientName": name}, transports=transports,
                         wait_timeout=10)
        threading.Thread(target=self._heartbeats, args=(heartbeat_from,), daemon=True).start()

    def _heartbeats(self, heartbeat_from: int) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            if self.sio.connected and len(self.of("connect")) >= heartbeat_from:
                try:
                    self.sio.emit("heartbeat", {"clientName": self.name, "timestamp": time.time()})
                except Exception:  # dropped meanwhile: the library reconnects by itself
                    pass

    def close(self) -> None:
        self._stop.set()
        self.sio.disconnect()


class NodeClient(DefaultClient):
    """tests/client/js/default-client.js: socket.io-client as it comes, in node."""

    def __init__(self, url: str, name: str, transports: list[str] | None,
                 heartbeat_from: int) -> None:
        super().__init__(name)
        env = {"PATH": os.environ.get("PATH", ""), "PRESENCE_URL": url,
               "PRESENCE_NAME": name, "HEARTBEAT_MS": str(int(HEARTBEAT_EVERY * 1000)),
               "HEARTBEAT_FROM": str(heartbeat_from), "TRANSPORTS": ",".join(transports or [])}
        self.process = subprocess.Popen(["node", str(JS_DIR / "default-client.js")], env=env,
                                        cwd=JS_DIR, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_connects(1, SHORT)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                self._say(json.loads(raw))
            except ValueError:
                self._say({"event": "output", "text": raw.rstrip()})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def node_ready() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"socket.io-client needs node and npm on PATH (node: {node}, npm: {npm})")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=JS_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return JS_DIR / "node_modules"


@pytest.fixture(params=["python-socketio", "socket.io-client"])
def open_clients(request, unique):
    """`open_clients(url, heartbeat_from=1)`: one default client per transport setting, by name."""
    kind = PythonClient if request.param == "python-socketio" else NodeClient
    if kind is NodeClient:
        request.getfixturevalue("node_ready")
    opened: list[DefaultClient] = []

    def open_all(url: str, heartbeat_from: int = 1) -> dict[str, DefaultClient]:
        clients = {}
        for label, transports in TRANSPORTS.items():
            name = unique(f"{request.param[:2]}-{label}")
            clients[name] = kind(url, name, transports, heartbeat_from)
            opened.append(clients[name])
        return clients

    yield open_all
    for client in opened:
        client.close()


def assert_no_final_disconnect(client: DefaultClient) -> None:
    """Every disconnect was a dropped transport, never the final `(io) server disconnect`."""
    reasons = [line.get("reason") for line in client.of("disconnect")]
    assert reasons and set(reasons) <= {"transport close", "transport error"}, reasons


def test_back_by_themselves_after_a_graceful_restart(make_server, open_clients, connect):
    server = make_server(CONFIG)
    clients = open_clients(server.url)
    for name in clients:
        wait_record(server, name, "online", "connected", connections=1)
    watcher = connect(server.url, "websocket", watch=True)

    assert server.stop() == 0  # SIGTERM: the graceful shutdown
    on_disk = stored(server)
    for name in clients:
        assert (on_disk[name]["status"], on_disk[name]["reason"]) == (
            "reconnecting", "server_restart"), on_disk[name]
        assert "offline" not in [e["status"] for e in changes(watcher, name)]
    server.start()  # same port, same store
    watcher = connect(server.url, "websocket", watch=True)

    for name, client in clients.items():
        client.wait_connects(2, timeout=30)  # the libraries' backoff: up to 5 s between tries
        record = wait_record(server, name, "online", "reconnected", timeout=LONG,
                             connections=1)
        assert path_of(record["transitions"]) == [
            ("online", "connected"), ("reconnecting", "server_restart"),
            ("online", "reconnected")], record["transitions"]
        assert_no_final_disconnect(client)
    # they stay: heartbeats flow again, past a whole silence limit (3 s)
    window_end = time.monotonic() + 3.5
    while time.monotonic() < window_end:
        for name in clients:
            record = server.client(name)
            assert (record["status"], record["reason"]) == ("online", "reconnected"), record
        time.sleep(0.2)
    for name in clients:
        assert "offline" not in [e["status"] for e in changes(watcher, name)]


def test_back_by_themselves_after_heartbeat_timeout(make_server, open_clients):
    server = make_server(CONFIG)
    # silent on their first connection (3 s: heartbeat_timeout), heartbeating once back
    clients = open_clients(server.url, heartbeat_from=2)

    for name, client in clients.items():
        client.wait_connects(2)
        record = wait_record(server, name, "online", "connected", connections=1)
        assert path_of(record["transitions"])[:3] == [
            ("online", "connected"), ("offline", "heartbeat_timeout"),
            ("online", "connected")], record["transitions"]
        assert_no_final_disconnect(client)


def test_back_by_themselves_after_a_kick(make_server, open_clients):
    server = make_server(CONFIG)
    clients = open_clients(server.url)
    for name in clients:
        wait_record(server, name, "online", "connected", connections=1)

    for name in clients:
        status, body = server.request("POST", f"/api/clients/{name}/kick", ADMIN)
        assert status == 200, body

    for name, client in clients.items():
        client.wait_connects(2)
        record = wait_record(server, name, "online", "connected", connections=1)
        assert path_of(record["transitions"]) == [
            ("online", "connected"), ("offline", "kicked"), ("online", "connected")], \
            record["transitions"]
        assert_no_final_disconnect(client)
