"""Optional py-spy sampling of our server during a measured window (``--profile``)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

IDLE_FRAMES = ("Hub.run (gevent/hub.py",)  # the gevent loop waiting in libev: idle time
PROJECT = ("(actors/", "(web/", "(store/", "(presence_server/")  # our server's own modules


class Profiler:
    """``py-spy record --format raw`` on ``pid`` (for ``seconds``, or until :meth:`finish`),
    run on the load CPU."""

    def __init__(self, pid: int, seconds: float | None, out: Path, prefix: list[str]) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        exe = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent))
        if exe is None:
            self.error = "py-spy not found (pip install py-spy)"
            return
        duration = [] if seconds is None else ["--duration", str(max(1, int(seconds)))]
        self.proc = subprocess.Popen(
            [*prefix, exe, "record", "--pid", str(pid), *duration, "--rate", "100",
             "--format", "raw", "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for py-spy and summarise the stacks: top functions by self and total samples."""
        if self.proc is None:
            return {"error": self.error}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            return {"error": (err or b"").decode(errors="replace").strip()[-300:] or "no output"}
        return summarise(self.out.read_text(errors="replace"))


def summarise(collapsed: str, top: int = 20) -> dict[str, Any]:
    """Top frames of a collapsed-stack file: self samples (leaf), total (anywhere in the stack),
    and total for frames of our server's own modules."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    project_counts: Counter[str] = Counter()  # per function (py-spy names frames by line)
    samples = idle = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_FRAMES):
            idle += count
            continue
        samples += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
        for func in {re.sub(r":\d+\)$", ")", f) for f in frames if any(p in f for p in PROJECT)}:
            project_counts[func] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": frame, "samples": n, "pct": round(100.0 * n / max(samples, 1), 1)}
                for frame, n in counter.most_common(top)]

    # pct is of the busy samples (idle gevent-loop samples are counted apart).
    return {"samples": samples, "idle_samples": idle, "self": rows(self_counts),
            "total": rows(total_counts), "project_total": rows(project_counts)}
