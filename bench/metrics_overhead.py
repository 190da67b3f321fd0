"""Micro-benchmark: what the `/metrics` instrumentation adds to one heartbeat.

`python -m bench.metrics_overhead [--n 500000]` (gevent patched, as the server runs) times, per
call, on a real `Presence` (SQLite store in a temporary directory):

- `presence.heartbeat_handled(seconds)`: what `web/sockets.py on_heartbeat` adds (it reuses the
  two clock reads the handler already made);
- for comparison, prometheus-client's own `Counter.inc()` + `Histogram.observe()` (locked
  values), which the hot path deliberately does not use, and an empty method call.

Prints nanoseconds per call (best of 5 repetitions); asserts nothing.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import tempfile  # noqa: E402
import timeit  # noqa: E402
from pathlib import Path  # noqa: E402

from presence_server.actors.clock import ManualClock  # noqa: E402
from presence_server.actors.state import Timing  # noqa: E402
from presence_server.actors.supervisor import Intervals  # noqa: E402
from presence_server.store import open_store  # noqa: E402
from presence_server.web.identity import Identities  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402

from presence_server.metrics import HEARTBEAT_BUCKETS  # noqa: E402
from presence_server.presence import Presence  # noqa: E402


class _Empty:
    def heartbeat_handled(self, seconds: float) -> None:
        return None


def per_call_ns(call, n: int) -> float:
    return min(timeit.repeat(call, number=n, repeat=5)) / n * 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000, help="calls per repetition")
    n = parser.parse_args(argv).n
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(f"sqlite:///{Path(directory) / 'presence.db'}")
        try:
            presence = Presence(node="bench", store=store, clock=ManualClock(),
                                scheduler=ManualClock(), timing=Timing(),
                                intervals=Intervals(), identities=Identities(None))
            registry = CollectorRegistry()
            counter = Counter("bench_heartbeats", "x", registry=registry)
            histogram = Histogram("bench_heartbeat_seconds", "x", buckets=HEARTBEAT_BUCKETS,
                                  registry=registry)
            empty = _Empty()
            figures = {
                "empty method call (baseline)": per_call_ns(
                    lambda: empty.heartbeat_handled(0.0002), n),
                "presence.heartbeat_handled (ours)": per_call_ns(
                    lambda: presence.heartbeat_handled(0.0002), n),
                "prometheus-client Counter.inc + Histogram.observe": per_call_ns(
                    lambda: (counter.inc(), histogram.observe(0.0002)), n),
            }
        finally:
            store.close()
    for what, ns in figures.items():
        print(f"{ns:8.0f} ns  {what}")
    added = figures["presence.heartbeat_handled (ours)"] - figures["empty method call (baseline)"]
    print(f"instrumentation added per heartbeat: ~{added:.0f} ns over an empty call")


if __name__ == "__main__":
    main()
