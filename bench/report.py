"""Results on disk: ``<date>-<scenario>.json``, a Markdown table (.md) and a plot (.png)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scenarios import NOT_APPLICABLE
from bench.servers.launcher import is_ours

Row = dict[str, Any]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _skipped_rows(doc: dict[str, Any], width: int) -> list[list[str]]:
    rows = []
    for kind, why in doc["meta"]["skipped"].items():
        rows.append([kind, f"skipped: {why}"] + [""] * (width - 2))
    for kind, why in doc.get("not_applicable", {}).items():
        rows.append([kind, why] + [""] * (width - 2))
    return rows


def _cpu(process: Any, core: Any) -> str:
    """Process CPU % with, in brackets, its whole core's busy % (softirq included)."""
    return _fmt(process, 0) + ("" if core is None else f" ({_fmt(core, 0)})")


def _capacity(doc: dict[str, Any]) -> str:
    header = ["server", "held / N", "ramp s", "RSS/client KiB", "server CPU % (core)",
              "loadgen CPU % (core)", "acks/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"]
    redis = any(s.get("redis_cpu_pct") is not None for s in doc["summary"].values())
    if redis:
        header += ["server CPU µs/heartbeat", "redis-server CPU % · RSS MiB"]
    n = doc["params"]["clients"]
    rows = []
    for kind, s in doc["summary"].items():
        row = [kind, f"{_fmt(s['held'], 0)} / {n:,}", _fmt(s["ramp_s"]),
               _fmt(s["rss_per_client_kib"]), _cpu(s["server_cpu_pct"], s["server_core_pct"]),
               _cpu(s["loadgen_cpu_pct"], s["load_core_pct"]), _fmt(s["ack_rate"], 0),
               _fmt(s["p50_ms"], 2),
               _fmt(s["p99_ms"], 2), _fmt(s["p999_ms"], 2), _fmt(s["errors"], 0)]
        if redis:
            row += [_fmt(s.get("cpu_us_per_heartbeat"), 0),
                    "—" if s.get("redis_cpu_pct") is None else
                    f"{_fmt(s['redis_cpu_pct'], 1)} · {_fmt(_mib(s.get('redis_rss')), 1)}"]
        rows.append(row)
    table = _table(header, rows + _skipped_rows(doc, len(header)))
    cmp = doc.get("redis_vs_sqlite")
    if cmp:
        table += "\n\n" + _redis_vs_sqlite(cmp)
    return table


def _mib(value: Any) -> float | None:
    return value / 2**20 if isinstance(value, (int, float)) else None


def _verdict(met: bool | None) -> str:
    return "—" if met is None else "met" if met else "NOT met"


def _redis_vs_sqlite(cmp: dict[str, Any]) -> str:
    """The issue's two targets for one node on Redis against one node on SQLite."""
    reps = ", ".join(f"{r:.2f}" for r in cmp["ratio_per_rep"])
    return "\n".join([
        f"One node on Redis against one on SQLite (medians): CPU per acked heartbeat "
        f"{_fmt(cmp['redis_cpu_us_per_heartbeat'], 0)} µs against "
        f"{_fmt(cmp['sqlite_cpu_us_per_heartbeat'], 0)} µs, ratio "
        f"**{_fmt(cmp['ratio'], 2)}×** (per repetition: {reps or '—'}; target ≤ "
        f"{cmp['ratio_target']:g}×: {_verdict(cmp['ratio_met'])}); with redis-server's own CPU "
        f"added {_fmt(cmp['ratio_with_redis_server'], 2)}×.",
        f"redis-server itself: **{_fmt(cmp['redis_server_cpu_pct'], 1)} % of a core** (target < "
        f"{cmp['redis_server_cpu_target_pct']:g} %: {_verdict(cmp['redis_server_cpu_met'])}), "
        f"RSS {_fmt(_mib(cmp['redis_server_rss']), 1)} MiB.",
        f"Every client online in /api/stats (each registration committed; the measured window "
        f"starts after that) {_fmt(cmp.get('redis_registered_s'), 1)} s after the ramp began on "
        f"Redis, {_fmt(cmp.get('sqlite_registered_s'), 1)} s on SQLite.",
    ])


