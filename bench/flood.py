"""The flood scenario (ours only): normal clients' heartbeat acks while hostile sockets attack.

Per case, on a fresh server whose store holds ``--records`` stored records: N normal clients
heartbeat through the load generator; a calm window is measured; then ``bench.attacker`` (its own
process, on the load CPU like the load generator) floods for ``--flood-seconds`` and stops by
itself; then an after window. Recorded per case: the normal clients' ack p50/p99/p99.9 in each
window, their errors, the server's CPU, RSS and open file descriptors (before, peak, after: a
leak shows as fds that stay), its log growth, and what the attacker sent and got back (``error``
codes, HTTP statuses, sockets the server closed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.runner import (
    Context,
    client_names,
    core_window,
    loadgen,
    proc_timeline,
    proc_window,
    serving,
    settle,
)
from bench.servers.launcher import Settings
from bench.system import REPO_ROOT, die_with_parent

ATTACKER_SOURCE = "127.0.3.1"  # not a load generator's address (those are 127.0.0.2, .3, …)
P99_TARGET_MS = 50.0  # issue 10, "Done means": others' heartbeat ack p99 under 50 ms
# Per case: hostile sockets and attack packets per second (all sockets together), and extras.
CASES: dict[str, dict[str, Any]] = {
    "unknown": {"sockets": 4, "rate": 2000},
    "malformed": {"sockets": 4, "rate": 1000},
    "oversized_post": {"sockets": 8, "rate": 20, "content_length": 2_000_000,
                       "body_bytes": 65536},
    "binary": {"sockets": 2, "rate": 4, "attachments": 8, "attachment_kib": 256},
    "watch": {"sockets": 2, "rate": 40},
    "register": {"sockets": 4, "rate": 100},
    "slow": {"sockets": 150},
}
MIXED = "mixed"  # every case above at once, in one attacker process
ALL_CASES = [*CASES, MIXED]


def parse_cases(text: str) -> list[str]:
    """``--flood-cases`` (comma-separated; ``all`` = every case and ``mixed``)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if "all" in names:
        return list(ALL_CASES)
    unknown = [c for c in names if c not in ALL_CASES]
    if unknown or not names:
        raise SystemExit(f"bench: unknown flood case(s) {unknown}; choose from "
                         f"{', '.join(ALL_CASES)} or all")
    return list(dict.fromkeys(names))


def attack_params(scale: float, max_http_buffer_size: int) -> dict[str, dict[str, Any]]:
    """The attacker's per-case parameters, rates multiplied by ``scale``."""
    out: dict[str, dict[str, Any]] = {}
    for case, params in CASES.items():
        p = dict(params)
        if "rate" in p:
            p["rate"] = max(1.0, p["rate"] * scale)
        if case == "slow":
            p["sockets"] = max(3, int(p["sockets"] * scale))
        if case == "oversized_post":
            p["content_length"] = max(p["content_length"], 2 * max_http_buffer_size)
        out[case] = p
    return out


def seed_records(url: str, count: int) -> dict[str, Any]:
    """Write ``count`` offline records into the store at ``url`` before the server starts
    (through the server's own store API), so ``watch`` snapshots have something to carry."""
    if count <= 0:
        return {"records": 0}
    try:
        from presence_server.store import ClientRecord, open_store

        store = open_store(url)
        now = time.time() - 60.0
        for i in range(count):
            store.save(ClientRecord(
                name=f"stored-{i:06d}", status="offline", reason="reconnect_timeout", since=now,
                last_seen=now, last_contact=now, ip="127.0.0.9", guest=False, node="bench-seed",
                connections=0, version=1))
        store.close()
    except Exception as exc:  # recorded: the run goes on with whatever the store holds
        return {"records": 0, "error": repr(exc)}
    return {"records": count}


