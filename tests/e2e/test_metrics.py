"""`GET /metrics` on a real server: Prometheus text that prometheus-client's parser reads,
counters that end in `_total` and never decrease while clients come, heartbeat, drop and time
out, gauges that agree with `/api/stats`, and an optional bearer token."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerProcess, wait_for

from .helpers import LONG, http, wait_change

pytestmark = pytest.mark.timeout(120)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Never a client name: these are the only labels our own metrics carry.
OUR_LABELS = {"status", "reason", "sweep", "le"}


def scrape(server: ServerProcess, token: str | None = None) -> tuple[Samples, list[Any]]:
    request = urllib.request.Request(server.url + "/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in families for sample in family.samples}
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def counters(samples: Samples, families: list[Any]) -> Samples:
    names = {family.name for family in families if family.type == "counter"}
    return {key: number for key, number in samples.items()
            if key[0].removesuffix("_total") in names and key[0].endswith("_total")}


class Watch:
    """Scrapes again and again: every counter sample must stay or grow between scrapes."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.last: Samples = {}
        self.scrapes = 0

    def __call__(self) -> Samples:
        samples, families = scrape(self.server)
        self.scrapes += 1
        for family in families:
            if family.type == "counter":
                for sample in family.samples:
                    assert sample.name.endswith(("_total", "_created")), sample.name
            if family.name.startswith("presence_"):
                for sample in family.samples:
                    assert set(sample.labels) <= OUR_LABELS, (sample.name, sample.labels)
        now = counters(samples, families)
        for key, before in self.last.items():
            assert now.get(key, 0.0) >= before, (key, before, now.get(key))
        self.last = now
        return samples


def agrees_with_stats(server: ServerProcess, samples_of) -> Samples | None:
    """Scrape between two identical `/api/stats` answers; the gauges must equal them."""
    before = server.get("/api/stats")
    samples = samples_of()
    after = server.get("/api/stats")
    keys = ("online", "reconnecting", "offline", "connections")
    if [before[key] for key in keys] != [after[key] for key in keys]:
        return None  # something moved meanwhile: try again
    for status in ("online", "reconnecting", "offline"):
        assert value(samples, "presence_clients", status=status) == after[status], status
    assert value(samples, "presence_connections") == after["connections"]
    return samples


@pytest.fixture(scope="module")
def server(module_server):
    return module_server()


def test_metrics_follow_clients_through_their_lives(server, connect, unique):
    watch = Watch(server)
    start = wait_for(lambda: agrees_with_stats(server, watch), message="a quiet scrape")
    for name in ("presence_clients", "presence_connections", "presence_mailbox_depth",
                 "presence_heartbeats_total", "presence_heartbeat_seconds_count",
                 "process_resident_memory_bytes"):
        assert any(key[0] == name for key in start), name
    watcher = connect(server.url, watch=True)

    # heartbeats: the counter grows by exactly the number sent; the histogram counts each
    beater = unique("beater")
    client = connect(server.url, auth={"clientName": beater})
    sent = 25
    for _ in range(sent):
        assert client.heartbeat(beater)["status"] == "ok"
    after_beats = wait_for(lambda: agrees_with_stats(server, watch), message="stats agree")
    beats = value(after_beats, "presence_heartbeats_total") - value(
        start, "presence_heartbeats_total")
    assert beats == sent
    assert value(after_beats, "presence_heartbeat_seconds_count") == value(
        after_beats, "presence_heartbeats_total")

    # the beater leaves (reconnecting, then offline at its grace end); a client that never
    # heartbeats times out (offline at its silence deadline); a third one drops abruptly
    client.close()
    silent = unique("silent")
    connect(server.url, auth={"clientName": silent})
    dropper = unique("dropper")
    dropped = connect(server.url, auth={"clientName": dropper})
    wait_change(watcher, dropper, "online", "connected")
    dropped.drop()
    for name, reason in ((beater, "reconnect_timeout"), (silent, "heartbeat_timeout"),
                         (dropper, "reconnect_timeout")):
        wait_change(watcher, name, "offline", reason, timeout=LONG)
        wait_for(lambda: agrees_with_stats(server, watch), message="stats agree")
    end = wait_for(lambda: agrees_with_stats(server, watch), message="stats agree")

    # every change the watcher saw is counted once, by status and reason; every offline a
    # deadline decided has its lateness observed
    seen: dict[tuple[str, str], int] = {}
    for change in watcher.of("client_status_changed"):
        key = (change["status"], change["reason"])
        seen[key] = seen.get(key, 0) + 1
    assert seen[("offline", "heartbeat_timeout")] == 1 and seen[("offline",
                                                                  "reconnect_timeout")] == 2
    for (status, reason), count in seen.items():
        grown = (value(end, "presence_transitions_total", status=status, reason=reason)
                 - value(start, "presence_transitions_total", status=status, reason=reason))
        assert grown == count, (status, reason)
    for reason in ("heartbeat_timeout", "reconnect_timeout"):
        observed = (value(end, "presence_offline_lateness_seconds_count", reason=reason)
                    - value(start, "presence_offline_lateness_seconds_count", reason=reason))
        assert observed == seen[("offline", reason)], reason
        lateness = (value(end, "presence_offline_lateness_seconds_sum", reason=reason)
                    - value(start, "presence_offline_lateness_seconds_sum", reason=reason))
        assert 0 <= lateness < 5 * observed  # timers' lateness; a bound against nonsense only

    # the supervisor sweeps every second here: their durations are observed
    wait_for(lambda: value(watch(), "presence_sweep_seconds_count",
                           sweep="connection_check") >= 1, message="a sweep")
    assert watch.scrapes >= 6  # counters compared between each scrape and the one before


def test_metrics_are_open_by_default(server):
    status, content_type, body = http(server, "GET", "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert "\npresence_heartbeats_total " in body and "presence_clients{" in body


def test_metrics_token_guards_the_route_when_set(make_server):
    server = make_server({"security": {"metrics_token": "scrape-me"}})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
        status, content_type, body = http(server, "GET", "/metrics", headers)
        assert status == 401 and content_type == "application/json", headers
        assert '"error": "unauthorized"' in body or '"error":"unauthorized"' in body
    samples, _ = scrape(server, token="scrape-me")
    assert ("presence_connections", ()) in samples


def test_heartbeats_are_counted_once_each_over_either_transport(server, connect, unique,
                                                                 transport):
    name = unique("counted")
    client = connect(server.url, transport, auth={"clientName": name})
    before, _ = scrape(server)
    sent = 12
    for index in range(sent):
        if index % 2:
            assert client.heartbeat(name)["status"] == "ok"  # as the ack
        else:  # without an ack: answered as the `heartbeat_response` event
            client.heartbeat(name, ack=False)
            answered = index // 2 + 1
            wait_for(lambda answered=answered: len(client.of("heartbeat_response")) >= answered,
                     message="heartbeat_response")
    after, _ = scrape(server)
    assert (value(after, "presence_heartbeats_total")
            - value(before, "presence_heartbeats_total")) == sent