def _cluster(doc: dict[str, Any]) -> str:
    header = ["process", "held / clients", "all online after s", "heartbeats acked/s",
              "CPU % (its core busy %)",
              "CPU µs/heartbeat", "RSS MiB", "RSS/client KiB", "ack p50 / p99 / p99.9 ms",
              "errors", "/api/stats online", "Redis commands/s (/heartbeat)"]
    rows = []
    for role, s in doc["summary"].items():
        clients = next((r.get("clients") for run in doc["runs"] for r in run.get("roles", [])
                        if r["server"] == role), None)
        lat = (" / ".join(_fmt(s[k], 2) for k in ("p50_ms", "p99_ms", "p999_ms"))
               if s.get("p99_ms") is not None else "")
        cmds = ("" if s.get("commands_per_s") is None else
                f"{_fmt(s['commands_per_s'], 0)} ({_fmt(s['commands_per_heartbeat'], 3)})")
        rows.append([role,
                     "" if s.get("held") is None else f"{_fmt(s['held'], 0)} / {_fmt(clients)}",
                     _fmt(s.get("registered_s"), 1) if s.get("registered_s") is not None else "",
                     _fmt(s.get("ack_rate"), 0) if s.get("ack_rate") is not None else "",
                     _fmt(s.get("cpu_pct"), 1) + ("" if s.get("core_pct") is None
                                                  else f" ({_fmt(s['core_pct'], 0)})"),
                     _fmt(s.get("cpu_us_per_heartbeat"), 0)
                     if s.get("cpu_us_per_heartbeat") is not None else "",
                     _fmt(s.get("rss_mib"), 1),
                     _fmt(s.get("rss_per_client_kib"), 1)
                     if s.get("rss_per_client_kib") is not None else "",
                     lat, _fmt(s.get("errors"), 0) if s.get("errors") is not None else "",
                     _fmt(s.get("api_online"), 0) if s.get("api_online") is not None else "",
                     cmds])
    return _table(header, rows + _skipped_rows(doc, len(header)))


def _throughput(doc: dict[str, Any]) -> str:
    header = ["server", "sustained heartbeats/s (p99 ≤ limit)", "p99 there ms",
              "server CPU % (core)", "loadgen CPU % (core)", "first step over the p99 limit",
              "keeps up to /s (p50 ≤ limit, no loss)", "p99 there ms", "stopped by"]
    rows = []
    for kind, s in doc["summary"].items():
        fails = []
        stops = set()
        for run in doc["runs"]:
            if run["server"] != kind or "error" in run:
                continue
            stops.add(run["stopped_by"])
            f = run["first_failure"]
            fails.append("—" if f is None else
                         f"{f['target_rate']:,.0f}/s → {f['ack_rate']:,.0f}/s, p99 "
                         f"{_fmt(f['p99_ms'])} ms, {f['timeouts']} lost")
        rows.append([kind, _fmt(s["sustained_rate"], 0), _fmt(s["sustained_p99_ms"], 2),
                     _cpu(s["sustained_server_cpu_pct"], s["sustained_server_core_pct"]),
                     _cpu(s["sustained_loadgen_cpu_pct"], s["sustained_load_core_pct"]),
                     "; ".join(fails), _fmt(s["keeps_up_rate"], 0), _fmt(s["keeps_up_p99_ms"], 0),
                     ", ".join(sorted(stops))])
    return _table(header, rows + _skipped_rows(doc, len(header)))


def _offline(doc: dict[str, Any]) -> str:
    header = ["server", "clean drop: late p50 / p99 / max ms", "silent: late p50 / p99 / max ms",
              "missing", "spurious offline", "others' ack p99 in storm ms"]
    rows = []
    for kind, s in doc["summary"].items():
        rows.append([kind,
                     " / ".join(_fmt(s[k], 0) for k in ("clean_p50_ms", "clean_p99_ms",
                                                         "clean_max_ms")),
                     " / ".join(_fmt(s[k], 0) for k in ("silent_p50_ms", "silent_p99_ms",
                                                         "silent_max_ms")),
                     _fmt(s["missing"], 0), _fmt(s["spurious_offline"], 0),
                     _fmt(s["storm_p99_ms"], 2)])
    return _table(header, rows + _skipped_rows(doc, len(header)))


def _restart(doc: dict[str, Any]) -> str:
    header = ["server", "SIGTERM → exit s", "→ ready s", "→ every client acked s",
              "→ API all online s", "offline transitions (watcher)", "offline in API after"]
    rows = []
    for kind, s in doc["summary"].items():
        rows.append([kind, _fmt(s["exit_s"], 2), _fmt(s["ready_s"], 2), _fmt(s["all_back_s"], 2),
                     _fmt(s["api_online_s"], 2), _fmt(s["offline_transitions"], 0),
                     _fmt(s["api_offline_after"], 0)])
    return _table(header, rows + _skipped_rows(doc, len(header)))


