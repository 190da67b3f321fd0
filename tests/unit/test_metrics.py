"""The metrics' pure pieces (presence_server/metrics.py): the heartbeat histogram, the scrape-time
gauges, the counters, one registry per node, and the exposition parsed as Prometheus does."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from presence_server.metrics import HEARTBEAT_BUCKETS, HotHistogram, PresenceMetrics


def samples(metrics: PresenceMetrics) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def node(counts=None, mailbox=0, process=False) -> PresenceMetrics:
    figures = {"online": 0, "reconnecting": 0, "offline": 0, "connections": 0, **(counts or {})}
    return PresenceMetrics(counts=lambda: figures, mailbox=lambda: mailbox, process=process)


class TestHotHistogram:
    def test_a_value_on_a_bound_counts_in_that_bucket_like_prometheus_le(self):
        histogram = HotHistogram((0.1, 1.0))
        for value in (0.0, 0.1, 0.5, 1.0, 7.0):
            histogram.observe(value)
        buckets, count, total = histogram.snapshot()
        assert buckets == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
        assert (count, total) == (5, pytest.approx(8.6))

    def test_buckets_are_cumulative_and_end_with_inf(self):
        histogram = HotHistogram(HEARTBEAT_BUCKETS)
        for n in range(1000):
            histogram.observe(n / 100)
        buckets, count, _ = histogram.snapshot()
        values = [value for _, value in buckets]
        assert values == sorted(values) and values[-1] == count == 1000
        assert buckets[-1][0] == "+Inf" and len(buckets) == len(HEARTBEAT_BUCKETS) + 1

    @pytest.mark.parametrize("bounds", [(1.0, 0.5), (0.5, 0.5), ()])
    def test_bounds_must_increase(self, bounds):
        if not bounds:
            assert HotHistogram(bounds).snapshot() == ([("+Inf", 0)], 0, 0.0)
            return
        with pytest.raises(ValueError):
            HotHistogram(bounds)


class TestPresenceMetrics:
    def test_gauges_are_read_from_the_counts_at_scrape_time(self):
        figures = {"online": 3, "reconnecting": 1, "offline": 7, "connections": 4}
        metrics = node(figures, mailbox=12)
        found = samples(metrics)
        assert found[("presence_clients", (("status", "online"),))] == 3
        assert found[("presence_clients", (("status", "reconnecting"),))] == 1
        assert found[("presence_clients", (("status", "offline"),))] == 7
        assert found[("presence_connections", ())] == 4
        assert found[("presence_mailbox_depth", ())] == 12

    def test_heartbeats_counter_and_histogram_agree(self):
        metrics = node()
        for seconds in (0.0001, 0.0002, 0.03, 2.0):
            metrics.heartbeat(seconds)
        found = samples(metrics)
        assert found[("presence_heartbeats_total", ())] == 4
        assert found[("presence_heartbeat_seconds_count", ())] == 4
        assert found[("presence_heartbeat_seconds_bucket", (("le", "0.0005"),))] == 2
        assert found[("presence_heartbeat_seconds_sum", ())] == pytest.approx(2.0303)

    def test_transitions_are_counted_by_status_and_reason_only(self):
        metrics = node()
        for name, status, reason in (("a", "online", "connected"), ("b", "online", "connected"),
                                     ("a", "offline", "kicked")):
            metrics.status_changed({"name": name, "status": status, "reason": reason,
                                    "eventId": 1})
        found = samples(metrics)
        transitions = {labels: value for (name, labels), value in found.items()
                       if name == "presence_transitions_total"}
        assert transitions == {(("reason", "connected"), ("status", "online")): 2,
                               (("reason", "kicked"), ("status", "offline")): 1}

    def test_lateness_and_sweeps(self):
        metrics = node()
        metrics.offline_late("heartbeat_timeout", 0.02)
        metrics.offline_late("heartbeat_timeout", -0.001)  # never negative in the histogram
        metrics.swept("connection_check", 0.003)
        found = samples(metrics)
        late = (("reason", "heartbeat_timeout"),)
        assert found[("presence_offline_lateness_seconds_count", late)] == 2
        assert found[("presence_offline_lateness_seconds_sum", late)] == pytest.approx(0.02)
        assert found[("presence_sweep_seconds_count", (("sweep", "connection_check"),))] == 1

    def test_every_counter_ends_in_total(self):
        metrics = node(process=True)
        metrics.status_changed({"status": "online", "reason": "connected"})
        body, _ = metrics.exposition()
        families = list(text_string_to_metric_families(body.decode()))
        counters = [f for f in families if f.type == "counter"]
        assert {f.name for f in counters} >= {"presence_transitions", "presence_heartbeats"}
        for family in counters:
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)

    def test_process_metrics_are_on_the_nodes_registry(self):
        found = samples(node(process=True))
        assert ("process_resident_memory_bytes", ()) in found
        assert ("process_cpu_seconds_total", ()) in found

    def test_each_node_has_its_own_registry(self):
        first, second = node(process=True), node(process=True)  # no duplicate-name error
        first.heartbeat(0.001)
        assert samples(first)[("presence_heartbeats_total", ())] == 1
        assert samples(second)[("presence_heartbeats_total", ())] == 0

    def test_openmetrics_when_the_scraper_asks_for_it(self):
        body, content_type = node().exposition("application/openmetrics-text; version=1.0.0")
        assert content_type.startswith("application/openmetrics-text")
        assert body.decode().rstrip().endswith("# EOF")