def fd_count(pid: int) -> int | None:
    """Open file descriptors of one process (None when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class FdWatch:
    """Counts the server's open fds twice a second in a thread: peak and series."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fd-watch")

    def start(self) -> FdWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        for _ in range(1_000_000):  # bounded; stopped with the run
            n = fd_count(self.pid)
            if n is not None:
                self.samples.append((time.time(), n))
            if self._stop.wait(0.5):
                return

    def peak(self, t0: float, t1: float) -> int | None:
        inside = [n for t, n in self.samples if t0 <= t <= t1]
        return max(inside) if inside else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def log_size(path: Path) -> tuple[int, int]:
    """(bytes, lines) of the server's log so far."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0
    return len(data), data.count(b"\n")


class Attacker:
    """``python -m bench.attacker SPEC`` on the load CPU; its last JSON line is the report."""

    def __init__(self, prefix: list[str], spec: dict[str, Any]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "bench.attacker", json.dumps(spec)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self, timeout: float) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        for line in reversed(out.splitlines()):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if doc.get("ev") == "done":
                return doc
        return {"ev": "failed", "exit_code": self.proc.returncode, "stderr": err[-2000:]}


def rejected(report: dict[str, Any]) -> dict[str, int]:
    """What the server visibly refused, over every case of one attacker report."""
    codes = sum(n for per in report.get("error_codes", {}).values() for n in per.values())
    http = sum(n for per in report.get("http", {}).values() for status, n in per.items()
               if status[:1] in ("4", "5"))
    closed = sum(per.get("closed_by_server", 0) for per in report.get("other", {}).values())
    limited = sum(per.get("rate_limited", 0) for per in report.get("error_codes", {}).values())
    return {"error_events": codes, "rate_limited": limited, "http_4xx_5xx": http,
            "sockets_closed_by_server": closed, "total": codes + http + closed}


# --- the scenario -------------------------------------------------------------------------------
def run(ctx: Context) -> dict[str, Any]:
    from bench.scenarios import NOT_APPLICABLE, _guarded

    o = ctx.opts
    n = o.clients_for("flood")
    settings = Settings(heartbeat_interval=o.heartbeat, gc_trace=o.gc_trace,
                        log_level=o.log_level, ours_overlay=o.overlay())
    params = attack_params(o.flood_scale, settings.max_http_buffer_size)
    runs = []
    for rep in range(o.repeat):
        if "ours" not in ctx.servers:
            break
        for case in o.flood_cases:
            print(f"bench: flood rep {rep + 1}/{o.repeat}: ours, case {case}", flush=True)
            result = _guarded("ours", rep, _flood_run, ctx, settings, params, n, case, rep)
            result.setdefault("case", case)
            runs.append(result)
    return {
        "params": {"clients": n, "heartbeat_s": o.heartbeat, "records": o.records,
                   "calm_s": o.calm_seconds, "flood_s": o.flood_seconds,
                   "after_s": o.after_seconds, "cases": o.flood_cases,
                   "flood_scale": o.flood_scale, "attacker_source": ATTACKER_SOURCE,
                   "p99_target_ms": P99_TARGET_MS,
                   "max_http_buffer_size": settings.max_http_buffer_size},
        "attack": {case: params[case] for case in CASES},
        "applies_to": ["ours"],
        "not_applicable": {k: NOT_APPLICABLE for k in ctx.servers if k != "ours"},
        "runs": runs,
        "summary": summarise(runs),
    }


SUMMARY_KEYS = ("attack_sent", "attack_rate", "rejected", "calm_p50_ms", "calm_p99_ms",
                "calm_p999_ms", "flood_p50_ms", "flood_p99_ms", "flood_p999_ms", "after_p99_ms",
                "normal_unanswered", "normal_unanswered_pct", "normal_errors",
                "calm_server_cpu_pct", "flood_server_cpu_pct",
                "server_core_pct", "load_core_pct", "attacker_cpu_pct", "attacker_us_per_packet",
                "rss_calm_mib", "rss_peak_mib", "rss_after_mib", "fds_before", "fds_peak",
                "fds_after", "fds_leaked", "records_created", "log_lines", "log_bytes")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case: the median over repetitions of each number (None where no run had one)."""
    out: dict[str, dict[str, Any]] = {}
    for case in dict.fromkeys(r["case"] for r in runs):
        mine = [r for r in runs if r["case"] == case and "error" not in r]
        row: dict[str, Any] = {"reps": len(mine)}
        for key in SUMMARY_KEYS:
            vals = [r[key] for r in mine if isinstance(r.get(key), (int, float))]
            row[key] = round(statistics.median(vals), 3) if vals else None
        p99, lost = row["flood_p99_ms"], row["normal_unanswered_pct"]
        # a p99 over the answered heartbeats says nothing when over 1 % were never answered
        row["flood_p99_under_target"] = (None if p99 is None or lost is None
                                         else p99 < P99_TARGET_MS and lost <= 1.0)
        row["error_codes"] = _merge_counts(r["attacker"].get("error_codes", {}) for r in mine)
        row["http"] = _merge_counts(r["attacker"].get("http", {}) for r in mine)
        out[case] = row
    return out