def _health(doc: dict[str, Any], case: str) -> str:
    """How many runs of ``case`` still answered /health "ok" after the attack."""
    runs = [r for r in doc["runs"] if r.get("case") == case and "error" not in r]
    ok = sum(1 for r in runs if r.get("health_after_ok"))
    return f"ok {ok}/{len(runs)}"


def _flood(doc: dict[str, Any]) -> str:
    target = doc["params"].get("p99_target_ms", 50.0)
    header = ["case", "attack packets (/s)", "rejected (error events, 4xx, closed)",
              "normal acks calm p50 / p99 / p99.9 ms", "flood p50 / p99 / p99.9 ms",
              f"flood p99 < {target:g} ms (≤ 1 % unanswered)", "unanswered %", "after p99 ms",
              "normal errors", "/health after",
              "server CPU % calm → flood (core)", "RSS MiB calm → peak → after",
              "fds before → peak → after (leaked)", "new records", "log lines in flood",
              "attacker CPU % (µs/packet)"]
    rows = []
    for case, s in doc["summary"].items():
        codes = ", ".join(f"{k} {v:,}" for k, v in list(s.get("error_codes", {}).items())[:3])
        http = ", ".join(f"{k} {v:,}" for k, v in list(s.get("http", {}).items())
                         if not k.startswith("upgrade"))
        detail = "; ".join(x for x in (codes, http) if x)
        ok = s.get("flood_p99_under_target")
        rows.append([
            case, f"{_fmt(s['attack_sent'], 0)} ({_fmt(s['attack_rate'], 0)})",
            _fmt(s["rejected"], 0) + (f" ({detail})" if detail else ""),
            " / ".join(_fmt(s[k], 2) for k in ("calm_p50_ms", "calm_p99_ms", "calm_p999_ms")),
            " / ".join(_fmt(s[k], 2) for k in ("flood_p50_ms", "flood_p99_ms",
                                                "flood_p999_ms")),
            "—" if ok is None else "yes" if ok else "NO",
            _fmt(s["normal_unanswered_pct"], 1), _fmt(s["after_p99_ms"], 2),
            _fmt(s["normal_errors"], 0), _health(doc, case),
            _fmt(s["calm_server_cpu_pct"], 0) + " → "
            + _cpu(s["flood_server_cpu_pct"], s["server_core_pct"]),
            " → ".join(_fmt(s[k]) for k in ("rss_calm_mib", "rss_peak_mib", "rss_after_mib")),
            " → ".join(_fmt(s[k], 0) for k in ("fds_before", "fds_peak", "fds_after"))
            + f" ({_fmt(s['fds_leaked'], 0)})",
            _fmt(s["records_created"], 0), _fmt(s["log_lines"], 0),
            f"{_cpu(s['attacker_cpu_pct'], s['load_core_pct'])} "
            f"({_fmt(s['attacker_us_per_packet'])})",
        ])
    return _table(header, rows + _skipped_rows(doc, len(header)))


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "capacity": _capacity, "throughput": _throughput, "offline": _offline, "restart": _restart,
    "flood": _flood, "cluster": _cluster,
}


def markdown(doc: dict[str, Any]) -> str:
    """The scenario's table with the parameters, machine and command above it."""
    meta = doc["meta"]
    m = meta["machine"]
    params = ", ".join(f"{k}={v}" for k, v in doc["params"].items())
    lines = [
        f"## {doc['scenario']} — {doc['date']}",
        "",
        f"- command: `{doc['command']}`",
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']}, kernel {m['kernel']}, "
        f"Python {m['python']}, Node {m['node']}, git {m['git_rev']}",
        f"- {meta['pinning']}; open files {meta['nofile'][0]}; backlog {meta['backlog']}; "
        f"store {meta['store']}"
        + (f"; Redis: a private `redis-server` ({meta['redis_server']}) on the load CPU, emptied "
           "before each run" if meta.get("redis_server") else "")
        + (f"; ours also got {', '.join(meta['ours_set'])}" if meta.get("ours_set") else ""),
        f"- parameters: {params}",
        f"- repetitions: {doc['repeat']} (servers interleaved; medians shown)",
    ]
    calib = doc.get("calibration")
    if calib:
        lines.append("- load generator check (drive bare-node at 2× the rate under test): "
                     + _calibration_text(calib))
    lines += ["", TABLES[doc["scenario"]](doc), ""]
    lines += [f"- {note}" for note in doc.get("notes", [])]
    lines += _hot_spots(doc)
    return "\n".join(lines).rstrip() + "\n"


