"""One PNG per scenario: ack latency over time (or p99 against rate), then CPU and RSS per server.

matplotlib is an optional dependency (bench/requirements.txt); without it no plot is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"ours": "tab:blue", "bare-flask": "tab:orange", "bare-node": "tab:green",
           "ours-redis": "tab:purple", "redis": "tab:red", "loadgen": "tab:gray"}


def plot_doc(doc: dict[str, Any], path: Path) -> Path | None:
    """Draw ``doc``'s runs into ``path``; None (and a note on stdout) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib not installed; no plot (pip install -r bench/requirements.txt)")
        return None
    fig, axes = plt.subplots(3, 1, figsize=(11, 10), constrained_layout=True)
    lat_ax, cpu_ax, rss_ax = axes
    if doc["scenario"] == "cluster":
        _cluster(doc, axes)
        return _finish(fig, plt, doc, path)
    labelled: set[str] = set()
    flood = doc["scenario"] == "flood"
    cases = list(dict.fromkeys(r.get("case", "") for r in doc["runs"]))
    for run in doc["runs"]:
        # flood: one colour per case, the attack shaded (every run is ours)
        kind = run.get("case", run["server"]) if flood else run["server"]
        colour = (f"C{cases.index(kind) % 10}" if flood
                  else COLOURS.get(kind, "tab:gray"))
        alpha = 1.0 if run["rep"] == 0 else 0.45
        label = kind if kind not in labelled else None
        labelled.add(kind)
        origin = _origin(run)
        if flood and "windows" in run:
            t2, t3 = run["windows"]["flood"]
            for ax in axes:
                ax.axvspan(t2 - origin, t3 - origin, color=colour, alpha=0.08)
        if doc["scenario"] == "throughput":
            steps = [s for s in run.get("steps", []) if s["p99_ms"] is not None]
            lat_ax.plot([s["target_rate"] for s in steps], [s["p99_ms"] for s in steps],
                        marker="o", color=colour, alpha=alpha, label=label)
        else:
            tl = [p for p in run.get("timeline", []) if p["p99_ms"] is not None]
            xs = [p["t"] - origin for p in tl]
            lat_ax.plot(xs, [p["p99_ms"] for p in tl], color=colour, alpha=alpha, label=label)
            lat_ax.plot(xs, [p["p50_ms"] for p in tl], color=colour, alpha=alpha * 0.6,
                        linestyle="--")
        for name, series in run.get("proc", {}).items():
            if not name.startswith("server") and not (flood and name == "attacker"):
                continue
            if name == "attacker":
                pts = [s for s in series if s["cpu_pct"] is not None]
                cpu_ax.plot([s["t"] - origin for s in pts], [s["cpu_pct"] for s in pts],
                            color=colour, alpha=alpha * 0.7, linestyle="-.")
                continue
            pts = [s for s in series if s["cpu_pct"] is not None]
            cpu_ax.plot([s["t"] - origin for s in pts], [s["cpu_pct"] for s in pts],
                        color=colour, alpha=alpha, label=label if name == "server" else None)
            rss_ax.plot([s["t"] - origin for s in series], [s["rss"] / 2**20 for s in series],
                        color=colour, alpha=alpha, label=label if name == "server" else None)
        loadgen = [s for s in run.get("proc", {}).get("loadgen", []) if s["cpu_pct"] is not None]
        if loadgen:
            cpu_ax.plot([s["t"] - origin for s in loadgen], [s["cpu_pct"] for s in loadgen],
                        color=colour, alpha=alpha * 0.5, linestyle=":")
    if doc["scenario"] == "throughput":
        lat_ax.set_xlabel("offered heartbeats / s")
        lat_ax.set_ylabel("ack p99 ms")
        lat_ax.axhline(doc["params"]["p99_limit_ms"], color="red", linewidth=0.8)
        lat_ax.set_xscale("log")
    else:
        lat_ax.set_xlabel("s since server start")
        lat_ax.set_ylabel("ack latency ms (p99 solid, p50 dashed)")
    lat_ax.set_yscale("log")
    cpu_ax.set_ylabel("CPU % (server solid, load generator dotted"
                      + (",\nattacker dash-dot; attack shaded)" if flood else ")"))
    cpu_ax.set_xlabel("s since server start")
    rss_ax.set_ylabel("server RSS MiB")
    rss_ax.set_xlabel("s since server start")
    return _finish(fig, plt, doc, path)


def _finish(fig: Any, plt: Any, doc: dict[str, Any], path: Path) -> Path:
    for ax in fig.axes:
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    fig.suptitle(f"{doc['scenario']} — {doc['date']} — "
                 + ", ".join(f"{k}={v}" for k, v in list(doc["params"].items())[:4]))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cluster(doc: dict[str, Any], axes: Any) -> None:
    """Cluster: one colour per node (its clients' latency, its CPU and RSS), Redis in red."""
    lat_ax, cpu_ax, rss_ax = axes
    labelled: set[str] = set()
    for run in doc["runs"]:
        alpha = 1.0 if run["rep"] == 0 else 0.45
        procs = run.get("proc", {})
        origin = min((s[0]["t"] for s in procs.values() if s), default=0.0)
        colours = {nid: f"C{i}" for i, nid in enumerate(run.get("nodes", []))}
        for nid, tl in run.get("timelines", {}).items():
            pts = [p for p in tl if p["p99_ms"] is not None]
            label = nid if nid not in labelled else None
            lat_ax.plot([p["t"] - origin for p in pts], [p["p99_ms"] for p in pts],
                        color=colours.get(nid), alpha=alpha, label=label)
        for name, series in procs.items():
            colour = colours.get(name) or COLOURS.get(name, "black")
            label = name if name not in labelled else None
            labelled.add(name)
            pts = [s for s in series if s["cpu_pct"] is not None]
            cpu_ax.plot([s["t"] - origin for s in pts], [s["cpu_pct"] for s in pts],
                        color=colour, alpha=alpha, label=label)
            if name != "loadgen":
                rss_ax.plot([s["t"] - origin for s in series], [s["rss"] / 2**20 for s in series],
                            color=colour, alpha=alpha, label=label)
    lat_ax.set_ylabel("ack p99 ms per node's clients")
    lat_ax.set_yscale("log")
    cpu_ax.set_ylabel("CPU % (nodes, Redis, load generator)")
    rss_ax.set_ylabel("RSS MiB (nodes, Redis)")
    for ax in axes:
        ax.set_xlabel("s since the first node started")


def _origin(run: dict[str, Any]) -> float:
    server = run.get("proc", {}).get("server") or []
    if server:
        return float(server[0]["t"])
    timeline = run.get("timeline") or []
    return float(timeline[0]["t"]) if timeline else 0.0
