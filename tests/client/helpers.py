"""Waiting helpers for client tests: no bare sleeps, only bounded waits on conditions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.server import REPO, free_port, wait_for

__all__ = ["PYTHON", "REPO", "LineProcess", "Recorder", "free_port", "wait_until"]

PYTHON = os.environ.get("PRESENCE_TEST_PYTHON", sys.executable)


class Recorder:
    """A thread-safe list of what callbacks received, with a bounded wait."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def __call__(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.items))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s; got {self.items!r}")
                self._cond.wait(left)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, every: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``predicate`` (for state outside our process, e.g. HTTP) until truthy or timeout."""
    return wait_for(predicate, timeout, every, what)


class LineProcess:
    """A subprocess whose stdout lines are collected by a thread, with bounded ``expect``."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 cwd: Path = REPO) -> None:
        self.lines: list[tuple[float, str]] = []  # (monotonic arrival time, line)
        self.stderr: list[str] = []
        self.last_at = 0.0  # arrival time of the line the last expect() matched
        self._seen = 0
        self._ended = False
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            args, cwd=cwd, env={**os.environ, **(env or {})}, text=True, bufsize=1,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def text(self) -> list[str]:
        with self._cond:
            return [line for _, line in self.lines]

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait for the next line (after those already matched) that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._seen < len(self.lines):
                    at, line = self.lines[self._seen]
                    self._seen += 1
                    match = regex.search(line)
                    if match:
                        self.last_at = at
                        return match
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    why = "the process ended" if self._ended else f"{timeout}s passed"
                    raise AssertionError(
                        f"no line matching {pattern!r} ({why}); stdout={self.text()!r} "
                        f"stderr={''.join(self.stderr)!r}")
                self._cond.wait(left)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until both output pipes are closed (the process ended) and read."""
        for reader in self._readers:
            reader.join(timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