def _merge_counts(docs: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for doc in docs:
        for per in doc.values():
            for key, n in per.items():
                total[key] = total.get(key, 0) + n
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def _diff(a: Any, b: Any) -> int | None:
    return a - b if isinstance(a, int) and isinstance(b, int) else None


def _mib(value: Any) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _flood_run(ctx: Context, settings: Settings, params: dict[str, dict[str, Any]], n: int,
               case: str, rep: int) -> dict[str, Any]:
    o = ctx.opts
    tag = f"flood-{case}-{rep}"
    (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
    seeded = seed_records(ctx.store_url(tag), o.records) if o.store == "sqlite" else {
        "records": 0, "error": "seeding needs the sqlite store"}
    cases = list(CASES) if case == MIXED else [case]
    with serving(ctx, "ours", settings, tag) as run:
        fds = FdWatch(run.server.pid).start()
        gen = loadgen(ctx, run, client_names("fld", n))
        attacker: Attacker | None = None
        try:
            gen.start(o.heartbeat)
            ramp = gen.connect(timeout=n / o.ramp_rate * 4 + 60)
            settle(o.heartbeat)  # every client has heartbeated once before we measure
            t0 = time.time()
            run.sampler.sample_now()
            settle(o.calm_seconds)
            run.sampler.sample_now()
            t1 = time.time()
            fds_before = fd_count(run.server.pid)
            api_before = run.poller.poll() if run.poller else None
            log_before = log_size(run.server.log_path)
            spec = {"url": run.server.url, "cases": cases, "seconds": o.flood_seconds,
                    "source": ATTACKER_SOURCE, "tag": f"{case}{rep}",
                    "params": {c: params[c] for c in cases}}
            attacker = Attacker(ctx.load_prefix, spec)
            run.sampler.track("attacker", [attacker.pid])
            t2 = time.time()
            report = attacker.finish(timeout=o.flood_seconds + 60)
            attacker = None
            exited = time.time()
            # the flood window ends when the attacker stopped sending (it then reads late
            # answers for up to 2 s); the after window runs on from there
            t2 = max(t2, float(report.get("started_at") or t2))
            t3 = min(exited, float(report.get("stopped_sending_at") or exited))
            settle(max(1.0, t3 + o.after_seconds - time.time()))
            run.sampler.sample_now()
            t4 = time.time()
            fds_after = fd_count(run.server.pid)
            log_after = log_size(run.server.log_path)
            api_after = run.poller.poll() if run.poller else None
            health = run.server.get_json("/health", timeout=5.0)
            calm, flood, after = gen.window(t0, t1), gen.window(t2, t3), gen.window(t3, t4)
            internals = run.internals()
            timeline = gen.timeline()
        finally:
            if attacker is not None:
                attacker.finish(timeout=5)
            gen.close()
            fds.stop()
    srv_calm = proc_window(run, "server", t0, t1)
    srv_flood = proc_window(run, "server", t2, t3)
    srv_after = proc_window(run, "server", t3, t4)
    att = proc_window(run, "attacker", t2, t3)
    sent = sum(report.get("sent", {}).values())
    span = max(t3 - t2, 1e-9)
    lost_clients = (calm["connected"] or 0) - (after["connected"] or 0)
    # heartbeats sent during the flood still unanswered at the end of the after window: late
    # acks of flood heartbeats show as the after window's acks beyond its own sends
    late = max(0, int(after["acked"]) - int(after["sent"]))
    unanswered = max(0, int(flood["sent"]) - int(flood["acked"]) - late)
    unanswered_pct = round(100.0 * unanswered / flood["sent"], 2) if flood["sent"] else None
    leaked = (None if fds_before is None or fds_after is None
              else fds_after - fds_before + max(0, lost_clients))
    return {
        "server": "ours",
        "case": case,
        "rep": rep,
        "clients": n,
        "seeded": seeded,
        "connected": ramp["connected"],
        "attacker": report,
        "attack_sent": sent,
        "attack_rate": round(sent / span, 1),
        "rejected": rejected(report)["total"],
        "rejected_detail": rejected(report),
        "calm_p50_ms": calm["latency"]["p50_ms"],
        "calm_p99_ms": calm["latency"]["p99_ms"],
        "calm_p999_ms": calm["latency"]["p999_ms"],
        "flood_p50_ms": flood["latency"]["p50_ms"],
        "flood_p99_ms": flood["latency"]["p99_ms"],
        "flood_p999_ms": flood["latency"]["p999_ms"],
        "after_p99_ms": after["latency"]["p99_ms"],
        # percentiles count answered heartbeats only: read them with this
        "normal_unanswered": unanswered,
        "normal_unanswered_pct": unanswered_pct,
        "normal_errors": sum(int(w["timeouts"] + w["errors"] + w["connectErrors"]
                                 + w["serverErrors"] + w["disconnects"]) for w in (flood, after)),
        "normal_connected": {"calm": calm["connected"], "after": after["connected"]},
        "calm_server_cpu_pct": srv_calm["cpu_pct"],
        "flood_server_cpu_pct": srv_flood["cpu_pct"],
        "after_server_cpu_pct": srv_after["cpu_pct"],
        **core_window(ctx, run.sampler, t2, t3),
        "attacker_cpu_pct": att["cpu_pct"],
        "attacker_us_per_packet": (round(report["cpu_s"] / sent * 1e6, 1)
                                   if sent and "cpu_s" in report else None),
        "rss_calm_mib": _mib(srv_calm["rss"]),
        "rss_peak_mib": _mib(srv_flood.get("rss_max")),
        "rss_after_mib": _mib(srv_after["rss"]),
        "fds_before": fds_before,
        "fds_peak": fds.peak(t2, t4),
        "fds_after": fds_after,
        "fds_leaked": leaked,
        "log_lines": log_after[1] - log_before[1],
        "log_bytes": log_after[0] - log_before[0],
        "records_before": (api_before or {}).get("total"),
        "records_after": (api_after or {}).get("total"),
        "records_created": _diff((api_after or {}).get("total"), (api_before or {}).get("total")),
        "health_after": health,
        "health_after_ok": isinstance(health, dict) and health.get("status") == "ok",
        "calm": _lean(calm), "flood": _lean(flood), "after": _lean(after),
        "windows": {"calm": [t0, t1], "flood": [t2, t3], "after": [t3, t4]},
        "internals": internals,
        "stop": run.stop_info,
        "timeline": timeline,
        "proc": {"server": proc_timeline(run, "server"), "loadgen": proc_timeline(run, "loadgen"),
                 "attacker": proc_timeline(run, "attacker")},
        "fd_timeline": [{"t": round(t, 3), "fds": k} for t, k in fds.samples],
    }


def _lean(window: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in window.items() if k != "hist"}


__all__ = ["ALL_CASES", "CASES", "MIXED", "P99_TARGET_MS", "parse_cases", "run"]
