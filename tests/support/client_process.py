"""A Socket.IO client in its own process, so a test can kill it like a crashed device.

`ClientProcess(url, name, transport).start()` runs this module as a script: it connects with
`auth={"clientName": name}`, sends a heartbeat every `interval` seconds and prints one JSON line per
event it gets (`{"event": ..., "data": ...}`). `kill()` sends SIGKILL: the kernel closes its TCP
connections with no Socket.IO or Engine.IO goodbye.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any

from .server import REPO

EVENTS = ("heartbeat_response", "server_shutdown", "error", "connection_check",
          "client_status_changed", "guest_registered")


class ClientProcess:
    def __init__(self, url: str, name: str, transport: str = "websocket",
                 interval: float = 0.5) -> None:
        self.url, self.name, self.transport, self.interval = url, name, transport, interval
        self.process: subprocess.Popen | None = None
        self.lines: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def start(self, timeout: float = 15.0) -> ClientProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.client_process", "--url", self.url,
             "--name", self.name, "--transport", self.transport,
             "--interval", str(self.interval)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_line(lambda line: line.get("event") == "heartbeat_response", timeout)
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": "output", "data": raw.rstrip()}
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_line(self, predicate, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"client process {self.name}: no matching line within "
                                         f"{timeout}s; got {self.lines}")
                self._changed.wait(remaining)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _main() -> int:
    import socketio

    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--transport", default="websocket")
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    lock = threading.Lock()

    def say(event: str, data: Any = None) -> None:
        with lock:
            print(json.dumps({"event": event, "data": data}), flush=True)

    sio = socketio.Client(reconnection=False)
    for event in EVENTS:
        sio.on(event, lambda data=None, event=event: say(event, data))
    sio.on("disconnect", lambda *_: say("disconnect"))
    sio.connect(args.url, transports=[args.transport], auth={"clientName": args.name},
                wait_timeout=10)
    say("connected", sio.get_sid())
    while sio.connected:
        sio.emit("heartbeat", {"clientName": args.name, "timestamp": time.time()})
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
