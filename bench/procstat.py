"""CPU and RSS of process trees, read from /proc (no psutil needed).

CPU is utime+stime from ``/proc/<pid>/stat`` summed over the process and its live descendants;
RSS is ``VmRSS`` from ``/proc/<pid>/status``. A sampler thread records both once per interval.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """utime+stime of one process in seconds, None if it is gone."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text[text.rfind(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int | None:
    """VmRSS of one process in bytes, None if it is gone."""
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant (via /proc/<pid>/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    for _ in range(10_000):  # bounded walk
        if not todo:
            break
        cur = todo.pop()
        out.append(cur)
        try:
            tasks = os.listdir(f"/proc/{cur}/task")
        except OSError:
            continue
        for tid in tasks:
            text = _read(f"/proc/{cur}/task/{tid}/children") or ""
            todo.extend(int(x) for x in text.split())
    return out


def tree_usage(pid: int) -> tuple[float, int] | None:
    """(cpu seconds, rss bytes) summed over a process tree; None if the root is gone."""
    if cpu_seconds(pid) is None:
        return None
    cpu = 0.0
    rss = 0
    for p in descendants(pid):
        c = cpu_seconds(p)
        r = rss_bytes(p)
        cpu += c or 0.0
        rss += r or 0
    return cpu, rss


@dataclass
class Series:
    """One tracked group of process trees and its samples."""

    pids: list[int]
    samples: list[dict[str, float]] = field(default_factory=list)
    _last: tuple[float, float] | None = None
    # last CPU seconds seen per process: one that exits (a load worker quitting before the
    # others) keeps counting what it used, so the cumulative CPU of the group never drops
    _cpu_by_pid: dict[int, float] = field(default_factory=dict)

    def sample(self, now: float) -> None:
        rss = 0
        alive = False
        for root in self.pids:
            if cpu_seconds(root) is None:
                continue
            alive = True
            for pid in descendants(root):
                used = cpu_seconds(pid)
                if used is not None:
                    self._cpu_by_pid[pid] = used
                rss += rss_bytes(pid) or 0
        if not alive:
            return
        cpu = sum(self._cpu_by_pid.values())
        pct = None
        # CPU time moves in clock ticks (10 ms): a rate over less than half a second is noise.
        if self._last is None or now - self._last[0] >= 0.5:
            if self._last is not None:
                pct = 100.0 * (cpu - self._last[1]) / (now - self._last[0])
            self._last = (now, cpu)
        self.samples.append({"t": now, "cpu_s": cpu, "cpu_pct": pct, "rss": rss})

    def window(self, t0: float, t1: float) -> dict[str, float | None]:
        """Mean CPU % (from cumulative CPU time) and RSS at the end of [t0, t1]."""
        inside = [s for s in self.samples if t0 <= s["t"] <= t1]
        if len(inside) < 2:
            return {"cpu_pct": None, "rss": inside[-1]["rss"] if inside else None}
        first, last = inside[0], inside[-1]
        pct = 100.0 * (last["cpu_s"] - first["cpu_s"]) / (last["t"] - first["t"])
        return {"cpu_pct": round(pct, 2), "rss": last["rss"],
                "rss_max": max(s["rss"] for s in inside)}


def core_jiffies() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat; busy includes irq and softirq time,
    where the kernel does much of loopback TCP's work without charging any process."""
    out: dict[int, tuple[int, int]] = {}
    for line in (_read("/proc/stat") or "").splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        nums = [int(v) for v in values[:8]]
        idle = nums[3] + nums[4]  # idle + iowait
        out[int(name[3:])] = (sum(nums) - idle, sum(nums))
    return out


class Sampler:
    """Samples named process groups (and each CPU's busy share) every ``interval`` seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.series: dict[str, Series] = {}
        self.cores: list[tuple[float, dict[int, tuple[int, int]]]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)

    def track(self, name: str, pids: list[int]) -> None:
        with self._lock:
            self.series[name] = Series(list(pids))
            self.series[name].sample(time.time())

    def sample_now(self) -> None:
        now = time.time()
        with self._lock:
            self.cores.append((now, core_jiffies()))
            for s in self.series.values():
                s.sample(now)

    def core_busy(self, t0: float, t1: float) -> dict[int, float]:
        """Busy % per CPU over the samples inside [t0, t1]."""
        inside = [c for t, c in self.cores if t0 <= t <= t1]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        out = {}
        for cpu, (busy, total) in last.items():
            if cpu in first and total > first[cpu][1]:
                out[cpu] = round(100.0 * (busy - first[cpu][0]) / (total - first[cpu][1]), 1)
        return out

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample_now()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()
