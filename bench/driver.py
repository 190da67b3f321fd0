"""Python side of the Node load generator: starts workers, sends commands, collects reports."""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bench.hist import Histogram, merged
from bench.system import LOADGEN_DIR, die_with_parent, node_binary, source_addresses

Event = dict[str, Any]
REPORT_S = 1.0  # workers report every second (loadgen.js reportMs)
MAX_CLIENTS_PER_WORKER = 15_000  # stays under a 20k open-files limit; ~25k ports per address


class LoadGenError(RuntimeError):
    """A worker died, refused a command, or did not answer in time."""


class Worker:
    """One ``node loadgen.js`` process and the JSON lines it prints."""

    def __init__(self, prefix: list[str], label: str) -> None:
        node = node_binary()
        if node is None:
            raise LoadGenError("node not found: the load generator needs Node.js >= 18")
        self.label = label
        self.proc = subprocess.Popen(
            [*prefix, node, str(LOADGEN_DIR / "loadgen.js")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, cwd=LOADGEN_DIR, preexec_fn=die_with_parent,
        )
        self.reports: list[Event] = []
        self.events: list[Event] = []
        self.stderr_tail: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True, name=f"{label}-out"),
            threading.Thread(target=self._read_stderr, daemon=True, name=f"{label}-err"),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._cond:
                if event.get("ev") == "report":
                    self.reports.append(event)
                else:
                    self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip()])[-20:]

    def send(self, cmd: str, **fields: Any) -> None:
        if self.proc.poll() is not None or self.proc.stdin is None:
            raise LoadGenError(f"{self.label} exited: {' | '.join(self.stderr_tail[-5:])}")
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def wait(self, ev: str, timeout: float, since: int = 0,
             pred: Callable[[Event], bool] | None = None) -> Event:
        """The first event named ``ev`` at index >= ``since`` (matching ``pred``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if event.get("ev") == ev and (pred is None or pred(event)):
                        return event
                if not self._threads[0].is_alive():  # the worker's stdout ended: it is gone
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        state = "exited" if self.proc.poll() is not None else f"no '{ev}' within {timeout:.0f}s"
        raise LoadGenError(f"{self.label}: {state} (stderr: {' | '.join(self.stderr_tail[-3:])})")

    def mark(self) -> int:
        """Index to pass as ``since`` so ``wait`` ignores older events."""
        with self._cond:
            return len(self.events)

    def find(self, ev: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.get("ev") == ev]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (LoadGenError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)


class LoadGen:
    """A set of workers driving ``names`` against ``url``, each from its own source address."""

    def __init__(self, url: str, names: list[str], prefix: list[str], workers: int = 1,
                 reconnection: bool = False, connect_rate: float = 500.0,
                 ack_timeout_ms: int = 10_000, watcher: bool = False) -> None:
        count = max(1, workers, math.ceil(len(names) / MAX_CLIENTS_PER_WORKER))
        count = min(count, max(1, len(names)))
        addresses = source_addresses(count + 1)
        self.url = url
        self.names = names
        self.workers: list[Worker] = []
        self.watcher: Worker | None = None
        try:
            for i in range(count):
                share = names[i::count]
                worker = Worker(prefix, f"loadgen-{i}")
                self.workers.append(worker)
                worker.send("init", url=url, names=share, localAddress=addresses[i],
                            ackTimeoutMs=ack_timeout_ms, reconnection=reconnection,
                            connectRate=connect_rate / count, connectConcurrency=64,
                            reportMs=int(REPORT_S * 1000))
            if watcher:
                self.watcher = Worker(prefix, "watcher")
                self.watcher.send("init", url=url, names=[], localAddress=addresses[count])
            for worker in self.all_workers:
                worker.wait("ready", timeout=30)
        except Exception:
            self.close()
            raise

    @property
    def all_workers(self) -> list[Worker]:
        return self.workers + ([self.watcher] if self.watcher else [])

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.all_workers]

    def broadcast(self, cmd: str, **fields: Any) -> None:
        for worker in self.workers:
            worker.send(cmd, **fields)

    def start_watch(self, timeout: float = 30.0) -> Event:
        assert self.watcher is not None
        since = self.watcher.mark()
        self.watcher.send("watch")
        return self.watcher.wait("watching", timeout=timeout, since=since)

    def connect(self, timeout: float) -> dict[str, float]:
        """Open every socket; returns connected, failed and seconds."""
        marks = [w.mark() for w in self.workers]
        t0 = time.time()
        self.broadcast("connect")
        deadline = time.monotonic() + timeout
        done = [w.wait("ramp_done", timeout=max(1.0, deadline - time.monotonic()), since=m)
                for w, m in zip(self.workers, marks, strict=True)]
        return {"connected": sum(e["connected"] for e in done),
                "failed": sum(e["failed"] for e in done),
                "seconds": round(time.time() - t0, 3)}

    def start(self, heartbeat_s: float) -> None:
        marks = [w.mark() for w in self.workers]
        self.broadcast("start", heartbeatMs=heartbeat_s * 1000.0)
        for worker, m in zip(self.workers, marks, strict=True):
            worker.wait("started", timeout=30, since=m)

    def stop(self) -> None:
        marks = [w.mark() for w in self.workers]
        self.broadcast("stop")
        for worker, m in zip(self.workers, marks, strict=True):
            worker.wait("stopped", timeout=30, since=m)

    def _per_worker(self, cmd: str, reply: str, key: str, names: Iterable[str]) -> dict[str, Any]:
        wanted = set(names)
        out: dict[str, Any] = {}
        pending = []
        for worker in self.workers:
            mine = [n for n in self.names_of(worker) if n in wanted]
            if mine:
                pending.append((worker, worker.mark()))
                worker.send(cmd, names=mine)
        for worker, m in pending:
            out.update(worker.wait(reply, timeout=30, since=m)[key])
        return out

    def drop(self, names: Iterable[str]) -> dict[str, dict[str, float | None]]:
        """Close these clients cleanly; returns {name: {t: close, last: last heartbeat}} (ms)."""
        return self._per_worker("drop", "dropped", "times", names)

    def silence(self, names: Iterable[str]) -> dict[str, float | None]:
        """Silence these clients; returns {name: last heartbeat send time, ms since epoch}."""
        return self._per_worker("silence", "silenced", "last", names)

    def mark_all(self) -> list[int]:
        marks = [w.mark() for w in self.workers]
        self.broadcast("mark")
        for worker, m in zip(self.workers, marks, strict=True):
            worker.wait("marked", timeout=30, since=m)
        return [w.mark() for w in self.workers]

    def wait_confirmed(self, marks: list[int], timeout: float) -> float:
        """Time (s since epoch) the last worker saw every client acked again after ``mark_all``."""
        deadline = time.monotonic() + timeout
        times = [w.wait("confirmed_all", timeout=max(1.0, deadline - time.monotonic()), since=m)
                 ["t"] for w, m in zip(self.workers, marks, strict=True)]
        return max(times) / 1000.0

    def reports(self, t0: float | None = None, t1: float | None = None) -> list[Event]:
        """Worker reports (tagged ``w``: worker index) whose time (s since epoch) is in [t0, t1]."""
        out = []
        for i, worker in enumerate(self.workers):
            for rep in list(worker.reports):
                t = rep["t"] / 1000.0
                if (t0 is None or t >= t0) and (t1 is None or t <= t1):
                    out.append({**rep, "w": i})
        return out

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Latency summary and counters over reports in [t0, t1] (seconds since epoch)."""
        reps = self.reports(t0, t1)
        hist = merged(r["hist"] for r in reps)
        lag = merged(r["lag"] for r in reps)
        # Each report covers the REPORT_S before it: the window really spans whole reports.
        per_worker = max((sum(1 for r in reps if r["w"] == i) for i in range(len(self.workers))),
                         default=0)
        span = max(per_worker * REPORT_S, 1e-9)
        totals = {k: sum(r[k] for r in reps) for k in
                  ("sent", "acked", "errors", "timeouts", "connects", "disconnects",
                   "connectErrors", "serverErrors")}
        cpu_ms = sum(r["cpuMs"] for r in reps)
        last_connected = self.connected_at(t1)
        return {
            "latency": hist.summary(),
            "hist": hist.to_json(),
            "send_lag": lag.summary(),
            "ack_rate": round(totals["acked"] / span, 1),
            "send_rate": round(totals["sent"] / span, 1),
            "loadgen_cpu_pct_reported": round(100.0 * cpu_ms / 1000.0 / span, 1),
            "connected": last_connected,
            **totals,
        }

    def connected_at(self, t: float) -> int:
        """Sum over workers of the connected count in each one's last report at or before t."""
        total = 0
        for worker in self.workers:
            last = [r for r in list(worker.reports) if r["t"] / 1000.0 <= t]
            if last:
                total += last[-1]["connected"]
        return total

    def timeline(self) -> list[dict[str, Any]]:
        """Per-second merged reports: acks, p50/p99 latency, connected, send lag."""
        buckets: dict[int, list[Event]] = {}
        for rep in self.reports():
            buckets.setdefault(int(rep["t"] // 1000), []).append(rep)
        out = []
        for sec in sorted(buckets):
            reps = buckets[sec]
            hist = Histogram()
            for r in reps:
                hist.merge(r["hist"])
            out.append({
                "t": float(sec),
                "acked": sum(r["acked"] for r in reps),
                "sent": sum(r["sent"] for r in reps),
                "timeouts": sum(r["timeouts"] for r in reps),
                "errors": sum(r["errors"] for r in reps),
                "connected": sum(r["connected"] for r in reps),
                "p50_ms": hist.percentile(50),
                "p99_ms": hist.percentile(99),
            })
        return out

    def names_of(self, worker: Worker) -> list[str]:
        """The client names a worker drives (names are dealt round-robin)."""
        return self.names[self.workers.index(worker)::len(self.workers)]

    def close(self) -> None:
        for worker in self.all_workers:
            worker.close()
