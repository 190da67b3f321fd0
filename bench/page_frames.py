"""The status page under load: 20,000 clients, N changes a second, frames measured in Chromium.

`python -m bench.page_frames [--clients 20000] [--rate 500] [--seconds 10] [--out FILE.md]`
(from a checkout, with the test extra installed and Debian's `chromium`):

1. seeds a SQLite store with `--clients` records (a tenth online, the rest reconnecting) and
   starts a real server on it (`tests/support/server.py`) with a one-hour reconnection grace,
   so the seeded clients stay as they are until kicked;
2. opens `/` in headless Chromium (Playwright, the system browser through `executable_path`)
   and waits until the page has loaded every record and follows `/events`;
3. makes `--rate` real status changes a second for `--seconds`: admin kicks
   (`POST /api/clients/<name>/kick`, reconnecting -> offline) from a few keep-alive HTTP
   connections, paced; every change goes through the store, the feed and `/events`;
4. records, in the page, every long task (PerformanceObserver 'longtask': a main-thread task
   over 50 ms, with its duration) and the gaps between animation frames (requestAnimationFrame),
   then waits until the page's offline count shows every kick.

Prints and writes a Markdown report; it asserts nothing (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "page-bench-admin"
TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "toplevel"]

PROBE = """() => {
  window.__bench = { longtasks: [], gaps: [], running: true };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.__bench.longtasks.push([entry.startTime, entry.duration]);
    }
  }).observe({ type: "longtask" });
  let last = performance.now();
  const tick = (now) => {
    window.__bench.gaps.push(now - last);
    last = now;
    if (window.__bench.running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def seed(db: Path, clients: int) -> list[str]:
    """Write `clients` records; answers the names of the reconnecting ones (to be kicked)."""
    from presence_server.store.records import ClientRecord

    from presence_server.config import load_config
    from presence_server.runtime import Runtime

    runtime = Runtime(load_config(environ={"PRESENCE__STORE__URL": f"sqlite:///{db}"}))
    now = time.time()
    kickable = []
    try:
        for index in range(clients):
            name = f"client-{index:05d}"
            status = "online" if index % 10 == 0 else "reconnecting"
            runtime.store.save(ClientRecord(
                name=name, status=status,
                reason="connected" if status == "online" else "disconnect",
                since=now - index, last_seen=now - index, last_contact=now - index,
                ip="10.0.0.1", guest=False, node="bench", connections=0, version=1))
            if status == "reconnecting":
                kickable.append(name)
    finally:
        runtime.close()
    return kickable


def kick_at(url: str, names: list[str], rate: float, seconds: float, workers: int = 64
            ) -> tuple[int, float]:
    """POST a kick for `rate` names a second for `seconds`; answers (kicks done, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    total = min(len(names), int(rate * seconds))
    done = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def work(worker: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        for index in range(worker, total, workers):
            due = started + index / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            connection.request("POST", f"/api/clients/{names[index]}/kick",
                               headers={"Authorization": f"Bearer {TOKEN}",
                                        "Content-Length": "0"})
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    done[0] += 1
        connection.close()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0], time.monotonic() - started


def renderer_tasks(trace: Path) -> list[tuple[float, float]]:
    """(wall ms, thread CPU ms) of every task on the page's main thread in a Chromium trace."""
    events = json.loads(trace.read_text())
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    main = {(e["pid"], e["tid"]) for e in events
            if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"}
    return [(e["dur"] / 1000, e.get("tdur", e["dur"]) / 1000) for e in events
            if e.get("name") == "RunTask" and e.get("ph") == "X" and (e["pid"], e["tid"]) in main]


class Replay:
    """`--replay`: a stand-in for `/events` that streams `rate` changes a second for `seconds`,
    shaped exactly like the server's `client_status_changed` (actors/feed.py status_event), for
    the records the page loaded from the real server (each change: that record's version + 1,
    ids after the page's position). It measures the page at a rate the server on a small shared
    machine cannot make by admin kicks; the page is routed to it (Playwright `page.route`), every
    other request goes to the real server."""

    NEXT = {"online": ("reconnecting", "disconnect"), "offline": ("online", "connected")}

    def __init__(self, records: list[dict[str, Any]], rate: float, seconds: float) -> None:
        import random
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.state = {r["name"]: [r["status"], r["version"]] for r in records}
        self.names = list(self.state)
        self.took = 0.0
        self.rate, self.seconds = rate, seconds
        self.random = random.Random(12)
        self.go = threading.Event()
        self.finished = threading.Event()
        self.sent = 0
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    self.wfile.write(b"retry: 3000\n\n")
                    replay.stream(self.wfile)
                except OSError:
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def change(self, event_id: int) -> str:
        from presence_server.store.records import iso

        name = self.names[self.random.randrange(len(self.names))]
        status, version = self.state[name]
        if status == "reconnecting":
            new, reason = (("offline", "reconnect_timeout") if self.random.random() < 0.5
                           else ("online", "reconnected"))
        else:
            new, reason = self.NEXT[status]
        self.state[name] = [new, version + 1]
        payload = {"id": name, "name": name, "status": new, "previous": status,
                   "reason": reason, "since": iso(time.time()), "lastHeartbeat": None,
                   "version": version + 1, "node": "bench", "guest": False,
                   "eventId": event_id}
        return (f"id: {event_id}\nevent: client_status_changed\n"
                f"data: {json.dumps(payload, separators=(',', ':'))}\n\n")

    def stream(self, out: Any) -> None:
        while not self.go.wait(1.0):
            out.write(b": keepalive\n\n")
        if self.finished.is_set():  # a reconnect after the run: nothing more
            while True:
                time.sleep(1.0)
                out.write(b": keepalive\n\n")
        total = int(self.rate * self.seconds)
        started = time.monotonic()
        event_id = 10**9  # above any real position: the page applies these by version
        while self.sent < total:
            due = int((time.monotonic() - started) * self.rate) + 1
            text = "".join(self.change(event_id + i) for i in range(self.sent, min(due, total)))
            if text:
                out.write(text.encode())
                self.sent = min(due, total)
            time.sleep(0.01)
        self.took = time.monotonic() - started
        self.finished.set()
        while True:
            time.sleep(1.0)
            out.write(b": keepalive\n\n")

    def counts(self) -> dict[str, int]:
        counts = {"online": 0, "reconnecting": 0, "offline": 0}
        for status, _ in self.state.values():
            counts[status] += 1
        return counts

    def close(self) -> None:
        self.server.shutdown()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(clients: int, rate: float, seconds: float, keep_trace: Path | None = None,
        replay: bool = False) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
    from tests.support.server import ServerProcess, wait_for

    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        kickable = seed(workdir / "presence.db", clients)
        server = ServerProcess(workdir, {
            "monitoring": {"reconnection_grace_period": "1h", "offline_timeout": "2h",
                           "heartbeat_interval": "60s"},
            "events": {"backlog": 100000, "queue": 20000},
            "security": {"admin_token": TOKEN, "max_events_per_second": 1000},
        })
        server.start(timeout=120)
        try:
            wait_for(lambda: server.get("/api/stats")["total"] == clients, 120, 0.5,
                     "the seeded records")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_path(),
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                stand_in = None
                if replay:
                    records = []
                    after = ""
                    while True:
                        body = server.get(f"/api/clients?limit=10000&after={after}")
                        records += body["clients"]
                        if "next" not in body:
                            break
                        after = body["next"]
                    stand_in = Replay(records, rate, seconds)
                    page.route("**/events*", lambda route: route.continue_(url=stand_in.url))
                started = time.monotonic()
                page.goto(server.url + "/")
                page.wait_for_function(
                    "() => document.getElementById('live').textContent === 'live' && "
                    f"document.getElementById('count-total').firstChild.textContent === "
                    f"'{clients}' && document.getElementById('shown').textContent !== ''",
                    timeout=120_000)
                loaded = time.monotonic() - started
                offline_before = int(page.evaluate(
                    "() => document.getElementById('count-offline').firstChild.textContent"))
                page.evaluate(PROBE)
                trace = workdir / "trace.json"
                browser.start_tracing(page=page, path=str(trace), categories=TRACE_CATEGORIES)
                if stand_in is None:
                    kicked, took = kick_at(server.url, kickable, rate, seconds)
                    expected = {"offline": offline_before + kicked}
                else:
                    stand_in.go.set()
                    stand_in.finished.wait(seconds * 10 + 60)
                    kicked, took = stand_in.sent, stand_in.took
                    expected = stand_in.counts()
                caught_up_at = time.monotonic()
                page.wait_for_function(
                    "(expected) => Object.entries(expected).every(([status, n]) => document"
                    ".getElementById('count-' + status).firstChild.textContent === String(n))",
                    arg=expected, timeout=120_000)
                lag = time.monotonic() - caught_up_at
                browser.stop_tracing()
                main_tasks = renderer_tasks(trace)
                if keep_trace is not None:
                    keep_trace.write_bytes(trace.read_bytes())
                page.wait_for_timeout(500)
                probe = page.evaluate("() => { window.__bench.running = false; "
                                      "return window.__bench; }")
                shown = page.evaluate("() => [...document.querySelectorAll('#rows tr')]"
                                      ".filter((tr) => !tr.hidden && tr.dataset.name).length")
                browser.close()
                if stand_in is not None:
                    stand_in.close()
        finally:
            server.stop()
    tasks = [duration for _, duration in probe["longtasks"]]
    gaps = probe["gaps"][1:]
    return {
        "clients": clients, "rate": rate, "seconds": seconds, "kicked": kicked,
        "replay": replay,
        "kick_seconds": took, "achieved_rate": kicked / took if took else 0.0,
        "load_seconds": loaded, "catch_up_seconds": lag, "rows_rendered": shown,
        "longtasks": len(tasks), "longtask_max_ms": max(tasks, default=0.0),
        "longtask_total_ms": sum(tasks), "frames": len(gaps),
        "frame_gap_max_ms": max(gaps, default=0.0),
        "frame_gap_p99_ms": percentile(gaps, 0.99),
        "frame_gap_median_ms": statistics.median(gaps) if gaps else 0.0,
        "load": " ".join(f"{value:.1f}" for value in os.getloadavg()),
        "trace_tasks": len(main_tasks),
        "trace_task_max_ms": max((wall for wall, _ in main_tasks), default=0.0),
        "trace_task_max_cpu_ms": max((cpu for _, cpu in main_tasks), default=0.0),
        "trace_tasks_over_50ms": sum(1 for wall, _ in main_tasks if wall > 50),
        "trace_tasks_cpu_over_50ms": sum(1 for _, cpu in main_tasks if cpu > 50),
        "trace_cpu_total_ms": sum(cpu for _, cpu in main_tasks),
    }


def report(result: dict[str, Any]) -> str:
    r = result
    worst = max(r["longtask_max_ms"], r["frame_gap_max_ms"])
    rows = [
        ("clients in the store (all in the page's Map)", f"{r['clients']:,}"),
        ("page load until live with every record", f"{r['load_seconds']:.2f} s"),
        ("status changes streamed by a stand-in /events (--replay: online, reconnecting, "
         "offline, each record's version + 1)" if r["replay"] else
         "status changes made (admin kicks, reconnecting -> offline)",
         f"{r['kicked']:,} in {r['kick_seconds']:.1f} s = **{r['achieved_rate']:.0f}/s** "
         f"(asked: {r['rate']:g}/s)"),
        ("the page's counts caught up after the last change",
         f"{r['catch_up_seconds']:.2f} s"),
        ("rows in the DOM", f"{r['rows_rendered']} (one page)"),
        ("long tasks (> 50 ms, PerformanceObserver) during the changes",
         f"{r['longtasks']} (longest **{r['longtask_max_ms']:.0f} ms**, "
         f"total {r['longtask_total_ms']:.0f} ms)"),
        ("main-thread tasks in Chromium's trace",
         f"{r['trace_tasks']:,}; longest **{r['trace_task_max_ms']:.0f} ms** wall clock, "
         f"longest CPU time of one task **{r['trace_task_max_cpu_ms']:.0f} ms**; over 50 ms: "
         f"{r['trace_tasks_over_50ms']} by wall clock, {r['trace_tasks_cpu_over_50ms']} by "
         f"CPU time; CPU total {r['trace_cpu_total_ms']:.0f} ms"),
        ("animation frames",
         f"{r['frames']:,}; gap median {r['frame_gap_median_ms']:.1f} ms, "
         f"p99 {r['frame_gap_p99_ms']:.1f} ms, longest **{r['frame_gap_max_ms']:.1f} ms**"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    command = (f"python -m bench.page_frames --clients {r['clients']} --rate {r['rate']:g} "
               f"--seconds {r['seconds']:g}" + (" --replay" if r["replay"] else ""))
    return f"""# Status page under load ({datetime.now(UTC):%Y-%m-%d})

`{command}` on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, load average
{r['load']}), Python {platform.python_version()}, headless Debian Chromium driven by Playwright;
the server, the kick senders and the browser share the machine.

| figure | value |
|---|---|
{table}

Longest frame: {worst:.0f} ms ({"under" if worst < 50 else "over"} the 50 ms budget). Long tasks
come from Chromium's `longtask` PerformanceObserver; trace tasks are the renderer main thread's
`RunTask` events (`dur`: wall clock, `tdur`: the thread's CPU time, so a task stretched by a
busy machine shows a wall clock far above its CPU time); frame gaps are the times between
consecutive `requestAnimationFrame` callbacks.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the Markdown report here (default: only print it)")
    parser.add_argument("--trace", type=Path, default=None,
                        help="keep Chromium's trace (JSON, for chrome://tracing) here")
    parser.add_argument("--replay", action="store_true",
                        help="stream the changes to the page from a stand-in /events (Replay) "
                             "instead of making them on the server with admin kicks")
    options = parser.parse_args(argv)
    result = run(options.clients, options.rate, options.seconds, options.trace, options.replay)
    text = report(result)
    print(text)
    if options.out is not None:
        options.out.write_text(text)


if __name__ == "__main__":
    main()