def _hot_spots(doc: dict[str, Any], top: int = 10) -> list[str]:
    """py-spy's top self frames for ours (``--profile``), first profiled run."""
    for run in doc["runs"]:
        prof = run.get("profile")
        if not prof or not prof.get("self"):
            continue
        busy, idle = prof["samples"], prof.get("idle_samples", 0)
        lines = ["", f"Hot spots of ours (py-spy, rep {run['rep']}, {busy} busy samples, "
                 f"{idle} idle in the gevent hub; % of busy samples):", "",
                 _table(["self %", "frame"], [[f"{r['pct']:.1f}", f"`{r['frame']}`"]
                                              for r in prof["self"][:top]])]
        if prof.get("project_total"):
            lines += ["", "Our own modules, inclusive (the frame or anything it calls):", "",
                      _table(["total %", "frame"], [[f"{r['pct']:.1f}", f"`{r['frame']}`"]
                                                    for r in prof["project_total"][:top]])]
        return lines
    return []


def _calibration_text(calib: dict[str, Any]) -> str:
    if calib.get("status") in ("off", "unproven"):
        return f"{calib['status']}" + (f" ({calib['why']})" if calib.get("why") else "")
    return (f"{calib['status']}: target {_fmt(calib['target_rate'], 0)}/s, achieved "
            f"{_fmt(calib['achieved_rate'], 0)}/s, p99 {_fmt(calib['latency']['p99_ms'], 2)} ms, "
            f"load generator CPU {_cpu(calib['loadgen_cpu_pct'], calib.get('load_core_pct'))} %")


def notes(doc: dict[str, Any]) -> list[str]:
    """Caveats the table needs: saturated load generator, missing internals, n/a rows."""
    out = [f"{run['server']} rep {run['rep']} FAILED: {run['error']}"
           for run in doc["runs"] if "error" in run]
    for run in doc["runs"]:
        cpu = run.get("load_core_pct") or run.get("sustained_load_core_pct")
        if isinstance(cpu, (int, float)) and cpu > 85:
            out.append(f"{run['server']} rep {run['rep']}: the load CPU was {cpu:.0f} % busy — "
                       "the load generator may be the bottleneck")
    seen: set[str] = set()
    for run in doc["runs"]:
        if not is_ours(run["server"]):
            continue
        internals = run.get("internals") or {}
        for key in ("gc_pause", "actors", "mailbox_depth"):
            if key in internals and f"{run['server']} {key}" not in seen:
                seen.add(f"{run['server']} {key}")
                value = internals[key]
                out.append(f"{run['server']} {key}: " + (json.dumps(value) if value is not None else
                                              "null (not exposed by /api/stats or /metrics)"))
    traces = [r["internals"]["gc_trace"] for r in doc["runs"] if is_ours(r["server"])
              and (r.get("internals") or {}).get("gc_trace")]
    if traces:
        out.append("ours GC (--gc-trace, whole run): " + "; ".join(
            f"{t['full_collections']} full collections, max pause {t['full_pause_max_ms']} ms, "
            f"mean {t['full_pause_mean_ms']} ms" for t in traces))
    flask_gc = [r["internals"]["gc_pause"] for r in doc["runs"] if r["server"] == "bare-flask"
                and (r.get("internals") or {}).get("gc_pause")]
    if flask_gc:
        out.append("bare-flask GC (gc.callbacks, whole run): " + "; ".join(
            f"{g['collections'][2]} full collections, max pause {g['pause_max_ms']:.0f} ms, "
            f"total {g['pause_total_ms']:.0f} ms" for g in flask_gc))
    if doc.get("not_applicable") and doc["scenario"] != "cluster":
        out.append(f"{doc['scenario']} applies to ours only ({NOT_APPLICABLE}).")
    if doc.get("caveat"):
        out.append(doc["caveat"])
    return out


def result_paths(out_dir: Path, scenario: str, date: str) -> tuple[Path, Path, Path]:
    """``<date>-<scenario>.{json,md,png}``, with ``-2``, ``-3`` … if that name is taken."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{date}-{scenario}"
    for i in range(1, 1000):
        name = stem if i == 1 else f"{stem}-{i}"
        if not (out_dir / f"{name}.json").exists():
            break
    return out_dir / f"{name}.json", out_dir / f"{name}.md", out_dir / f"{name}.png"


def write(doc: dict[str, Any], out_dir: Path, plot: bool) -> dict[str, Path | None]:
    """Write JSON, Markdown and (if matplotlib is there) the plot; returns the paths."""
    date = datetime.date.today().isoformat()
    json_path, md_path, png_path = result_paths(out_dir, doc["scenario"], date)
    json_path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    md_path.write_text(markdown(doc))
    png: Path | None = None
    if plot:
        from bench.plot import plot_doc

        png = plot_doc(doc, png_path)
    return {"json": json_path, "md": md_path, "png": png}
