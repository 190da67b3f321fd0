"""A real presence server process on a free port, for end-to-end tests.

`ServerProcess(tmp_path, overrides)` writes a config overlay (short intervals, a private SQLite
file), starts `python -m presence_server` (or the Procfile's gunicorn command) from the repo root,
and waits until `/health` answers. Logs go to a file the test can read.
"""

from __future__ import annotations

import json
import os
import signal as signals
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

FAST = {
    "monitoring": {
        "heartbeat_interval": "1s",
        "max_missed_heartbeats": 3,
        "heartbeat_grace_period": "1s",
        "reconnection_grace_period": "3s",
        "offline_timeout": "30s",
        "connection_check_interval": "1s",
        "stats_log_interval": "2s",
    },
    "socket": {"ping_interval": "1s", "ping_timeout": "3s"},
    "guests": {"connection_timeout": "2s", "cleanup_interval": "1s"},
    "shutdown": {"reconnect_after": "1s", "notice_delay": "0.3s", "timeout": "8s"},
    "security": {"max_events_per_second": 1000, "new_records_per_minute": 0},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = {key: dict(value) if isinstance(value, dict) else value
              for key, value in base.items()}
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, message: str = ""):
    """Poll `condition()` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


class ServerProcess:
    def __init__(self, workdir: Path, overrides: dict[str, Any] | None = None,
                 port: int | None = None, procfile: bool = False,
                 env: dict[str, str] | None = None, name: str = "server") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.procfile = procfile
        self.name = name
        config = deep_merge(FAST, {"store": {"url": f"sqlite:///{self.workdir / 'presence.db'}"}})
        self.config = deep_merge(config, overrides or {})
        self.config_path = self.workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = self.workdir / f"{name}.log"
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.procfile:
            line = (REPO / "Procfile").read_text().split("web:", 1)[1].strip()
            line = line.replace("$PORT", str(self.port)).replace("0.0.0.0", "127.0.0.1")
            parts = line.split()
            gunicorn = Path(sys.executable).with_name("gunicorn")
            return [str(gunicorn), *parts[1:]]
        return [sys.executable, "-m", "presence_server", "--config", str(self.config_path),
                "--port", str(self.port)]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {**os.environ, "PRESENCE_CONFIG": str(self.config_path), "PORT": str(self.port),
               "PRESENCE_NODE_ID": self.extra_env.get("PRESENCE_NODE_ID", "test-node"),
               "LOG_LEVEL": "INFO", **self.extra_env}
        log = open(self.log_path, "a")
        self.starts += 1
        log.write(f"\n===== start {self.starts}: {' '.join(self.command())}\n")
        log.flush()
        self.process = subprocess.Popen(self.command(), cwd=REPO, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._ready, timeout, 0.1, f"{self.name} to answer /health\n{self.log_text()}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n"
                                 f"{self.log_text()}")
        try:
            return self.get("/health")["status"] in ("ok", "degraded")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())

    def request(self, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def client(self, name: str) -> dict[str, Any] | None:
        status, body = self.request("GET", f"/api/clients/{name}")
        return body if status == 200 else None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, signum: int = signals.SIGTERM, timeout: float = 20.0) -> int:
        """Send `signum` and wait for the exit; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"{self.name} did not exit within {timeout}s after {signum}:\n"
                                 f"{self.log_text()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
