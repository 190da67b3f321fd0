"""Prometheus metrics of one node (`GET /metrics`, CONTRACT §6), on a registry of its own.

Each `PresenceMetrics` owns a `CollectorRegistry` (never the library's global one), so several
runtimes in one process (tests) do not collide; single process, no multiprocess mode.

What costs what:
- read at scrape time, O(1): `presence_clients{status}` and `presence_connections` (the store's
  running counts, the numbers `/api/stats` gives), `presence_mailbox_depth` (`Mailbox.waiting()`);
- the heartbeat path (thousands per second): one `HotHistogram.observe` — a bisect and two
  additions on plain numbers, no lock. `presence_heartbeats_total` and
  `presence_heartbeat_seconds` are both read from it at scrape time;
- on each status change (a feed listener): `presence_transitions_total{status,reason}`; on each
  offline a deadline decided: `presence_offline_lateness_seconds{reason}`; after each sweep:
  `presence_sweep_seconds{sweep}` (prometheus-client's own counters and histograms, locked).

Label values are statuses, reasons and sweep names: a few each, never a client name.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from presence_server.store.records import STATUSES

# Seconds. A heartbeat is handled in well under a millisecond on an idle node; the upper
# buckets show a node that lags behind its sockets.
HEARTBEAT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0)
# A timer fires within milliseconds of its deadline; a stalled process re-checks after a
# second (up to 3 times, actors/state.py); the offline_timeout backstop runs once per
# connection_check_interval (30 s by default), so its offlines come up to that late.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0)
SWEEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HotHistogram:
    """A histogram cheap enough for every heartbeat: plain numbers, no lock.

    Exact when every `observe` runs on one thread (the gevent hub runs every socket handler);
    with real threads an increment may rarely be lost, never double-counted.
    `observe` is O(log buckets).
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # first bound >= value: `le`
        self.total += value

    def snapshot(self) -> tuple[list[tuple[str, float]], int, float]:
        """(cumulative `le` buckets ending with +Inf, count, sum), as Prometheus exposes them."""
        counts, total = list(self.counts), self.total
        buckets, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            buckets.append((_le(bound), running))
        return buckets, running, total


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class _LiveCollector:
    """The gauges read at scrape time, and the heartbeat figures from their `HotHistogram`."""

    def __init__(self, counts: Callable[[], Mapping[str, int]], mailbox: Callable[[], int],
                 heartbeats: HotHistogram,
                 cluster: Callable[[], Mapping[str, float]] | None = None) -> None:
        self._counts = counts
        self._mailbox = mailbox
        self._heartbeats = heartbeats
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        clients = GaugeMetricFamily("presence_clients", "Clients by status (the store's counts)",
                                    labels=["status"])
        for status in STATUSES:
            clients.add_metric([status], counts.get(status, 0))
        yield clients
        yield GaugeMetricFamily("presence_connections", "Live sockets of registered clients",
                                value=counts.get("connections", 0))
        yield GaugeMetricFamily("presence_mailbox_depth",
                                "Messages waiting in client actors' mailboxes",
                                value=self._mailbox())
        if self._cluster is not None:  # several nodes (a shared store)
            cluster = self._cluster()
            yield GaugeMetricFamily("presence_nodes_alive", "Nodes holding a lease now",
                                    value=cluster["nodes_alive"])
            yield GaugeMetricFamily(
                "presence_feed_lag_seconds",
                "Seconds from the last change applied here to its status change (any node's)",
                value=cluster["feed_lag"])
        buckets, count, total = self._heartbeats.snapshot()
        yield CounterMetricFamily("presence_heartbeats", "Heartbeats handled", value=count)
        yield HistogramMetricFamily(
            "presence_heartbeat_seconds",
            "Seconds from the event loop's poll that read a heartbeat to its reply being ready",
            buckets=buckets, sum_value=total)


class PresenceMetrics:
    """One node's metrics; it is also the actors' `Instruments` (actors/instruments.py)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]], mailbox: Callable[[], int],
                 process: bool = True,
                 cluster: Callable[[], Mapping[str, float]] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.heartbeats = HotHistogram(HEARTBEAT_BUCKETS)
        self.registry.register(_LiveCollector(counts, mailbox, self.heartbeats, cluster))
        self.transitions = Counter(
            "presence_transitions", "Status changes, by new status and reason",
            ["status", "reason"], registry=self.registry)
        self.lateness = Histogram(
            "presence_offline_lateness_seconds",
            "How late an offline came after the deadline that decided it, by reason",
            ["reason"], buckets=LATENESS_BUCKETS, registry=self.registry)
        self.sweeps = Histogram(
            "presence_sweep_seconds", "Duration of one supervisor sweep, by sweep",
            ["sweep"], buckets=SWEEP_BUCKETS, registry=self.registry)
        self._transition_children: dict[tuple[str, str], Any] = {}
        if process:  # process_* (CPU, memory, open files), python_info, python_gc_*
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    # --- inputs -----------------------------------------------------------------------------------
    def heartbeat(self, seconds: float) -> None:
        """One heartbeat handled in `seconds` (the hot path: O(1), no lock)."""
        self.heartbeats.observe(seconds)

    def status_changed(self, change: Mapping[str, Any]) -> None:
        """A `PresenceFeed` listener: count the change by its new status and reason."""
        key = (str(change.get("status")), str(change.get("reason")))
        child = self._transition_children.get(key)
        if child is None:
            child = self._transition_children[key] = self.transitions.labels(*key)
        child.inc()

    def offline_late(self, reason: str, seconds: float) -> None:
        self.lateness.labels(reason).observe(max(0.0, seconds))

    def swept(self, sweep: str, seconds: float) -> None:
        self.sweeps.labels(sweep).observe(seconds)

    # --- output -----------------------------------------------------------------------------------
    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format `accept` asks for (Prometheus text unless it asks for
        OpenMetrics), with its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
